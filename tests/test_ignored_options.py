"""Options that would be silently ignored are usage errors (exit 2, before any model loads); the
hints name the option that fixes the input; `wordvec-dim` reads a piped corpus like every command."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from nlptool.cli import app

runner = CliRunner()


@pytest.mark.parametrize("args,needle", [
    (["segment", "--threshold", "0.5"], "--threshold applies to --method masking"),
    (["segment", "--layer", "3"], "--layer chooses"),
    (["similarity", "--pool", "mean", "--metric", "wmd"], "--metric"),
    (["similarity", "--pool", "mean", "--solver", "sinkhorn", "--reg", "0.1"], "--solver/--reg"),
    (["similarity", "--query", "README.md", "--corpus", "README.md", "--char-weight", "0.5"], "drop --char-weight"),
])
def test_ignored_option_is_a_usage_error(args, needle):
    res = runner.invoke(app, [*args, "--model", "/nonexistent/model", "-q"], input="你好\t您好\n")
    assert res.exit_code == 2, res.output
    assert needle in res.output
    assert "model not found" not in res.output  # refused before any model is looked up


def test_threshold_and_layer_still_taken_where_they_apply():
    from nlptool.segment.command import Segmenter

    assert Segmenter(method="masking", threshold=0.5).config["threshold"] == 0.5
    assert Segmenter(parse="dependency", parse_method="masking", layer=3).config["layer"] == 3
    assert Segmenter(parse="constituency", layer=3).config["layer"] == 3


def test_pair_key_hint_names_a_key_and_b_key():
    from nlptool.records import _parse_line

    both = _parse_line(b'{"text1": "a", "text2": "b"}\n', "<stdin>", 1, "jsonl", ["sentence1", "sentence2"], True, ())
    assert "--a-key and --b-key" in both.error
    second = _parse_line(b'{"sentence1": "a", "t": "b"}\n', "<stdin>", 1, "jsonl", ["sentence1", "sentence2"], True, ())
    assert "--b-key" in second.error and "--a-key" not in second.error
    single = _parse_line(b'{"t": "a"}\n', "<stdin>", 1, "jsonl", ["text"], False, ())
    assert "--text-key" in single.error


def test_wordvec_dim_reads_a_piped_corpus():
    res = runner.invoke(app, ["wordvec-dim", "--tokenizer", "whitespace", "-q"], input="a b c\nd e\n")
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    assert obj["vocab_size"] == 5 and obj["corpus"] == ["-"]

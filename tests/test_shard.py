"""--shard i/n: the shards' outputs, interleaved back, are the unsharded output (record for record)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from nlptool.cli import app
from nlptool.errors import UsageError
from nlptool.records import parse_shard, read_records

runner = CliRunner()

LINES = ["我爱北京天安门", '{"text": "北京我爱"}', '{"text": 5}', "{bad", "", "天安门", "北京"] * 3


@pytest.fixture()
def files(tmp_path, dict_path):
    d = dict_path
    a = tmp_path / "a.txt"
    a.write_text("\n".join(LINES[:10]) + "\n", encoding="utf-8")
    b = tmp_path / "b.txt"
    b.write_text("\n".join(LINES[10:]) + "\n", encoding="utf-8")
    return str(d), [str(a), str(b)]


def _interleave(parts: list[list[str]]) -> list[str]:
    n = len(parts)
    total = sum(map(len, parts))
    return [parts[k % n][k // n] for k in range(total)]


def test_parse_shard():
    assert parse_shard("0/1") == (0, 1) and parse_shard(" 3 / 4 ") == (3, 4)
    for bad in ("4/4", "-1/2", "1/0", "1", "a/b", "1/2/3", ""):
        with pytest.raises(UsageError):
            parse_shard(bad)


def test_read_records_shard_keeps_global_index(files):
    _, paths = files
    whole = list(read_records(paths))
    assert [r.index for r in whole] == list(range(len(LINES)))
    for n in (1, 2, 3, 5):
        parts = [list(read_records(paths, shard=(i, n))) for i in range(n)]
        assert [r.index for r in _interleave(parts)] == list(range(len(LINES)))
        assert all(r.index % n == i for i, p in enumerate(parts) for r in p)
        # the same records (line, source, error) as the unsharded read
        assert [(r.source, r.line, r.error, r.data) for r in _interleave(parts)] == \
            [(r.source, r.line, r.error, r.data) for r in whole]


@pytest.mark.parametrize("n", [2, 3])
def test_tokenize_sample_shards_interleave_to_the_whole(files, n):
    d, paths = files
    args = ["tokenize-sample", *paths, "--dict", d, "--seed", "7", "-k", "3", "-q"]
    whole = runner.invoke(app, args)
    assert whole.exit_code == 0, whole.output
    parts = []
    for i in range(n):
        r = runner.invoke(app, [*args, "--shard", f"{i}/{n}"])
        assert r.exit_code == 0, r.output
        parts.append(r.stdout.splitlines())
    assert _interleave(parts) == whole.stdout.splitlines()
    assert len(whole.stdout.splitlines()) == len(LINES)


def test_segment_shards_interleave_to_the_whole(files, tiny_bert_dir):
    _, paths = files
    args = ["segment", *paths, "--method", "masking", "-m", tiny_bert_dir, "--device", "cpu", "-q"]
    whole = runner.invoke(app, args)
    assert whole.exit_code == 0, whole.output
    parts = [runner.invoke(app, [*args, "--shard", f"{i}/2"]).stdout.splitlines() for i in range(2)]
    assert _interleave(parts) == whole.stdout.splitlines()
    words = [json.loads(x).get("words") for x in whole.stdout.splitlines()]
    assert words[0] and "".join(words[0]) == "我爱北京天安门"


@pytest.mark.parametrize("command", ["segment", "similarity", "tokenize-sample", "attribute", "qa-gen"])
@pytest.mark.parametrize("value", ["2/2", "a/2", "1", "0/0", "-1/3"])
def test_malformed_shard_is_a_one_line_usage_error(command, value):
    r = runner.invoke(app, [command, "--shard", value], input="x\n")
    assert r.exit_code == 2, r.output
    err = r.stderr.strip()
    assert err and "\n" not in err and "--shard" in err


def test_shard_strict_ignores_bad_lines_of_other_shards(files):
    d, paths = files
    # index 2 ({"text": 5}) and 3 ({bad) are bad: shard 1/3 (indices 1, 4, 7) never sees them, 2/3 stops
    ok = runner.invoke(app, ["tokenize-sample", paths[0], "--dict", d, "--seed", "1", "--strict", "--shard", "1/3", "-q"])
    bad = runner.invoke(app, ["tokenize-sample", paths[0], "--dict", d, "--seed", "1", "--strict", "--shard", "2/3", "-q"])
    assert (ok.exit_code, bad.exit_code) == (0, 3), (ok.output, bad.output)

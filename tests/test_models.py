"""The registry of built-in models, kind inference, and the one-line refusal of unreachable models."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from nlptool.cli import app
from nlptool.models import BUILTINS, REGISTRY, builtin_model_path, close_builtin, default_model, kind_of


def test_every_registry_row_has_its_files_and_the_kind_its_config_says():
    for row in BUILTINS:
        if row.package is not None:
            continue
        path = builtin_model_path(row.name)
        for f in row.files:
            assert (path / f).is_file(), (row.name, f)
        # read from the files, not through kind_of (which answers a built-in path from this registry)
        import json

        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
        archs = cfg.get("architectures") or []
        heads = {"ForMaskedLM": "masked-lm", "ForSequenceClassification": "sequence-classification",
                 "ForQuestionAnswering": "question-answering"}
        own = {"nlptool-char-tagger": "char-tagger", "nlptool-biaffine-parser": "dependency-parser"}
        from_files = own.get(cfg.get("model_type")) or next((k for s, k in heads.items() if any(a.endswith(s) for a in archs)),
                                                             "encoder")
        assert from_files == row.kind, row.name
        assert kind_of(str(path)) == row.kind


def test_default_models_come_from_the_registry():
    assert default_model("similarity") == "zh-sim-mini"
    assert default_model("segment --method tagger") == "zh-seg-mini"
    assert default_model("attribute") == "zh-sentiment-mini"
    with pytest.raises(KeyError):
        default_model("no-such-command")


def test_kind_of_a_directory_is_read_from_its_config(tiny_bert_dir, tmp_path):
    assert kind_of(tiny_bert_dir) == "masked-lm"
    assert kind_of(str(tmp_path)) is None  # no config.json: a hub id's kind is not known locally


@pytest.mark.parametrize("typo,name", [("zh-sim", "zh-sim-mini"), ("zh-bert-mni", "zh-bert-mini"),
                                        ("zh-sentiment", "zh-sentiment-mini")])
def test_a_typo_of_a_builtin_name_suggests_it(typo, name):
    assert close_builtin(typo) == name


@pytest.mark.parametrize("args", [["similarity", "--model", "zh-sim"], ["qa-gen", "--reader", "nothere"]])
def test_an_unknown_model_offline_is_one_line_with_the_fix(args, monkeypatch):
    """Neither built-in nor a directory, and the hub unreachable: one stderr line at once (no
    minute of retries), naming the closest built-in name."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = CliRunner().invoke(app, [*args, "-q"], input="今天\t明天\n")
    assert r.exit_code == 1
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "[model not found]" in lines[0] and "Fix:" in lines[0]
    if args[-1] == "zh-sim":
        assert "did you mean zh-sim-mini?" in lines[0]
    assert set(REGISTRY) >= {"zh-sim-mini", "zh-reader-mini"}

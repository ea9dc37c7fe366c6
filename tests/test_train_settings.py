"""One settings object per `train` command, one padding collate, progress for training.

* every `train` command's CLI, given only its data, builds the same settings object as Python's
  defaults (one home per default), and passes a progress callback only when a bar is shown;
* settings refuse unknown overrides and settings the command does not use;
* :func:`nlptool.training.pad_batch` equals the padding loops it replaced (written out here);
* the training functions report ``progress(step, total, stage)`` for every step, ending at the total;
* the CLI draws the bar on a terminal.
"""

from __future__ import annotations

import dataclasses
import io
import random
import time

import pytest
from typer.testing import CliRunner

from nlptool.cli import app
from nlptool.errors import UsageError
from nlptool.training import TrainSettings, defaults, pad_batch, pad_sequences

from test_train_atomic import _data

# command -> (module holding the library function the CLI calls, its name, settings class path)
COMMANDS = {
    "mlm": ("nlptool.mlm", "train_mlm", "nlptool.mlm:MLMSettings"),
    "classifier": ("nlptool.attribute.classifier", "train_classifier", "nlptool.attribute.classifier:ClassifierSettings"),
    "qa-gen": ("nlptool.qagen", "train_qa_gen", "nlptool.qagen.train:QAGenSettings"),
    "reader": ("nlptool.qagen.reader", "train_reader", "nlptool.qagen.reader:ReaderSettings"),
    "similarity": ("nlptool.similarity.train", "train_sentence_encoder", "nlptool.similarity.train:SimilaritySettings"),
    "segmenter": ("nlptool.segment.train", "train_segmenter", "nlptool.segment.train:SegmenterSettings"),
}


class _Captured(Exception):
    pass


def _settings_class(path: str):
    import importlib

    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def _capture(monkeypatch, cmd: str) -> list:
    import importlib

    module, func, _ = COMMANDS[cmd]
    got = []

    def fake(*args, **kwargs):
        got.append(next(a for a in (*args, *kwargs.values()) if isinstance(a, TrainSettings)))
        raise _Captured()

    monkeypatch.setattr(importlib.import_module(module), func, fake)
    return got


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_the_cli_defaults_are_the_settings_defaults(cmd, tmp_path, monkeypatch):
    got = _capture(monkeypatch, cmd)
    r = CliRunner().invoke(app, ["train", cmd, *_data(cmd, tmp_path), "--out", str(tmp_path / "m"), "-q"])
    assert r.exit_code == 1 and len(got) == 1, r.output
    cls = _settings_class(COMMANDS[cmd][2])
    assert got[0] == cls(), (got[0], cls())
    assert got[0].progress is None and got[0].log is None  # -q: no bar, no messages


@pytest.mark.parametrize("cmd", ["mlm", "similarity"])
def test_a_bar_only_when_stderr_is_a_terminal_and_not_quiet(cmd, tmp_path, monkeypatch):
    import nlptool.cli.console as common

    got = _capture(monkeypatch, cmd)
    args = ["train", cmd, *_data(cmd, tmp_path), "--out", str(tmp_path / "m")]
    CliRunner().invoke(app, args)  # CliRunner's stderr is not a terminal
    monkeypatch.setattr(common, "progress_enabled", lambda quiet: not quiet)
    CliRunner().invoke(app, args)
    CliRunner().invoke(app, [*args, "--quiet"])
    assert [s.progress is not None for s in got] == [False, True, False]
    assert [s.log is not None for s in got] == [True, True, False]


def test_overrides_unknown_fields_and_unused_settings():
    from nlptool.mlm import MLMSettings
    from nlptool.segment.train import SegmenterSettings

    s = MLMSettings.build(None, {"max_steps": 7, "layers": 1})
    assert (s.max_steps, s.layers, s.batch_size) == (7, 1, MLMSettings().batch_size)
    assert MLMSettings.build(s, {}) is s
    with pytest.raises(TypeError, match="no field epoch"):
        MLMSettings.build(None, {"epoch": 3})
    with pytest.raises(TypeError, match="must be a MLMSettings"):
        MLMSettings.build(SegmenterSettings(), {})
    with pytest.raises(UsageError, match="epochs is not a setting"):
        MLMSettings(epochs=2.0).check()
    with pytest.raises(UsageError, match="max_minutes is not a setting"):
        SegmenterSettings(max_minutes=1.0).check()
    for bad in ({"batch_size": 0}, {"learning_rate": float("nan")}, {"warmup_ratio": 1.0}, {"max_minutes": 0.0},
                {"max_steps": 0}, {"epochs": -1.0}, {"weight_decay": -0.1}):
        with pytest.raises(UsageError):
            TrainSettings(**bad).check()
    TrainSettings().check()
    # callbacks are not part of the settings' identity, nor of their record
    assert TrainSettings(log=print) == TrainSettings() and "log" not in TrainSettings().record()
    # nor are the fields a command does not use
    from nlptool.segment.train_parser import ParserSettings

    rec = ParserSettings().record()
    assert not set(ParserSettings.UNUSED) & set(rec) and rec["epochs"] == ParserSettings().epochs
    assert defaults(MLMSettings)["max_steps"] == 6000


def test_every_settings_class_checks_its_defaults():
    for _, _, path in COMMANDS.values():
        cls = _settings_class(path)
        cls().check()
        assert dataclasses.is_dataclass(cls) and issubclass(cls, TrainSettings)


def test_pad_batch_equals_the_loops_it_replaced():
    import numpy as np
    import torch

    rng = random.Random(0)
    batch = []
    for _ in range(5):
        n = rng.randint(1, 9)
        batch.append({"input_ids": [rng.randrange(5, 50) for _ in range(n)],
                      "token_type_ids": [int(i > n // 2) for i in range(n)],
                      "labels": np.array([rng.random() for _ in range(max(n - 1, 0))], dtype=np.float32),
                      "start_positions": rng.randrange(n), "source_len": rng.randint(1, n)})
    out = pad_batch(batch, {"input_ids": 3, "token_type_ids": 1}, scalars=("start_positions",))
    # the reference: the per-command loops (qa-gen's collate, the reader's, the tagger's)
    n = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), n), 3, dtype=torch.long)
    types = torch.ones(len(batch), n, dtype=torch.long)
    att = torch.zeros(len(batch), n, dtype=torch.long)
    for r, b in enumerate(batch):
        k = len(b["input_ids"])
        ids[r, :k] = torch.as_tensor(b["input_ids"])
        types[r, :k] = torch.as_tensor(b["token_type_ids"])
        att[r, :k] = 1
    assert list(out) == ["input_ids", "token_type_ids", "attention_mask", "start_positions"]
    for key, ref in (("input_ids", ids), ("token_type_ids", types), ("attention_mask", att)):
        assert out[key].dtype == ref.dtype and torch.equal(out[key], ref), key
    assert torch.equal(out["start_positions"], torch.tensor([b["start_positions"] for b in batch]))
    y = torch.zeros((len(batch), n - 1))
    for r, b in enumerate(batch):
        y[r, : len(b["labels"])] = torch.from_numpy(b["labels"])
    got = pad_sequences([b["labels"] for b in batch], dtype=torch.float32)
    assert got.dtype == torch.float32 and torch.equal(got, y)
    assert torch.equal(pad_sequences([[1, 2]], value=9, length=4), torch.tensor([[1, 2, 9, 9]]))


def _steps_reported(calls: list, stage: str) -> list[int]:
    return [d for d, _, s in calls if s == stage]


def test_trainer_commands_report_every_step(tiny_bert_dir, tmp_path):
    """A Trainer-based command (the classifier: the callback every Trainer command adds) and the
    plain loop of the similarity command report each step once, ending at the total."""
    from nlptool.attribute.classifier import LabeledData, train_classifier
    from nlptool.similarity.train import Pairs, train_sentence_encoder

    calls: list = []
    texts = [f"第{i}句很好" if i % 2 else f"第{i}句很差" for i in range(24)]
    data = LabeledData(texts, ["pos" if i % 2 else "neg" for i in range(24)], [f"x:{i}" for i in range(24)])
    m = train_classifier(data, tmp_path / "c", model=tiny_bert_dir, epochs=1, batch_size=8, device="cpu",
                         progress=lambda d, t, s: calls.append((d, t, s)))
    steps = _steps_reported(calls, "training")
    assert steps == list(range(m["steps"] + 1)) and {t for _, t, _ in calls} == {m["steps"]}
    calls.clear()
    pairs = Pairs(texts[:12], texts[12:], [float(i % 5) for i in range(12)])
    m = train_sentence_encoder("cosent", tmp_path / "s", model=tiny_bert_dir, pairs=pairs, max_steps=4, batch_size=4,
                               holdout=0, device="cpu", progress=lambda d, t, s: calls.append((d, t, s)))
    assert calls == [(k, 4, "training") for k in range(1, 5)] and m["steps"] == 4


def test_tagger_rounds_report_their_steps():
    import torch

    from nlptool.segment.tagger import TaggerVocab, new_tagger
    from nlptool.segment.train import LabelledClause, fit_tagger

    import numpy as np

    rng = random.Random(0)
    v = TaggerVocab(["[PAD]", "[UNK]", *"的一是了我不人在"])
    data = []
    for _ in range(40):
        ids = [rng.randrange(2, 10) for _ in range(rng.randint(2, 8))]
        lab = np.array([float(a < 5) for a in ids[:-1]], dtype=np.float32)
        data.append(LabelledClause(ids, np.zeros(len(ids) - 1), lab, np.ones_like(lab)))
    calls: list = []
    fit = fit_tagger(new_tagger(v, emb_dim=8, hidden=8), data, epochs=2, batch_size=8, learning_rate=1e-2,
                     device=torch.device("cpu"), progress=lambda d, t, s: calls.append((d, t, s)), stage="round 1")
    assert calls == [(k, fit["steps"], "round 1") for k in range(fit["steps"] + 1)] and fit["steps"] == 10


def test_the_bar_is_drawn_on_a_terminal(monkeypatch):
    """train_progress on a terminal console: the stage, steps done / total and a rate appear; a
    new stage replaces the bar; disabled, it yields None."""
    from rich.console import Console

    import nlptool.cli.console as common

    with common.train_progress(quiet=True) as progress:
        assert progress is None
    buf = io.StringIO()
    monkeypatch.setattr(common, "console", Console(file=buf, force_terminal=True, width=120))
    monkeypatch.setattr(common, "progress_enabled", lambda quiet: not quiet)
    with common.train_progress(quiet=False) as progress:
        for k in range(0, 51, 10):
            progress(k, 50, "training")
        time.sleep(0.6)  # the bar redraws 4 times a second
        progress(3, 7, "round 2 (steps)")
    text = buf.getvalue()
    assert "training" in text and "50/50" in text and "round 2 (steps)" in text and "3/7" in text


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), "0.1"])
def test_every_holdout_setting_has_one_rule(bad):
    """classifier, reader and qa-gen settings share training.check_holdout (one message)."""
    from nlptool.attribute.classifier import ClassifierSettings
    from nlptool.qagen.reader import ReaderSettings
    from nlptool.qagen.train import QAGenSettings

    for cls in (ClassifierSettings, ReaderSettings, QAGenSettings):
        cls(holdout=0.0).check()
        with pytest.raises(UsageError, match=r"--holdout .*expected a fraction in \[0, 1\)"):
            cls(holdout=bad).check()


def test_trainer_callbacks_budget_and_progress():
    """training.trainer_callbacks: the command's own callbacks first, a time budget only with
    max_minutes (it stops, saves or evaluates as asked, and calls on_stop once), progress only
    with a progress callback."""
    import time

    from transformers import TrainerControl, TrainerState

    from nlptool.training import trainer_callbacks

    mine = object()
    assert trainer_callbacks(TrainSettings(), mine) == [mine]
    got = trainer_callbacks(TrainSettings(progress=lambda d, t, s: None), mine)
    assert got[0] is mine and [type(c).__name__ for c in got[1:]] == ["TrainerProgress"]
    stops: list = []
    budget = trainer_callbacks(TrainSettings(max_minutes=1e-6), save=False, evaluate=True,
                               on_stop=lambda: stops.append(1))
    assert [type(c).__name__ for c in budget] == ["TimeBudget"]
    time.sleep(0.01)  # past the 60-microsecond budget
    for _ in range(2):
        control = budget[0].on_step_end(None, TrainerState(), TrainerControl())
    assert control.should_training_stop and control.should_evaluate and not control.should_save
    assert stops == [1]

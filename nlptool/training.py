"""What every ``nlptool train ...`` command shares: the settings (:class:`TrainSettings`, which
each command's settings class extends), progress reporting (a ``progress(done, total, stage)``
callback, :func:`trainer_progress` for the transformers ``Trainer``), the one padding collate
(:func:`pad_batch`), the device rule for training arguments (bf16/fp16 mixed precision on CUDA), a
wall-clock budget, a Trainer that keeps stdout clean, checkpoints beside the model directory, and
the export of a built-in model with its card (:func:`export_builtin`, :func:`render_card`).

Used by :mod:`nlptool.mlm`, :mod:`nlptool.attribute.classifier`, :mod:`nlptool.qagen`,
:mod:`nlptool.qagen.reader`, :mod:`nlptool.similarity.train` and :mod:`nlptool.segment.train`.
Nothing here prints: messages go to ``settings.log``, progress to ``settings.progress``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .errors import ModelError, UsageError

S = TypeVar("S", bound="TrainSettings")

#: ``progress(done, total, stage)``: ``done`` units (optimisation steps, or lines for a labelling
#: stage) of ``total`` (None when unknown) in the stage named ``stage`` ("training", "round 2", ...).
Progress = Callable[[int, "int | None", str], None]


# ------------------------------------------------------------------------------ settings


@dataclass(kw_only=True)
class TrainSettings:
    """The settings every ``nlptool train`` command shares. Each command extends it with its own
    defaults and extras (:class:`nlptool.mlm.MLMSettings`,
    :class:`nlptool.attribute.classifier.ClassifierSettings`, :class:`nlptool.qagen.train.QAGenSettings`,
    :class:`nlptool.qagen.reader.ReaderSettings`, :class:`nlptool.similarity.train.SimilaritySettings`,
    :class:`nlptool.segment.train.SegmenterSettings`); its CLI builds it from the options, whose
    defaults are read from it (:func:`defaults`), and its train function takes it (plus keyword
    overrides of its fields, :meth:`with_overrides`).

    Attributes:
        epochs: passes over the training data (may be fractional).
        max_steps: optimisation steps instead of ``epochs`` (the linear schedule decays to 0 there).
        max_minutes: wall-clock budget; the command stops, evaluates and saves what it has.
        batch_size: examples per optimisation step.
        learning_rate: peak AdamW learning rate.
        warmup_ratio: share of the steps with a linear warm-up, in [0, 1).
        weight_decay: AdamW weight decay.
        seed: seeds splits, initialisation, shuffling and dropout: the same seed, data and
            settings give the same model on the CPU.
        device: ``auto|cpu|cuda|cuda:N`` (:func:`nlptool.models.resolve_device`).
        log: called with one-line messages (the CLI prints them on stderr); never printed here.
        progress: called as ``progress(done, total, stage)`` at least once per optimisation step
            (the CLI draws a progress bar when stderr is a terminal).
    """

    #: Fields of this class that a command does not use: a value other than the default is refused
    #: by :meth:`check` (rather than silently ignored).
    UNUSED: ClassVar[tuple[str, ...]] = ()

    epochs: float | None = 1.0
    max_steps: int | None = None
    max_minutes: float | None = None
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0
    device: str = "auto"
    log: Callable[[str], None] | None = field(default=None, repr=False, compare=False)
    progress: Progress | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(cls: type[S], settings: S | None = None, overrides: Mapping[str, Any] | None = None) -> S:
        """``settings`` (default: ``cls()``) with ``overrides`` applied (:meth:`with_overrides`).

        Raises:
            TypeError: ``settings`` is not a ``cls``, or an override names no field of ``cls``.
        """
        if settings is None:
            settings = cls()
        elif not isinstance(settings, cls):
            raise TypeError(f"settings must be a {cls.__name__}, got {type(settings).__name__}")
        return settings.with_overrides(**(overrides or {}))

    def with_overrides(self: S, **overrides: Any) -> S:
        """A copy with some fields changed (``dataclasses.replace``).

        Raises:
            TypeError: a name that is not a field (the known fields are listed).
        """
        if not overrides:
            return self
        names = {f.name for f in dataclasses.fields(self)}
        bad = sorted(set(overrides) - names)
        if bad:
            raise TypeError(f"{type(self).__name__} has no field {', '.join(bad)}; fields: {', '.join(sorted(names))}")
        return dataclasses.replace(self, **overrides)

    def check(self) -> None:
        """Refuse settings that cannot train, with one line naming the setting.

        Raises:
            UsageError: a non-positive batch, step count, epoch count or time budget; a learning
                rate that is not a finite number > 0; a warm-up share outside [0, 1); a negative
                weight decay; a field the command does not use (:attr:`UNUSED`) set.
        """
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in self.UNUSED:
            if getattr(self, name) != defaults[name]:
                raise UsageError(f"{type(self).__name__}: {name} is not a setting of this command")
        check_int_at_least("the batch size", self.batch_size, 1)
        if self.max_steps is not None:
            check_int_at_least("the number of steps", self.max_steps, 1)
        if "epochs" not in self.UNUSED and self.epochs is not None:
            _finite_positive("the number of epochs", self.epochs)
        _finite_positive("the learning rate", self.learning_rate)
        if self.max_minutes is not None:
            _finite_positive("the time budget in minutes", self.max_minutes)
        if not (_is_number(self.warmup_ratio) and 0 <= self.warmup_ratio < 1):
            raise UsageError(f"the warm-up ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if not (_is_number(self.weight_decay) and math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise UsageError(f"the weight decay must be a finite number >= 0, got {self.weight_decay!r}")

    def say(self, message: str) -> None:
        """Pass one line to :attr:`log` (nothing when there is none)."""
        if self.log is not None:
            self.log(message)

    def tick(self, done: int, total: int | None, stage: str = "training") -> None:
        """Pass a progress report to :attr:`progress` (nothing when there is none)."""
        if self.progress is not None:
            self.progress(done, total, stage)

    def record(self) -> dict[str, Any]:
        """The settings as JSON-ready values, for metrics files: callbacks and the fields the
        command does not use (:attr:`UNUSED`) left out."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("log", "progress", *self.UNUSED)}


def defaults(cls: type[TrainSettings]) -> dict[str, Any]:
    """``{field: default}`` of a settings class: what the CLI options of its command default to
    (one home per default)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    return out


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_int_at_least(name: str, v, lo: int) -> None:
    """The rule of an integer setting: an ``int`` (not a bool) >= ``lo``.

    Raises:
        UsageError: ``"{name} must be an integer >= {lo}, got {v!r}"``.
    """
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise UsageError(f"{name} must be an integer >= {lo}, got {v!r}")


def check_holdout(v) -> None:
    """The rule of every ``holdout`` setting (``--holdout``): the share of the data held out for
    evaluation, a number in [0, 1) (0 = none).

    Raises:
        UsageError: anything else, naming the option.
    """
    if not (_is_number(v) and 0 <= v < 1):
        raise UsageError(f"--holdout {v}: expected a fraction in [0, 1)")


def _finite_positive(name: str, v) -> None:
    if not _is_number(v) or not math.isfinite(v) or v <= 0:
        raise UsageError(f"{name} must be a finite number > 0, got {v!r}")


# ------------------------------------------------------------------------------ progress


def trainer_progress(progress: Progress, stage: str = "training"):
    """A ``TrainerCallback`` that reports ``progress(global_step, max_steps, stage)`` when training
    begins (a resumed run starts at its checkpoint's step) and after every optimisation step. It
    changes nothing in the run."""
    from transformers import TrainerCallback

    class TrainerProgress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            progress(int(state.global_step), int(state.max_steps) or None, stage)

        def on_step_end(self, args, state, control, **kwargs):
            progress(int(state.global_step), int(state.max_steps) or None, stage)

    return TrainerProgress()


# ------------------------------------------------------------------------------ batches


def pad_sequences(rows: Sequence[Sequence], *, value: int | float = 0, dtype=None, length: int | None = None):
    """Right-pad variable-length rows (lists, tuples, numpy arrays) into one tensor.

    Args:
        rows: ``n`` rows; row ``i`` fills ``out[i, :len(rows[i])]``.
        value: the padding value.
        dtype: the tensor's dtype (default ``torch.long``).
        length: the padded length (default: the longest row); longer rows raise.
    Returns:
        A ``(n, length)`` tensor.
    """
    import torch

    n = max((len(r) for r in rows), default=0) if length is None else length
    out = torch.full((len(rows), n), value, dtype=dtype or torch.long)
    for i, r in enumerate(rows):
        if len(r):
            out[i, : len(r)] = torch.as_tensor(r)
    return out


def pad_batch(batch: Sequence[Mapping[str, Any]], pad: Mapping[str, int | float], *,
              dtypes: Mapping[str, Any] | None = None, mask: str | None = "attention_mask",
              mask_of: str = "input_ids", scalars: Sequence[str] = ()) -> dict[str, Any]:
    """The one padding collate of the training loops: a batch of examples (dicts of lists) into
    padded tensors.

    Args:
        batch: the examples.
        pad: ``{key: padding value}`` of the variable-length fields, each padded to its own
            longest row (:func:`pad_sequences`).
        dtypes: ``{key: torch dtype}`` where not ``torch.long``.
        mask: the key of the ``(n, length)`` 0/1 long mask of ``mask_of``'s real positions (None:
            no mask).
        scalars: keys of one number per example, stacked into a ``(n,)`` tensor
            (``start_positions``, ``labels``).
    Returns:
        ``{key: tensor}`` for the keys of ``pad``, ``mask`` and ``scalars``.
    """
    import torch

    dtypes = dtypes or {}
    out = {k: pad_sequences([b[k] for b in batch], value=v, dtype=dtypes.get(k)) for k, v in pad.items()}
    if mask is not None:
        lengths = [len(b[mask_of]) for b in batch]
        out[mask] = pad_sequences([[1] * k for k in lengths], value=0)
    for k in scalars:
        out[k] = torch.as_tensor([b[k] for b in batch])
    return out


def training_arguments(output_dir: str, device, **kwargs: Any):
    """``transformers.TrainingArguments`` with nlptool's defaults: bf16 (fp16 where bf16 is missing) on CUDA and
    ``use_cpu`` on the CPU (from the device chosen by :func:`nlptool.models.resolve_device`), no
    reporting integrations, no tqdm bars, no dataloader worker processes, linear schedule.
    ``kwargs`` are the command's own settings (and may override these)."""
    from transformers import TrainingArguments

    cuda = device.type == "cuda"
    bf16 = False
    if cuda:
        import torch

        bf16 = bool(torch.cuda.is_bf16_supported())
    defaults = {
        # bf16 where the GPU has it (Ampere and newer: no loss scaling needed), fp16 otherwise
        "bf16": bf16,
        "fp16": cuda and not bf16,
        "use_cpu": device.type == "cpu",
        "report_to": [],
        "disable_tqdm": True,
        # on CUDA the collator must not starve the GPU; on the CPU workers would compete for cores
        "dataloader_num_workers": 4 if cuda else 0,
        "dataloader_pin_memory": cuda,
        "lr_scheduler_type": "linear",
    }
    return TrainingArguments(output_dir=str(output_dir), **{**defaults, **kwargs})


def trainer_callbacks(settings: TrainSettings, *first, **budget) -> list:
    """The ``Trainer`` callbacks of a ``train`` command: its own ``first`` (logging), then
    :func:`time_budget` (``settings.max_minutes``, with ``budget``'s keywords) when a time budget
    is set and :func:`trainer_progress` when ``settings.progress`` is. Call it just before the
    ``Trainer`` is made: the budget's clock starts here."""
    callbacks = list(first)
    if settings.max_minutes:
        callbacks.append(time_budget(settings.max_minutes, **budget))
    if settings.progress is not None:
        callbacks.append(trainer_progress(settings.progress))
    return callbacks


def time_budget(minutes: float, *, save: bool = True, evaluate: bool = False, on_stop=None):
    """A ``TrainerCallback`` that stops training once ``minutes`` of wall time have passed since it
    was made, asking the Trainer to save a checkpoint (``save``) and/or evaluate (``evaluate``)
    at that step; ``on_stop()`` is called once when it fires."""
    from transformers import TrainerCallback

    deadline = time.monotonic() + minutes * 60

    class TimeBudget(TrainerCallback):
        fired = False

        def on_step_end(self, args, state, control, **kwargs):
            if time.monotonic() > deadline:
                control.should_training_stop = True
                control.should_save = control.should_save or save
                control.should_evaluate = control.should_evaluate or evaluate
                if not self.fired and on_stop is not None:
                    on_stop()
                self.fired = True
            return control

    return TimeBudget()


def quiet_trainer(trainer):
    """Remove the Trainer's printer and progress callbacks (they write log dicts and bars to
    stdout, which carries data only); commands report through their own ``log`` instead."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


@contextlib.contextmanager
def checkpoint_dir(out: str | os.PathLike, *, resume: bool = False,
                   log: Callable[[str], None] | None = None) -> Iterator[tuple[Path, Path | None]]:
    """Where a ``train`` command's Trainer checkpoints go: ``OUT.work/checkpoints``
    (:func:`nlptool.paths.work_dir`), never inside the model directory ``OUT``.

    Yields ``(checkpoints, resume_from)``: the directory to give the Trainer as ``output_dir``, and
    the checkpoint to continue from (the last ``checkpoint-N``) when ``resume`` and there is one,
    else ``None``. A checkpoint an earlier version left in ``OUT/checkpoints`` is resumed from in
    place (read only; new checkpoints go to ``OUT.work``).

    * Without ``resume``, checkpoints of an earlier run are removed first (logged): a fresh run
      starts over, and the Trainer's rotation never mixes two runs' checkpoints.
    * On exit, success or failure (Ctrl-C included), the checkpoints stay, so ``--resume`` continues
      (or extends) the run; when there is none (the run stopped before its first save) what this
      call created is removed, so a failed run leaves nothing.

    Raises:
        UsageError: ``OUT.work`` exists and is not a directory; ``OUT`` is not a valid model path.
    """
    from .paths import work_dir_scope

    say = log or (lambda s: None)

    def last(d: Path) -> Path | None:
        cks = [p for p in d.glob("checkpoint-*") if p.is_dir() and p.name.rsplit("-", 1)[-1].isdigit()]
        return max(cks, key=lambda p: int(p.name.rsplit("-", 1)[-1])) if cks else None

    with work_dir_scope(out) as work:
        ckpt = work / "checkpoints"
        found = last(ckpt) if ckpt.is_dir() else None
        if found is not None and not resume:
            say(f"starting over: removing the checkpoints of an earlier run in {ckpt} (--resume continues them)")
            shutil.rmtree(ckpt)
            found = None
        if found is None and resume:
            legacy = Path(out) / "checkpoints"
            found = last(legacy) if legacy.is_dir() else None
        if resume:
            say(f"resuming from {found}" if found is not None else "--resume: no checkpoint found; starting from scratch")
        ckpt.mkdir(exist_ok=True)
        try:
            yield ckpt, found
        finally:
            if last(ckpt) is None:
                shutil.rmtree(ckpt, ignore_errors=True)


# ------------------------------------------------------------------------------ export of a built-in model


@dataclass
class Card:
    """What a built-in model's ``README.md`` says of that model; :func:`render_card` puts it in the
    one template every card follows.

    Attributes:
        summary: one paragraph: what the model is, what it was trained from, by which command.
        sections: ``(title, markdown)`` in order (data, training, measured quality, limits, ...),
            written by the command's ``card`` function from its metrics files.
        quick: a smoke build (``QUICK=1``): the card says so first.
    """

    summary: str
    sections: list[tuple[str, str]] = field(default_factory=list)
    quick: bool = False


def render_card(name: str, card: Card, *, facts: Mapping[str, Any], commands: Sequence[str] = ()) -> str:
    """The README.md of the built-in model ``name``: the one template of every card.

    ``# name``, a smoke-build warning (``card.quick``), ``card.summary``, a table of the facts
    every model has (how nlptool loads it, which command it is the default of, its files, the size
    of its fp16 weights and its parameters, from ``facts``: :func:`export_builtin`'s), then
    ``card.sections`` in order, then ``## Rebuild`` with ``commands`` (the stage driver's, see
    ``scripts/models/build.py``).
    """
    lines = [f"# {name}", ""]
    if card.quick:
        lines += ["**Smoke build (QUICK=1): a few steps on a few rows; not a usable model.**", ""]
    lines += [card.summary.strip(), ""]
    default_for = ", ".join(f"`nlptool {c}`" for c in facts.get("default_for", ())) or "none (pass it with --model)"
    lines += [
        "| | |",
        "|---|---|",
        f"| loaded as | {facts.get('kind', '?')} (`--model {name}`) |",
        f"| default model of | {default_for} |",
        f"| weights | fp16 safetensors, {facts.get('size_bytes', 0) / 1e6:.1f} MB, {facts.get('parameters', 0):,} parameters |",
        f"| files | {', '.join(f'`{f}`' for f in facts.get('files', ()))} |",
        "",
    ]
    for title, body in card.sections:
        lines += [f"## {title}", "", body.strip(), ""]
    if commands:
        lines += [rebuild_section(name, commands), ""]
    return "\n".join(lines)


def rebuild_section(name: str, commands: Sequence[str]) -> str:
    """The ``## Rebuild`` section of a card: the stage driver's ``commands`` in a ``sh`` block."""
    return "\n".join(["## Rebuild", "",
                      f"From the repository root; `sh scripts/models/build.sh --dry-run {name}` prints these commands "
                      "without running them:", "", "```sh", *commands, "```"])


def export_weights(src: str | os.PathLike, dst: str | os.PathLike) -> tuple[int, int]:
    """Write the model in ``src`` to the directory ``dst`` with fp16 safetensors weights (loaders
    upcast to fp32 on the CPU), its config and its tokenizer or vocabulary, plus its side files
    (``nlptool_*.json`` settings, ``sentence_config.json``, ``lexicon.tsv``).

    The head written is the one ``src`` holds (:func:`nlptool.models.kind_of`): a Hugging Face
    masked LM, encoder, sequence classifier (refused without trained head weights) or span reader
    through transformers, or nlptool's character tagger (its tensors as fp16 safetensors).

    Returns:
        ``(size of model.safetensors in bytes, number of parameters)``.
    Raises:
        ModelError: ``src`` holds no model, or a classifier without trained head weights.
    """
    from .models import OWN_FORMATS, check_trained_head, kind_of

    src, dst = Path(src), Path(dst)
    kind = kind_of(src)
    if kind is None:
        raise ModelError(f"{src}: no config.json; not a model directory to export")
    dst.mkdir(parents=True, exist_ok=True)
    if kind in OWN_FORMATS:
        import torch
        from safetensors.torch import load_file, save_file

        state = load_file(str(src / "model.safetensors"))
        params = sum(int(t.numel()) for t in state.values())
        if all(t.dtype == torch.float16 or not t.is_floating_point() for t in state.values()):
            shutil.copyfile(src / "model.safetensors", dst / "model.safetensors")
        else:
            save_file({k: (t.half() if t.is_floating_point() else t).contiguous() for k, t in state.items()},
                      str(dst / "model.safetensors"))
        for f in ("config.json", "vocab.txt", "words.txt", "chars.txt"):  # the tagger's / the parser's
            if (src / f).is_file():
                shutil.copyfile(src / f, dst / f)
    else:
        import torch
        from transformers import (AutoModel, AutoModelForMaskedLM, AutoModelForQuestionAnswering,
                                  AutoModelForSequenceClassification, AutoTokenizer)

        cls = {"masked-lm": AutoModelForMaskedLM, "encoder": AutoModel, "question-answering": AutoModelForQuestionAnswering,
               "sequence-classification": AutoModelForSequenceClassification}[kind]
        net, info = cls.from_pretrained(src, dtype=torch.float32, output_loading_info=True)
        if kind == "sequence-classification":
            check_trained_head(str(src), info.get("missing_keys") or [])
        net = net.half()
        params = sum(p.numel() for p in net.parameters())
        net.save_pretrained(dst, safe_serialization=True)
        AutoTokenizer.from_pretrained(src).save_pretrained(dst)
    for f in sorted(src.glob("nlptool_*.json")) + [src / "sentence_config.json", src / "lexicon.tsv"]:
        if f.is_file():
            shutil.copyfile(f, dst / f.name)
    return (dst / "model.safetensors").stat().st_size, int(params)


def export_builtin(src: str | os.PathLike, name: str, *, card: Card | Callable[[dict], Card],
                   commands: Sequence[str] = (), dest: str | os.PathLike | None = None,
                   metrics: Mapping[str, Any] | None = None,
                   extra_files: Mapping[str, str | os.PathLike] | None = None) -> dict[str, Any]:
    """Export a trained model as the built-in model ``name``: the one export of every stage of
    ``make models`` (``scripts/models/build.py``).

    Writes, into a new directory beside ``dest`` that then replaces ``dest`` whole (the old
    directory is removed only once the new one is complete; files follow the umask):
    the fp16 weights, config, tokenizer and side files (:func:`export_weights`);
    ``training_metrics.json`` (``metrics``, else ``src``'s ``metrics.json`` or
    ``training_metrics.json``); ``extra_files`` (``{name in dest: source path}``, e.g. the
    evaluation JSON or an IDF table); and ``README.md`` from :func:`render_card`.

    Args:
        src: the model directory a ``train`` command wrote.
        name: a row of :data:`nlptool.models.BUILTINS` (its kind, default commands and the files
            the directory must hold come from there).
        card: the model's :class:`Card`, or a function of the export facts (``size_bytes``,
            ``parameters``, ...) returning it (called before ``extra_files`` are copied, so it may
            write one of them).
        commands: the build commands for the card's Rebuild section.
        dest: the model directory (default: the built-in's directory in the package).
    Returns:
        The facts: ``path``, ``kind``, ``default_for``, ``files``, ``size_bytes``, ``parameters``.
    Raises:
        ModelError: ``name`` is not a built-in model of nlptool, ``src`` is not a model, or the
            result lacks a file the registry row lists.
    """
    import tempfile

    from .models import REGISTRY
    from .paths import _umask, _umask_modes

    row = REGISTRY.get(name)
    if row is None or row.package is not None:
        raise ModelError(f"{name!r} is not a built-in model shipped inside nlptool ({', '.join(n for n, r in REGISTRY.items() if r.package is None)})")
    src = Path(src)
    dest = Path(dest) if dest is not None else row.path
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        os.chmod(stage, 0o777 & ~_umask())
        size, params = export_weights(src, stage)
        if metrics is None:
            for f in ("metrics.json", "training_metrics.json"):
                if (src / f).is_file():
                    metrics = json.loads((src / f).read_text(encoding="utf-8"))
        if metrics is not None:
            (stage / "training_metrics.json").write_text(json.dumps(metrics, indent=1, ensure_ascii=False) + "\n",
                                                         encoding="utf-8")
        files = sorted({*os.listdir(stage), *(extra_files or {}), "README.md"})
        facts = {"path": str(dest), "kind": row.kind, "default_for": list(row.default_for), "files": files,
                 "size_bytes": size, "parameters": params}
        the_card = card(facts) if callable(card) else card  # may write an extra file (a report with the facts)
        for target, path in (extra_files or {}).items():
            shutil.copyfile(path, stage / target)
        (stage / "README.md").write_text(render_card(name, the_card, facts=facts, commands=commands), encoding="utf-8")
        missing = [f for f in row.files if not (stage / f).is_file()]
        if missing:
            raise ModelError(f"export of {name} from {src}: the registry row lists {', '.join(missing)}, which the "
                             "model does not have (wrong source directory?)")
        _umask_modes(str(stage))
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
            os.rename(dest, old)
        try:
            os.rename(stage, dest)
        except BaseException:
            if old is not None:
                os.rename(old, dest)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return facts

"""What every ``nlptool train ...`` command shares around the transformers ``Trainer``: the device
rule for training arguments (bf16/fp16 mixed precision on CUDA), a wall-clock budget, and a Trainer that keeps stdout clean.

Used by :mod:`nlptool.mlm`, :mod:`nlptool.attribute.classifier`, :mod:`nlptool.qagen.reader` and :mod:`nlptool.qagen`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


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

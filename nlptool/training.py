"""What every ``nlptool train ...`` command shares around the transformers ``Trainer``: the device
rule for training arguments (bf16/fp16 mixed precision on CUDA), a wall-clock budget, and a Trainer that keeps stdout clean.

Used by :mod:`nlptool.mlm`, :mod:`nlptool.classifier` and :mod:`nlptool.qagen`.
"""

from __future__ import annotations

import time
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

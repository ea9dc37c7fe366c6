"""How many CPU threads torch runs an operation on: one rule for every command (docs/benchmarks.md,
"Threads").

torch's default intra-op pool has one thread per visible CPU, and every operation (a matrix
product, a sigmoid) is split across them and waits for the slowest. On a machine whose CPUs are not
really free (cloud vCPUs that are hyperthreads or time slices of shared cores, a container's CPU
quota, a neighbour busy on the other core) that wait dominates: users measured ``segment`` at
2,753 chars/s with torch's default 2 threads against 33,398 with ``OMP_NUM_THREADS=1`` on a 2-core
machine, and a bare ``nn.LSTM(256, 128, bidirectional=True)`` at 9.8 s against 1.3 s. One thread
never waits on another, so its speed is the same on both kinds of machine; more throughput comes
from more processes (``--shard i/n``, ``--engine ray``), each one thread, as Ray and Dask workers
already run (docs/scale-out.md).

The rule (:func:`apply_thread_rule`), in order:

1. ``--threads N`` (:data:`nlptool.cli.options.ThreadsOpt`): N threads.
2. ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` set in the environment (a positive integer): the
   user's setting wins (the first of the two that is set).
3. Otherwise :data:`RULE` by command kind: 1 for the character tagger (``segment``: an LSTM whose
   steps are small products, where a second thread only adds waiting) and 1 for the BERT commands
   (measured here, ``python benchmarks/bench_threads.py``: a second thread gains at most 1.2x on an
   idle 2-core machine and loses 2-7x on a busy one). Commands without torch (``none``) are not
   touched.

Inter-op threads (torch's pool for parallel *operators*, unused by these eager forward passes) are
left alone. Library code never calls this: it is the CLI's choice, made once per process before a
model loads (:func:`nlptool.cli.run.apply_threads`, called by ``run_record_command``, by
``similarity``'s search and ``--matrix`` modes and by ``load_for_cli``); a Python user sets
``torch.set_num_threads`` as they like.

That call is also where a CLI run first imports torch, through :func:`import_torch`: with the
cyclic garbage collector paused, then frozen (docs/benchmarks.md, "Start-up").
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from typing import NamedTuple

#: Intra-op threads per process by command kind when neither ``--threads`` nor the environment
#: says otherwise (see the module docstring for the measurements behind it).
RULE = {"tagger": 1, "bert": 1}
#: The environment variables a user sets to choose the threads of OpenMP/MKL (and torch), in order.
ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


class ThreadChoice(NamedTuple):
    """What :func:`apply_thread_rule` decided: ``threads`` (None when it left torch alone) and
    where the number came from: ``"--threads"``, an environment variable's name, ``"rule"``, or
    ``"none"`` (a command that does not run torch)."""

    threads: int | None
    source: str


def env_threads(environ=None) -> tuple[int, str] | None:
    """``(n, name)`` of the first of :data:`ENV_VARS` that is set to a positive integer (OpenMP's
    list form ``4,2`` counts its first entry), or None."""
    environ = os.environ if environ is None else environ
    for name in ENV_VARS:
        value = environ.get(name, "").strip()
        if not value:
            continue
        try:
            n = int(value.split(",")[0])
        except ValueError:
            continue
        if n > 0:
            return n, name
    return None


def thread_count(command_kind: str, threads: int | None = None, environ=None) -> ThreadChoice:
    """The rule without its effect: how many intra-op threads a command of ``command_kind``
    (``tagger``, ``bert`` or ``none``) gets, given ``--threads`` and the environment.

    Raises:
        ValueError: ``threads`` < 1, or an unknown ``command_kind``.
    """
    if command_kind not in (*RULE, "none"):
        raise ValueError(f"command kind must be one of {', '.join((*RULE, 'none'))}, not {command_kind!r}")
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads {threads}: must be at least 1")
        return ThreadChoice(int(threads), "--threads")
    env = env_threads(environ)
    if env is not None:
        return ThreadChoice(env[0], env[1])
    if command_kind == "none":
        return ThreadChoice(None, "none")
    return ThreadChoice(RULE[command_kind], "rule")


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector for the block (a heavy import: torch, POT with scipy),
    then enable it again only if it was enabled, also when the block raises. Reference counting
    frees as usual meanwhile."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def import_torch():
    """The ``torch`` module, imported with the cyclic garbage collector paused and the objects of
    the import then frozen (:func:`gc.freeze`): the first import of a CLI run
    (:func:`apply_thread_rule`). When torch is imported already, it is returned and nothing else
    happens.

    ``import torch`` creates some 170,000 objects that live as long as the process; with the
    collector on, the import sets off collections that walk them again and again, and after it
    every full collection (model loading, the run, the last one at exit) walks them once more.
    Paused, then frozen into the permanent generation, they are never walked: a bare ``import
    torch`` process took 1.5 CPU s instead of 1.9-2.0 on the 2-core machine (pausing alone saves
    nothing: the collections come due once the collector is back). Reference counting frees as
    usual meanwhile; the collector is enabled again afterwards only if it was enabled (a caller who
    disabled it keeps it disabled), also when the import fails. The one cost: a reference cycle
    among the objects alive at the freeze is never collected (:func:`gc.unfreeze` undoes it).

    Raises:
        ImportError: torch is not installed (or its import failed).
    """
    if sys.modules.get("torch") is not None:
        return sys.modules["torch"]
    with gc_paused():
        import torch
    gc.freeze()
    return torch


def apply_thread_rule(command_kind: str, threads: int | None = None) -> ThreadChoice:
    """Set torch's intra-op threads for this process by :func:`thread_count` and return the choice.
    A ``none`` command does not import torch (nor set anything, unless ``--threads`` or the
    environment names a number and torch is already imported).

    Raises:
        ValueError: as :func:`thread_count`.
    """
    choice = thread_count(command_kind, threads)
    if choice.threads is None:
        return choice
    if command_kind == "none" and "torch" not in sys.modules:
        return choice
    torch = import_torch()
    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    return choice


def command_kind(command) -> str:
    """The kind of a command object (:class:`nlptool.engine.Command`) for the rule: its
    ``thread_kind`` attribute when it has one; ``tagger`` for ``segment --method tagger`` without
    ``--parse``; ``none`` for ``tokenize-sample`` (no torch); ``bert`` for the rest."""
    kind = getattr(command, "thread_kind", None)
    if isinstance(kind, str):
        return kind
    module = type(command).__module__
    config = getattr(command, "config", None) or {}
    if module.startswith("nlptool.tokenize_sample"):
        return "none"
    if module.startswith("nlptool.segment") and config.get("method") == "tagger" and config.get("parse", "none") == "none":
        return "tagger"
    return "bert"

"""``--engine ray``: a record command's worker (:mod:`nlptool.workers`) on a Ray actor pool.

Two ways out (docs/scale-out.md):

* :func:`map_records` streams results back through the driver **in input order**: the driver
  reads the input with :func:`nlptool.records.read_records` (so stdin, ``--shard``, ``--strict`` and
  every bad-line rule are those of the local engine), sends chunks of good records to ``workers``
  actors (one model load each; at most two chunks in flight per actor, so memory stays bounded),
  and builds each output object with :func:`nlptool.jsonl.output_record`, exactly as
  :func:`nlptool.engine.map_records` does. The output is byte for byte the local engine's.
* :func:`write_dir` runs entirely on the cluster with Ray Data: ``read_binary_files`` (the lines
  are then split and parsed by the I/O layer's own rules, so line numbers and bad-line errors are
  the local engine's; ``read_text`` would split on U+2028 and fail a whole file on one invalid
  UTF-8 byte), ``map_batches`` with the worker on an actor pool (``concurrency``, ``num_gpus``),
  and one JSONL file per block into the output directory (Ray's write order; each line is the
  local engine's line for that record).

Ray connects to the cluster named by ``RAY_ADDRESS`` (Ray's own convention), or starts a local one.
Ray is imported here only; without it :func:`require_ray` raises a :class:`UsageError` naming
``pip install 'nlptool[ray]'``.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .errors import UsageError
from .records import Record
from .engine import chunk_outputs, read_chunk
from .jsonl import safe_json_line

INSTALL_HINT = "the ray engine needs Ray: pip install 'nlptool[ray]'"


def require_ray():
    """Import Ray.

    Raises:
        UsageError: Ray is not installed (the message says how to install it).
    """
    try:
        import ray
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return ray


def init(num_cpus: int | None = None):
    """Connect to ``RAY_ADDRESS`` or start a local Ray (``num_cpus``: the logical CPUs it
    schedules; default all cores), unless this process is already connected. Returns ``ray``."""
    ray = require_ray()
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS") or None
        kw: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False, "configure_logging": False}
        if address is None and num_cpus is not None:
            kw["num_cpus"] = num_cpus
        ray.init(address=address, **kw)
    return ray


#: Seconds the actor pool may take to start (placement, model-free construction) before the run
#: is refused: a pool whose resources the cluster cannot provide would otherwise wait forever.
START_TIMEOUT = float(os.environ.get("NLPTOOL_RAY_START_TIMEOUT", "120"))


def local_cpus() -> int:
    """Logical CPUs of a local Ray: the machine's cores plus one for Ray Data's read tasks (the
    actors take one each, and would otherwise starve the reads)."""
    return (os.cpu_count() or 1) + 1


def check_pool(ray, workers: int, gpus_per_worker: float) -> None:
    """Refuse a pool the cluster cannot hold, before any actor is created.

    Raises:
        UsageError: ``workers`` above the cluster's CPUs (one per actor; a local Ray keeps one for
            reading), or GPUs asked for where the cluster has none or too few.
    """
    res = ray.cluster_resources()
    cpus = int(res.get("CPU", 0))
    usable = cpus - 1 if not os.environ.get("RAY_ADDRESS") else cpus
    if workers > max(usable, 1):
        raise UsageError(f"--workers {workers}: the Ray cluster has {cpus} CPU(s), room for at most "
                         f"{max(usable, 1)} worker(s) (one CPU each)")
    if gpus_per_worker > 0:
        gpus = float(res.get("GPU", 0))
        if gpus <= 0:
            raise UsageError(f"--gpus-per-worker {gpus_per_worker:g}: the Ray cluster has no GPU (use 0 for CPU workers)")
        if gpus_per_worker * workers > gpus + 1e-9:
            raise UsageError(f"--gpus-per-worker {gpus_per_worker:g} x --workers {workers} needs "
                             f"{gpus_per_worker * workers:g} GPUs; the Ray cluster has {gpus:g}")


def start_pool(ray, worker, workers: int, gpus_per_worker: float) -> list:
    """``workers`` actors holding ``worker``, each started within :data:`START_TIMEOUT` seconds.

    Raises:
        UsageError: see :func:`check_pool`.
        NlptoolError: the actors did not start in time (the cluster cannot place them).
    """
    from .errors import NlptoolError

    check_pool(ray, workers, gpus_per_worker)
    actor_cls = ray.remote(_Actor).options(num_cpus=1, num_gpus=gpus_per_worker)
    actors = [actor_cls.remote(worker) for _ in range(workers)]
    try:
        ray.get([a.pid.remote() for a in actors], timeout=START_TIMEOUT)
    except ray.exceptions.GetTimeoutError:
        for a in actors:
            ray.kill(a)
        raise NlptoolError(f"the Ray actor pool did not start within {START_TIMEOUT:g} s (the cluster cannot "
                           "place it; fewer --workers or --gpus-per-worker, or NLPTOOL_RAY_START_TIMEOUT)") from None
    return actors


class _Actor:
    """The actor body: holds one worker (its model loads once, in the actor's process)."""

    def __init__(self, worker):
        self.worker = worker

    def results(self, records: list[Record]) -> list:
        return self.worker.safe_results(records)

    def pid(self) -> int:
        return os.getpid()


def _slim(r: Record) -> Record:
    # what a worker reads: texts and index (the passed-through fields stay with the driver)
    return Record(r.source, r.line, texts=r.texts, index=r.index)


def map_records(records: Iterable[Record], worker, *, workers: int = 2, gpus_per_worker: float = 0.0,
                chunk_size: int = 1000, strict: bool = False, on_chunk=None) -> Iterator[dict[str, Any]]:
    """Like :func:`nlptool.engine.map_records` with ``worker.results`` as the batch function, but the
    chunks run on ``workers`` Ray actors in parallel; output objects come back in input order.

    Args:
        records: from :func:`nlptool.records.read_records`.
        worker: a :mod:`nlptool.workers` instance (pickled to each actor without its model).
        workers: actors in the pool (each loads the model once).
        gpus_per_worker: ``num_gpus`` of each actor (0 = CPU; a fraction shares a GPU).
        chunk_size: records per remote call.
        strict: raise :class:`InputDataError` at the first record that fails.

    Raises:
        UsageError: Ray is not installed, ``workers < 1`` / ``gpus_per_worker < 0``, or a pool the
            cluster cannot hold (:func:`check_pool`).
        NlptoolError: the pool did not start within :data:`START_TIMEOUT` seconds.
        InputDataError: with ``strict``.
    """
    if workers < 1 or gpus_per_worker < 0:
        raise UsageError("the ray engine needs at least one worker and a GPU share >= 0")
    ray = init(local_cpus())
    actors = start_pool(ray, worker, workers, gpus_per_worker)
    try:
        yield from _ordered(ray, actors, records, chunk_size, strict, on_chunk)
    finally:
        for a in actors:
            ray.kill(a)


def _ordered(ray, actors, records, chunk_size, strict, on_chunk):
    it = iter(records)
    window: deque = deque()
    k = 0
    done = False
    while True:
        while not done and len(window) < 2 * len(actors):
            chunk, stop = read_chunk(it, chunk_size)  # a strict stop: the records before it come out first
            if not chunk and stop is None:
                done = True
                break
            good = [r for r in chunk if not r.error]
            fut = actors[k % len(actors)].results.remote([_slim(r) for r in good]) if good else None
            k += 1
            window.append((chunk, good, fut, stop))
            if stop is not None:
                done = True
        if not window:
            return
        chunk, good, fut, stop = window.popleft()
        results = ray.get(fut) if fut is not None else []
        yield from chunk_outputs(chunk, good, results, strict=strict)
        if on_chunk:
            on_chunk(len(chunk))
        if stop is not None:
            raise stop


# ------------------------------------------------------------------------------ --output-dir: all on the cluster


class _LineMapper:
    """Ray Data actor: rows ``{path, line, raw}`` -> rows ``{json}`` (the output line)."""

    def __init__(self, worker, input_format: str, keys: Sequence[str], tsv: bool, optional_keys: Sequence[str],
                 alternatives: Sequence[str], list_keys: Sequence[str]):
        self.worker = worker
        self.read = (input_format, list(keys), tsv, list(optional_keys), list(alternatives), list(list_keys))

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        from .records import _parse_line

        fmt, keys, tsv, optional, alternatives, list_keys = self.read
        recs = []
        for path, line, raw in zip(batch["path"], batch["line"], batch["raw"]):
            rec = _parse_line(bytes(raw), str(path), int(line), fmt, keys, tsv, optional, alternatives, list_keys)
            rec.index = int(line) - 1  # position in its file: the local engine's index for a single input file
            if rec.error:
                rec.error = f"line {int(line)} of {path}: {rec.error}"
            recs.append(rec)
        good = [r for r in recs if not r.error]
        out = np.empty(len(recs), dtype=object)
        for j, obj in enumerate(chunk_outputs(recs, good, self.worker.safe_results(good) if good else [])):
            out[j] = safe_json_line(obj)
        return {"json": out}


def _split_lines(row: dict) -> list[dict]:
    """One file's bytes -> one row per line (``\\n`` only, as :func:`nlptool.records.read_records`)."""
    data: bytes = row["bytes"]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [{"path": row["path"], "line": i, "raw": raw} for i, raw in enumerate(lines, start=1)]


def _check_line_inputs(inputs, input_format: str) -> None:
    """Refuse what ``--output-dir`` cannot read one line at a time, before Ray starts: CSV/TSV
    (a header row, quoted line breaks) and compressed local files (found by magic bytes).

    Raises:
        UsageError: ``input_format`` csv/tsv, an ``auto`` input named ``*.csv``, a local file that
            is gzip, bzip2 or xz.
    """
    from .records import _path_format, compression_of

    why = "--output-dir reads its inputs one line at a time (in parallel)"
    if input_format in ("csv", "tsv"):
        raise UsageError(f"{why}: --input-format {input_format} needs its header row; convert to JSONL "
                         "or write one output file (-o) instead")
    for p in map(str, inputs):
        if _path_format(p, input_format) == "auto-csv":  # the local reader's own rule for *.csv
            raise UsageError(f"{p}: {why}, and *.csv is read as CSV with a header; convert to JSONL, give "
                             "--input-format text, or write one output file (-o) instead")
        try:
            with open(p, "rb") as fh:
                kind = compression_of(fh.read(6))
        except OSError:  # a glob, a remote path (s3://...), a directory: Ray reads it
            continue
        if kind is not None:
            raise UsageError(f"{p}: a {kind[0]} file; {why}: decompress it first ({kind[1]} checks it), "
                             "or write one output file (-o) instead")


def write_dir(inputs: Sequence[str], out_dir: str, worker, *, input_format: str = "auto",
              keys: Sequence[str] = ("text",), tsv: bool | None = None, optional_keys: Sequence[str] = (),
              alternatives: Sequence[str] = (), list_keys: Sequence[str] = (), workers: int = 2,
              gpus_per_worker: float = 0.0, chunk_size: int = 1000) -> None:
    """Process ``inputs`` (paths or globs Ray can read: local, ``s3://``, ...) on the Ray cluster
    and write JSONL files into ``out_dir``.

    Each output line is the local engine's line for its record (bad lines become error records
    with file and line); records keep their order within a file, files are named by Ray (sort
    them by name for a stable order).

    Raises:
        UsageError: stdin given as an input, Ray not installed, bad worker counts.
    """
    if any(str(p) == "-" for p in inputs) or not inputs:
        raise UsageError("writing a directory of shards reads files, not stdin: give input paths")
    if workers < 1 or gpus_per_worker < 0:
        raise UsageError("the ray engine needs at least one worker and a GPU share >= 0")
    _check_line_inputs(inputs, getattr(input_format, "value", input_format))
    ray_mod = init(local_cpus())
    check_pool(ray_mod, workers, gpus_per_worker)
    import ray.data
    from ray.data.datasource import BlockBasedFileDatasink

    keys = list(keys)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ds = ray.data.read_binary_files(list(map(str, inputs)), include_paths=True)
    ds = ds.flat_map(_split_lines)
    ds = ds.map_batches(
        _LineMapper, batch_format="numpy", batch_size=chunk_size, concurrency=workers, num_gpus=gpus_per_worker,
        fn_constructor_kwargs={"worker": worker, "input_format": getattr(input_format, "value", input_format),
                               "keys": keys, "tsv": len(keys) > 1 if tsv is None else tsv,
                               "optional_keys": optional_keys, "alternatives": alternatives,
                               "list_keys": list_keys},
    )

    class JsonlSink(BlockBasedFileDatasink):
        def __init__(self, path):
            super().__init__(path, file_format="jsonl")

        def write_block_to_file(self, block, file):
            for line in block.to_pandas()["json"]:
                file.write((line + "\n").encode("utf-8"))

    os.makedirs(out_dir, exist_ok=True)
    ds.write_datasink(JsonlSink(os.path.abspath(out_dir)))


def run_cli(worker, records: Iterable[Record], inputs: Sequence[str] | None, output: str | None,
            output_dir: str | None, *, fmt: str = "jsonl", workers: int = 2, gpus_per_worker: float = 0.0,
            chunk_size: int = 1000, strict: bool = False, input_format: str = "auto", keys: Sequence[str] = ("text",),
            shard=None, optional_keys: Sequence[str] = (), alternatives: Sequence[str] = (),
            list_keys: Sequence[str] = ()) -> None:
    """What a record command does with the ray engine: :func:`write_dir` when ``output_dir`` is
    given, else :func:`map_records` written to ``output`` (``-`` = stdout) through
    :class:`nlptool.jsonl.JsonlWriter`, whole or not at all.

    Raises:
        UsageError: a text output format (the engine writes JSON lines), both an output file and
            a directory, a shard with a directory, Ray not installed.
    """
    from .jsonl import JsonlWriter

    if fmt != "jsonl":
        raise UsageError("the ray engine writes JSON lines: choose the jsonl output format")
    if output_dir:
        if output not in (None, "", "-"):
            raise UsageError("give either an output file or an output directory, not both")
        if shard is not None:
            raise UsageError("a shard reads part of a file on one machine; the ray engine splits the input itself")
        write_dir(list(inputs or []), output_dir, worker, input_format=input_format, keys=keys,
                  optional_keys=optional_keys, alternatives=alternatives, list_keys=list_keys, workers=workers,
                  gpus_per_worker=gpus_per_worker, chunk_size=chunk_size)
        return
    require_ray()  # before the output file is opened
    with JsonlWriter(output or "-") as w:
        for obj in map_records(records, worker, workers=workers, gpus_per_worker=gpus_per_worker,
                               chunk_size=chunk_size, strict=strict):
            w.write(obj)

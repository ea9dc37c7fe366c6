"""Picklable per-command workers for Ray Data, Spark and Dask (and ``--engine ray``).

One class per record command: :class:`Segmenter` (``segment``), :class:`Similarity`
(``similarity``, pair mode), :class:`Sampler` (``tokenize-sample``), :class:`Attributor`
(``attribute``) and :class:`QAGenerator` (``qa-gen``). Each

* takes the command's options as constructor arguments, every one with the CLI's default
  (``Segmenter()`` segments like ``nlptool segment``), and stores **configuration only**, so the
  object pickles and ships to any executor;
* loads its model **lazily, once per process**, on the first call (a module-level cache keyed by
  the class and its configuration; ``__getstate__`` drops the reference, so a pickled worker never
  carries weights; :data:`LOAD_COUNTS` counts the loads of this process);
* is called on a batch, ``worker(batch)``: a pandas DataFrame or a dict of numpy arrays (the two
  formats Ray Data's ``map_batches`` passes) with the text column(s). It returns the same rows in
  the same order, every input column kept, the result columns added (JSON-compatible values:
  lists, dicts, numbers, strings; ``None`` where a row has no such field) and an ``error`` column
  (``None`` for good rows, the reason for a bad one). A bad row never raises: a missing or
  non-string text, or a text the library cannot take, is that row's error;
* is the very object the CLI builds and runs (:class:`nlptool.engine.Command`): each lives beside
  its library code (``nlptool.segment.Segmenter``, ...); this module re-exports them.

Usage with the engines (runnable versions in examples/, shown in docs/scale-out.md)::

    ds.map_batches(Segmenter, fn_constructor_kwargs={"method": "tagger"}, batch_size=256,
                   concurrency=4, num_gpus=0, batch_format="pandas")          # Ray Data actor pool
    df.mapInPandas(spark_udf(Segmenter()), schema)                         # Spark
    bag.map_partitions(process, Segmenter())    # Dask: process(lines, worker) calls worker(DataFrame)

Scaling a pipeline out this way follows Ray Data's batch-inference recipe (a callable class in an
actor pool, https://docs.ray.io/en/latest/data/batch_inference.html) and Spark's
``mapInPandas`` (one model per partition iterator).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .attribute.command import Attributor
from .engine import LOAD_COUNTS, Command, RecordFailure, record_rng
from .qagen.command import QAGenerator
from .segment.command import Segmenter
from .similarity.command import Similarity
from .tokenize_sample.command import Sampler

__all__ = ["Attributor", "Command", "LOAD_COUNTS", "QAGenerator", "RecordFailure", "Sampler", "Segmenter", "Similarity",
           "json_columns", "record_rng", "spark_udf"]


# ------------------------------------------------------------------------------ Spark and Dask adapters


def spark_udf(worker: Command) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """A function for Spark's ``DataFrame.mapInPandas(fn, schema)``: it receives an iterator of
    pandas DataFrames (one partition) and yields the processed frames. The worker pickles to the
    executor without its model and loads it once per Python worker process (Spark reuses them).
    Nested result columns (lists, dicts) are best declared in ``schema`` as JSON strings: see
    :func:`json_columns`."""
    def fn(frames: Iterator[Any]) -> Iterator[Any]:
        for frame in frames:
            yield worker(frame)

    return fn


def json_columns(frame, columns: Iterable[str]):
    """``frame`` with the given result columns serialised to JSON strings (``ensure_ascii=False``),
    for engines whose schemas want flat types (Spark ``StringType``)."""
    import json

    out = frame.copy()
    for c in columns:
        out[c] = [None if v is None else json.dumps(v, ensure_ascii=False) for v in out[c]]
    return out

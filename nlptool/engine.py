"""The local engine: run a command over records, chunk by chunk, one output per input record, in order.

:func:`map_records` applies a batch function (``list[Record] -> list[dict | Exception]``) to the
good records of each chunk and joins the results back (:func:`chunk_outputs`, also used by the
Ray engine); :func:`apply_batch` isolates a record whose text makes the whole batch fail.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InputDataError, NlptoolError
from .jsonl import output_record
from .records import Record, read_records


def chunked(items: Iterable, size: int) -> Iterator[list]:
    """Yield lists of at most ``size`` consecutive items (bounded memory over a long input)."""
    buf: list = []
    for item in items:
        buf.append(item)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def map_records(
    records: Iterable[Record],
    batch_fn,
    *,
    chunk_size: int = 1000,
    strict: bool = False,
    on_chunk=None,
    with_records: bool = False,
) -> Iterator[dict[str, Any]]:
    """Apply ``batch_fn`` to the good records, chunk by chunk, and yield one output object per
    input record, in input order (bad records become error objects).

    Args:
        records: from :func:`read_records`.
        batch_fn: ``list[Record] -> list[dict | Exception]``, one entry per record given; an
            exception entry (e.g. a text the model cannot take) becomes that record's ``error``.
        chunk_size: records read before ``batch_fn`` is called (bounds memory).
        strict: raise :class:`InputDataError` for the first per-record exception.
        on_chunk: called with the number of records after each chunk (progress).
        with_records: yield ``(object, record)`` pairs instead of objects.
    """
    it = iter(records)
    while True:
        chunk, stop = read_chunk(it, chunk_size)
        if not chunk and stop is None:
            return
        good = [r for r in chunk if not r.error]
        results = apply_batch(batch_fn, good) if good else []
        outs = chunk_outputs(chunk, good, results, strict=strict)
        yield from (zip(outs, chunk) if with_records else outs)
        if on_chunk:
            on_chunk(len(chunk))
        if stop is not None:
            raise stop


def read_chunk(it: Iterator[Record], chunk_size: int) -> tuple[list[Record], InputDataError | None]:
    """The next ``chunk_size`` records of ``it`` (fewer at the end), and the :class:`InputDataError`
    a strict reader raised while reading them (the records before it are returned first), or None."""
    chunk: list[Record] = []
    size = max(1, int(chunk_size))
    try:
        for r in it:
            chunk.append(r)
            if len(chunk) >= size:
                break
    except InputDataError as exc:
        return chunk, exc
    return chunk, None


def chunk_outputs(chunk: Sequence[Record], good: Sequence[Record], results: Sequence, *,
                  strict: bool = False) -> Iterator[dict[str, Any]]:
    """One output object per record of ``chunk``, in order: the record's own error, or its result
    from ``results`` (aligned with ``good``, the error-free records), where an exception result
    becomes the record's ``error`` (or, with ``strict``, an :class:`InputDataError`). The one
    place where results are joined back to records, for the local engine and the Ray engine alike."""
    if len(results) != len(good):  # pragma: no cover - programming error
        raise RuntimeError("batch_fn returned a wrong number of results")
    by_id = {id(r): res for r, res in zip(good, results)}
    for r in chunk:
        if r.error:
            yield output_record(r)
            continue
        res = by_id[id(r)]
        if isinstance(res, Exception):
            msg = exception_message(res)
            if strict:
                raise InputDataError(msg, r.source, r.line)
            yield output_record(r, error=msg)
        else:
            yield output_record(r, res)


def exception_message(exc: BaseException) -> str:
    """A one-line message for a per-record exception (its class name when it has no text)."""
    if isinstance(exc, InputDataError):
        msg = exc.reason
    else:
        msg = str(exc) or type(exc).__name__
        if not isinstance(exc, (ValueError, LookupError)) and type(exc).__name__ not in msg:
            msg = f"{type(exc).__name__}: {msg}"
    return " ".join(msg.split())


def apply_batch(batch_fn, good: list[Record]) -> list:
    """``batch_fn(good)``; when it raises for the whole chunk (a library error on one bad text,
    e.g. a tokenizer TypeError), retry record by record so only the bad record gets an error.
    :class:`NlptoolError` other than :class:`InputDataError` (a model or usage problem that no
    record fixes) and ``MemoryError`` propagate."""
    try:
        return batch_fn(good)
    except MemoryError:
        raise
    except NlptoolError as exc:
        if not isinstance(exc, InputDataError):
            raise
        first: Exception = exc
    except Exception as exc:  # noqa: BLE001 - isolated per record below
        first = exc
    if len(good) == 1:
        return [first]
    out: list = []
    for r in good:
        try:
            out.extend(batch_fn([r]))
        except MemoryError:
            raise
        except NlptoolError as exc:
            if not isinstance(exc, InputDataError):
                raise
            out.append(exc)
        except Exception as exc:  # noqa: BLE001
            out.append(exc)
    return out


# ------------------------------------------------------------------------------ command objects


#: Model loads in this process, per command class name (tests check "once per process").
LOAD_COUNTS: Counter = Counter()

#: Loaded state of this process, keyed by ``(class name, configuration)``.
_CACHE: dict[tuple, Any] = {}


class RecordFailure(ValueError):
    """A per-record failure carried back from a remote worker (its message already final)."""


def freeze(value: Any) -> Any:
    """A hashable form of a configuration value (dicts and lists become sorted tuples)."""
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def to_python(value: Any) -> Any:
    """numpy scalars/arrays (Ray's numpy batch format, pandas cells) as plain Python values."""
    tolist = getattr(value, "tolist", None)
    if tolist is not None and not isinstance(value, (str, bytes)):
        return tolist()
    return value


def missing(value: Any) -> bool:
    """A missing cell: None or a float NaN (pandas' missing value)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def check_bounds(values: dict[str, Any], bounds: dict[str, tuple[float | None, float | None]]) -> None:
    """Check numeric options against their inclusive ``(least, greatest)`` bounds (None: no bound);
    a None value (an unset option) passes. A command module declares its bounds once and its CLI
    gives the same numbers to the parser (``min=``/``max=``), so a bad value is refused there too.

    Raises:
        UsageError: a value outside its bounds, NaN, or not a number (named as its ``--flag``).
    """
    from .errors import UsageError

    for name, (lo, hi) in bounds.items():
        v = values.get(name)
        if v is None:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise UsageError(f"{flag} {v!r}: expected a number")
        if (lo is not None and not v >= lo) or (hi is not None and not v <= hi):
            want = " and ".join(x for x in (lo is not None and f">= {lo:g}", hi is not None and f"<= {hi:g}") if x)
            raise UsageError(f"{flag} {v}: expected a number {want}")


def model_line(loaded) -> str:
    """``model NAME on DEVICE (DTYPE)``: which model a command uses, a line for :meth:`Command.describe`."""
    dtype = next(loaded.model.parameters()).dtype
    return f"model {loaded.name} on {loaded.device} ({str(dtype).replace('torch.', '')})"


def record_rng(seed: int | None, index: int, shared: random.Random | None = None) -> random.Random:
    """The random generator of one record: ``random.Random("<seed>/<index>")`` when ``seed`` is
    given, so a record's draws depend only on the seed and its 0-based position in the input
    (:attr:`nlptool.records.Record.index`), not on which process, shard or chunk handles it; without a
    seed, ``shared`` (or a fresh unseeded generator)."""
    if seed is None:
        return shared if shared is not None else random.Random()
    return random.Random(f"{int(seed)}/{int(index)}")


class Command:
    """One record command as an object: the only home of its defaults, option rules, model loading
    and batching. The CLI builds it from the options and hands it to an engine (:func:`run`
    locally, :mod:`nlptool.ray_engine` on Ray); Ray Data, Spark and Dask call it on batches;
    Python users call it on texts.

    * The constructor takes the command's options, every one with the CLI's default, validates
      them (raising :class:`nlptool.errors.UsageError`), and stores **configuration only** in
      ``self.config``, so the object pickles and ships to any executor.
    * The model is loaded **lazily, once per process**, on first use (:meth:`state`; a module
      cache keyed by the class and its configuration; a pickled object never carries weights).
    * :meth:`results` is the per-chunk function ``list[Record] -> list[dict | Exception]``.
    * ``obj(x)``: ``x`` a string -> one result dict; a list of strings or dicts -> a list of result
      dicts (an ``"error"`` key on a bad one); a pandas DataFrame or a dict of equal-length numpy
      arrays (Ray Data's batch formats) -> the same type with the result columns added and an
      ``error`` column (``None`` for good rows). A bad row never raises.
    """

    #: Output formats besides ``jsonl`` (rendered by :meth:`render`).
    formats: tuple[str, ...] = ("jsonl",)

    def __init__(self, **config: Any):
        self.config = dict(config)
        self._state = None

    # -- pickling: configuration only
    def __getstate__(self) -> dict:
        return {"config": self.config}

    def __setstate__(self, state: dict) -> None:
        self.config = state["config"]
        self._state = None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.config == other.config  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    # -- the model, once per process
    def state(self) -> Any:
        """The loaded model(s) of this configuration, loaded on first use and cached per process."""
        if self._state is None:
            key = (type(self).__name__, freeze(self.config))
            if key not in _CACHE:
                _CACHE[key] = self.load()
                LOAD_COUNTS[type(self).__name__] += 1
            self._state = _CACHE[key]
        return self._state

    def load(self) -> Any:  # pragma: no cover - abstract
        """Load the model(s): called once per process by :meth:`state`."""
        raise NotImplementedError

    def describe(self) -> list[str]:
        """Lines for stderr after loading (which model, on which device); none by default."""
        return []

    def finish(self, inputs: Sequence[str] = ()) -> Iterable[str]:
        """Called once by the CLI after the last record is written (local engine): write the
        command's side outputs (e.g. an HTML page of all results; never over one of ``inputs``)
        and yield a line for stderr as each is done; nothing by default."""
        return ()

    def side_outputs(self) -> list[str]:
        """The files :meth:`finish` writes (e.g. ``--html``); none by default. With any, a closed
        stdout (``| head``) does not end the run early: every record is still processed, so that
        the side outputs are written whole."""
        return []

    # -- records
    def text_keys(self) -> list[str]:
        """The record fields that hold the input text(s) (``read_records(keys=...)``)."""
        return [self.config.get("text_key", "text")]

    def extra_keys(self) -> list[str]:
        """Optional fields copied into ``Record.texts`` when present (any JSON value)."""
        return []

    def list_keys(self) -> list[str]:
        """Those of :meth:`text_keys` that may hold a list of strings."""
        return []

    def alternatives(self) -> list[str]:
        """Fields that may stand in for the text field (e.g. a given word list)."""
        return []

    def read(self, inputs: Sequence[str] | None, *, input_format: str = "auto", strict: bool = False,
             shard=None) -> Iterator[Record]:
        """:func:`nlptool.records.read_records` with this command's fields."""
        return read_records(inputs, input_format=input_format, keys=self.text_keys(), strict=strict,
                            optional_keys=self.extra_keys(), alternatives=self.alternatives(),
                            list_keys=self.list_keys(), shard=shard)

    def results(self, records: list[Record]) -> list[dict | Exception]:
        """One result dict (or an exception) per record: the command's per-chunk function."""
        raise NotImplementedError  # pragma: no cover

    def render(self, obj: dict[str, Any], fmt: str) -> str:
        """One output object in a text format of :attr:`formats` (one or more whole lines, no
        trailing newline)."""
        raise ValueError(f"unknown output format {fmt!r}")  # pragma: no cover

    def safe_results(self, records: list[Record]) -> list[dict | Exception]:
        """:meth:`results` with a failing chunk retried record by record (as the local engine does),
        and every exception turned into a picklable :class:`RecordFailure` with its final message."""
        out = apply_batch(self.results, records) if records else []
        return [RecordFailure(exception_message(r)) if isinstance(r, Exception) else r for r in out]

    # -- Python and batch callers
    def _row_record(self, i: int, row: dict[str, Any], columns: Iterable[str]) -> Record:
        index_key = self.config.get("index_key")
        index = i
        if index_key and index_key in row and not missing(row[index_key]):
            try:
                index = int(row[index_key])
            except (TypeError, ValueError):
                return Record("batch", i + 1, error=f"column {index_key!r} is not an integer", index=i)
        rec = Record("batch", i + 1, index=index)
        cols = set(columns)
        alts = [k for k in self.alternatives() if k in cols]
        for k in self.text_keys():
            if k not in cols:
                if alts:
                    continue
                rec.error = f"missing column {k!r} (columns: {', '.join(map(str, columns)) or 'none'})"
                return rec
            v = to_python(row[k])
            if missing(v):
                v = ""
            if k in self.list_keys() and isinstance(v, list) and all(isinstance(x, str) for x in v):
                rec.texts[k] = v
                continue
            if not isinstance(v, str):
                rec.error = f"column {k!r} holds {type(v).__name__}, expected a string"
                return rec
            rec.texts[k] = v
        for k in self.extra_keys():
            if k in cols:
                v = to_python(row[k])
                if not missing(v):
                    rec.texts[k] = v
        return rec

    def __call__(self, batch):
        """Process texts (Python callers) or one batch (Ray Data, Spark, Dask); see the class doc.

        Returns:
            For a string, one result dict; for a list, a list of result dicts in order; for a
            DataFrame or a dict of numpy arrays, the same type, the same rows in the same order:
            the input columns, then the result columns (object dtype; ``None`` where a row has no
            such field), then ``error`` (``None`` for good rows). Never raises for a bad row.
        """
        if isinstance(batch, str):
            return self([batch])[0]
        if isinstance(batch, (list, tuple)):
            key = self.text_keys()[0]
            rows = [x if isinstance(x, dict) else {key: x} for x in batch]
            columns = list(dict.fromkeys(k for r in rows for k in r))
            out = []
            for i, row in enumerate(rows):
                rec = self._row_record(i, {c: row.get(c) for c in columns if c in row}, list(row))
                if rec.error:
                    out.append({**row, "error": rec.error})
                    continue
                res = self.safe_results([rec])[0]
                out.append({**row, "error": str(res)} if isinstance(res, Exception) else {**row, **res})
            return out
        is_frame = not isinstance(batch, dict)
        if is_frame:
            columns = [str(c) for c in batch.columns]
            rows = batch.to_dict("records")
        else:
            columns = list(batch)
            n = len(next(iter(batch.values()))) if batch else 0
            rows = [{c: batch[c][i] for c in columns} for i in range(n)]
        records = [self._row_record(i, row, columns) for i, row in enumerate(rows)]
        good = [r for r in records if not r.error]
        by_id = {id(r): res for r, res in zip(good, self.safe_results(good))}
        new_cols: dict[str, list] = {}
        errors: list[str | None] = []
        for j, r in enumerate(records):
            res = by_id.get(id(r)) if not r.error else None
            err = r.error or (str(res) if isinstance(res, Exception) else None)
            errors.append(err)
            if err is None and res:
                for k, v in res.items():
                    if k == "error":
                        continue
                    new_cols.setdefault(k, [None] * len(records))[j] = v
        if is_frame:
            import pandas as pd

            out = batch.copy()
            for k, vals in new_cols.items():
                out[k] = pd.Series(vals, index=batch.index, dtype=object)
            out["error"] = pd.Series(errors, index=batch.index, dtype=object)
            return out
        import numpy as np

        out = dict(batch)
        for k, vals in new_cols.items():
            arr = np.empty(len(vals), dtype=object)
            arr[:] = vals
            out[k] = arr
        err = np.empty(len(errors), dtype=object)
        err[:] = errors
        out["error"] = err
        return out


@dataclass
class Summary:
    """What :func:`run` did: records written and the input line numbers of those with an error."""

    records: int = 0
    error_lines: list[int] = field(default_factory=list)

    def line(self, limit: int = 5) -> str:
        """``"1,998 records, 2 errors (lines 17, 902)"``."""
        n = len(self.error_lines)
        text = f"{self.records:,} record{'s' if self.records != 1 else ''}"
        if n:
            shown = ", ".join(str(x) for x in self.error_lines[:limit]) + (", ..." if n > limit else "")
            text += f", {n:,} error{'s' if n != 1 else ''} (line{'s' if n != 1 else ''} {shown})"
        return text


def run(command: Command, records: Iterable[Record], writer, *, fmt: str = "jsonl", chunk_size: int = 1000,
        strict: bool = False, progress: Callable[[int], None] | None = None,
        on_error: Callable[[dict[str, Any]], None] | None = None, mapper=None) -> Summary:
    """Run ``command`` over ``records`` and write one output per record, in order, to ``writer``
    (a :class:`nlptool.jsonl.JsonlWriter`): the local engine of every record command.

    Args:
        fmt: ``jsonl`` or one of ``command.formats`` (rendered by ``command.render``).
        chunk_size: records per call of ``command.results`` (bounds memory).
        strict: stop at the first bad record (:class:`InputDataError`).
        progress: called with the number of records after each chunk.
        on_error: called with each error object (e.g. to say on stderr that it was skipped).
        mapper: ``(records, batch_fn, chunk_size, strict, on_chunk) -> iterator of objects``: another
            engine's map (default :func:`map_records`; the Ray engine passes its actor pool's).

    Returns:
        A :class:`Summary` (records written, lines with an error).
    """
    summary = Summary()

    def chunk_done(k: int) -> None:
        writer.flush()  # one flush per chunk keeps `| head` responsive without a syscall per line
        if progress is not None:
            progress(k)

    mapper = mapper or map_records
    for obj, rec in mapper(records, command.results, chunk_size=chunk_size, strict=strict, on_chunk=chunk_done,
                           with_records=True):
        summary.records += 1
        if "error" in obj:
            summary.error_lines.append(rec.line)
            if on_error is not None:
                on_error(obj)
        if fmt == "jsonl":
            writer.write(obj)
        else:
            writer.write_line(command.render(obj, fmt))
    return summary

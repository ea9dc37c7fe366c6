"""The local engine: run a command over records, chunk by chunk, one output per input record, in order.

:func:`map_records` applies a batch function (``list[Record] -> list[dict | Exception]``) to the
good records of each chunk and joins the results back (:func:`chunk_outputs`, also used by the
Ray engine); :func:`apply_batch` isolates a record whose text makes the whole batch fail.
"""


from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .errors import InputDataError

from .jsonl import output_record
from .records import Record


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
    """
    it = iter(records)
    while True:
        chunk, stop = read_chunk(it, chunk_size)
        if not chunk and stop is None:
            return
        good = [r for r in chunk if not r.error]
        results = apply_batch(batch_fn, good) if good else []
        yield from chunk_outputs(chunk, good, results, strict=strict)
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
    from .errors import NlptoolError

    try:
        return batch_fn(good)
    except MemoryError:
        raise
    except NlptoolError as exc:
        if not isinstance(exc, InputDataError):
            raise
        first = exc
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

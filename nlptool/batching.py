"""Length-sorted batching, the one rule every batched forward pass follows (as
sentence-transformers does): sort the items by length so each batch pads little, run the batches,
and write each result back at its item's original index.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence


def length_order(lengths: Sequence[int], *, descending: bool = False) -> list[int]:
    """Indices ``0..n-1`` ordered by ``lengths`` (ascending, or descending), ties kept in input
    order (a stable sort), so results are reproducible whatever the batch size.

    Args:
        lengths: one length per item (tokens, characters: whatever the padding is counted in).
        descending: longest first (a window that must fit the longest item first).
    Returns:
        The processing order; results are written back with ``out[order[k]] = result_k``.
    """
    if descending:
        return sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return sorted(range(len(lengths)), key=lambda i: lengths[i])


def length_batches(lengths: Sequence[int], batch_size: int, *, descending: bool = False) -> Iterator[list[int]]:
    """Consecutive slices of :func:`length_order` of at most ``batch_size`` indices each.

    Raises:
        ValueError: ``batch_size`` < 1.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    order = length_order(lengths, descending=descending)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]

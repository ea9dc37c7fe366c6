"""The one length-sorted batching rule (nlptool.batching) against a brute-force reference."""

import random

import pytest

from nlptool.batching import length_batches, length_order


def test_length_order_is_a_stable_sort_by_length():
    rng = random.Random(0)
    for _ in range(200):
        lengths = [rng.randrange(5) for _ in range(rng.randrange(12))]
        order = length_order(lengths)
        assert sorted(order) == list(range(len(lengths)))
        # brute force: ascending lengths, ties in input order
        assert order == [i for _, i in sorted((n, i) for i, n in enumerate(lengths))]
        down = length_order(lengths, descending=True)
        assert down == [i for _, i in sorted((-n, i) for i, n in enumerate(lengths))]


def test_length_batches_cover_every_index_once():
    lengths = [3, 1, 2, 2, 5, 0, 4]
    batches = list(length_batches(lengths, 3))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert sum(batches, []) == length_order(lengths)
    with pytest.raises(ValueError):
        list(length_batches(lengths, 0))

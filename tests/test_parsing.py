"""MART and Eisner: hand-worked examples and brute force over all trees for n <= 6."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nlptool.segment.parsing import (
    cle,
    eisner,
    forbid_heads,
    mart,
    mart_split_scores,
    punctuation_word,
    tree_score,
    tree_to_brackets,
)


def _is_projective_tree(heads):
    if not _is_tree(heads):  # one root, acyclic
        return False
    for d, h in enumerate(heads, start=1):  # projective: no crossing arcs
        if h == 0:
            continue
        a, b = sorted((d, h))
        for d2, h2 in enumerate(heads, start=1):
            if h2 == 0:
                # root arc spans from 0: crossing if an arc covers the root word from outside
                if a < d2 < b:
                    return False
                continue
            c, e = sorted((d2, h2))
            if a < c < b < e or c < a < e < b:
                return False
    return True


def _brute_best(scores, root):
    n = len(root)
    best = -np.inf
    for heads in itertools.product(range(n + 1), repeat=n):
        if any(h == d + 1 for d, h in enumerate(heads)):
            continue
        if not _is_projective_tree(heads):
            continue
        best = max(best, tree_score(list(heads), scores, root))
    return best


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_eisner_matches_brute_force(n):
    rng = np.random.default_rng(n)
    for _ in range(4 if n < 6 else 2):
        scores = rng.normal(size=(n, n))
        root = rng.normal(size=n)
        heads, total = eisner(scores, root)
        assert _is_projective_tree(heads)
        assert total == pytest.approx(tree_score(heads, scores, root))
        assert total == pytest.approx(_brute_best(scores, root))


def test_eisner_hand_worked():
    # "She saw stars": saw is the root, She <- saw -> stars
    scores = np.full((3, 3), -5.0)
    scores[1, 0] = 2.0
    scores[1, 2] = 3.0
    root = np.array([0.0, 4.0, 0.0])
    heads, total = eisner(scores, root)
    assert heads == [2, 0, 2]
    assert total == pytest.approx(9.0)


def _all_binary_trees(lo, hi):
    if hi - lo == 1:
        yield lo
        return
    for k in range(lo + 1, hi):
        for a in _all_binary_trees(lo, k):
            for b in _all_binary_trees(k, hi):
                yield (a, b)


def _leaves(t):
    return [t] if isinstance(t, int) else _leaves(t[0]) + _leaves(t[1])


def _greedy_consistent(t, F):
    """Every inner node splits at the argmax of the MART split score of its span."""
    if isinstance(t, int):
        return True
    span = _leaves(t)
    lo = span[0]
    k = len(_leaves(t[0]))
    sub = F[lo : lo + len(span), lo : lo + len(span)]
    if len(span) > 2:
        scores = mart_split_scores(sub)
        if int(np.argmax(scores)) + 1 != k:
            return False
    return _greedy_consistent(t[0], F) and _greedy_consistent(t[1], F)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_mart_matches_brute_force_over_all_trees(n):
    rng = np.random.default_rng(10 + n)
    F = rng.random((n, n))
    np.fill_diagonal(F, 0)
    consistent = [t for t in _all_binary_trees(0, n) if _greedy_consistent(t, F)]
    assert len(consistent) == 1
    assert mart(F) == consistent[0]


def test_mart_hand_worked():
    # words 0,1 bind strongly, words 2,3 bind strongly: ((0 1) (2 3))
    F = np.array(
        [[0, 9, 1, 1], [9, 0, 1, 1], [1, 1, 0, 9], [1, 1, 9, 0]], dtype=float
    )
    # split k=2: means 4.5 + 4.5 - 1 - 1 = 7; k=1: 0 + (18+4)/9... smaller
    assert mart(F) == ((0, 1), (2, 3))
    assert tree_to_brackets(mart(F), ["计算机", "的", "鼠标", "(x)"]) == "((计算机 的) (鼠标 -LRB-x-RRB-))"


def _is_tree(heads):
    """One root, every word reaches it (projective or not)."""
    if sum(1 for h in heads if h == 0) != 1:
        return False
    for d in range(len(heads)):
        seen, x = set(), d + 1
        while x != 0:
            if x in seen:
                return False
            seen.add(x)
            x = heads[x - 1]
    return True


def _brute_best_any(scores, root):
    n = len(root)
    trees = [list(h) for h in itertools.product(range(n + 1), repeat=n)
             if not any(h == d + 1 for d, h in enumerate(h)) and _is_tree(h)]
    return max(tree_score(t, scores, root) for t in trees)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_chu_liu_edmonds_matches_brute_force_over_all_trees(n):
    rng = np.random.default_rng(10 + n)
    for _ in range(6):
        scores = rng.normal(size=(n, n))
        root = rng.normal(size=n)
        heads, total = cle(scores, root)
        assert _is_tree(heads)
        assert total == pytest.approx(tree_score(heads, scores, root))
        assert total == pytest.approx(_brute_best_any(scores, root))
        # never below the best projective tree
        assert total >= eisner(scores, root)[1] - 1e-9


def test_chu_liu_edmonds_finds_a_crossing_tree_eisner_cannot():
    # arcs 1->3 and 2->4 cross; make them (and the root at 1) far better than anything else
    n = 4
    scores = np.full((n, n), -5.0)
    root = np.full(n, -5.0)
    root[0] = 1.0
    scores[0, 2] = scores[1, 3] = scores[0, 1] = 3.0
    heads, total = cle(scores, root)
    assert heads == [0, 1, 1, 2] and total == pytest.approx(10.0)
    assert eisner(scores, root)[1] < total


def test_punctuation_never_heads_and_is_never_root():
    words = ["然而", "，", "这样", "的", "处理", "。"]
    banned = [punctuation_word(w) for w in words]
    assert banned == [False, True, False, False, False, True]
    assert punctuation_word("——") and punctuation_word("《") and not punctuation_word("A") and not punctuation_word("")
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(6, 6))
    scores[1, :] += 10  # the comma would head everything
    root = rng.normal(size=6)
    root[5] += 10  # and the full stop would be the root
    sc, rt = forbid_heads(scores, root, banned)
    for decode in (eisner, cle):
        heads, _ = decode(sc, rt)
        assert all(h not in (2, 6) for h in heads), heads
        assert heads.index(0) not in (1, 5)
    # all words banned: unchanged (a tree must exist)
    same_sc, same_rt = forbid_heads(scores, root, [True] * 6)
    assert same_sc is scores and same_rt is root

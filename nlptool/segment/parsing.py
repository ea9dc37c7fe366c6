"""Tree decoding over an impact matrix: MART (constituency) and Eisner (projective dependency).

Both take the word-level impact matrix ``F`` of Perturbed Masking (``F[i, j]`` = impact of word
j on word i, shape ``(n, n)``, zero diagonal; see :mod:`nlptool.segment.masking`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

def mart_split_scores(F: np.ndarray) -> np.ndarray:
    """Split scores of one span: for k in 1..n−1 (left = words [0, k), right = [k, n))

        s(k) = mean F[L, L] + mean F[R, R] − mean F[L, R] − mean F[R, L]

    (block means include the zero diagonal, as in Su's syntax_parsing.py). Shape ``(n − 1,)``.
    """
    n = F.shape[0]
    out = np.empty(n - 1)
    for k in range(1, n):
        out[k - 1] = F[:k, :k].mean() + F[k:, k:].mean() - F[:k, k:].mean() - F[k:, :k].mean()
    return out


def mart(F: np.ndarray, offset: int = 0):
    """MART: top-down greedy binary bracketing (Wu et al., ACL 2020, Sect. 4.2; Su 2020-06-10).

    A span is split at the k maximising :func:`mart_split_scores` (the words inside each part
    influence each other more than they influence the other part) and each part is parsed
    recursively. Ties go to the leftmost k.

    Args:
        F: impact matrix of the span, shape ``(n, n)``, ``n >= 1``.
    Returns:
        a binary tree of word indices: ``int`` for a leaf, ``(left, right)`` otherwise.
    """
    n = F.shape[0]
    if n == 1:
        return offset
    if n == 2:
        return (offset, offset + 1)
    k = int(np.argmax(mart_split_scores(F))) + 1
    return (mart(F[:k, :k], offset), mart(F[k:, k:], offset + k))


def tree_to_brackets(tree, words: list[str]) -> str:
    """``((计算机 (的 鼠标)) 有)``-style string of a binary tree over ``words``; parentheses
    inside words are escaped as ``-LRB-``/``-RRB-`` (Penn Treebank's convention)."""
    if isinstance(tree, int):
        return words[tree].replace("(", "-LRB-").replace(")", "-RRB-")
    return "(" + " ".join(tree_to_brackets(t, words) for t in tree) + ")"


def eisner(scores: np.ndarray, root_scores: np.ndarray) -> tuple[list[int], float]:
    """Best projective dependency tree with a single root (Eisner 1996), in O(n³).

    Args:
        scores: ``scores[h, d]`` = score of the arc head h -> dependent d, shape ``(n, n)``
            (the diagonal is ignored).
        root_scores: ``root_scores[r]`` = score of word r being the root, shape ``(n,)``.

    Returns:
        ``(heads, total)``: ``heads[d]`` is the 1-based head of word d (0 = root), as in
        CoNLL-U; ``total`` is the tree's score (sum of its arcs' scores, root arc included).
    """
    n = len(root_scores)
    if n == 0:
        return [], 0.0
    if n == 1:
        return [0], float(root_scores[0])
    NEG = -np.inf
    # C[s, t, 0]: complete span s..t headed at t; C[s, t, 1]: headed at s. I: incomplete.
    C = np.full((n, n, 2), NEG)
    I = np.full((n, n, 2), NEG)
    Cb = np.zeros((n, n, 2), dtype=np.int64)
    Ib = np.zeros((n, n, 2), dtype=np.int64)
    for i in range(n):
        C[i, i, 0] = C[i, i, 1] = 0.0
    for k in range(1, n):
        for s in range(n - k):
            t = s + k
            vals = C[s, s:t, 1] + C[s + 1 : t + 1, t, 0]
            r = int(np.argmax(vals))
            best = vals[r]
            I[s, t, 0] = best + scores[t, s]
            I[s, t, 1] = best + scores[s, t]
            Ib[s, t, 0] = Ib[s, t, 1] = s + r
            vals0 = C[s, s:t, 0] + I[s:t, t, 0]
            r0 = int(np.argmax(vals0))
            C[s, t, 0] = vals0[r0]
            Cb[s, t, 0] = s + r0
            vals1 = I[s, s + 1 : t + 1, 1] + C[s + 1 : t + 1, t, 1]
            r1 = int(np.argmax(vals1))
            C[s, t, 1] = vals1[r1]
            Cb[s, t, 1] = s + 1 + r1
    totals = np.array([C[0, r, 0] + C[r, n - 1, 1] + root_scores[r] for r in range(n)])
    root = int(np.argmax(totals))
    heads = [-1] * n
    heads[root] = -1  # set below

    def complete(s, t, d):
        if s == t:
            return
        r = Cb[s, t, d]
        if d == 0:
            complete(s, r, 0)
            incomplete(r, t, 0)
        else:
            incomplete(s, r, 1)
            complete(r, t, 1)

    def incomplete(s, t, d):
        if d == 0:
            heads[s] = t
        else:
            heads[t] = s
        r = Ib[s, t, d]
        complete(s, r, 1)
        complete(r + 1, t, 0)

    complete(0, root, 0)
    complete(root, n - 1, 1)
    out = [h + 1 for h in heads]
    out[root] = 0
    return out, float(totals[root])


def tree_score(heads: list[int], scores: np.ndarray, root_scores: np.ndarray) -> float:
    """Score of a tree given as 1-based heads (0 = root): the sum its arcs' scores."""
    total = 0.0
    for d, h in enumerate(heads):
        total += root_scores[d] if h == 0 else scores[h - 1, d]
    return float(total)


def dependency_scores(F: np.ndarray, *, transpose: bool = False, normalise: str = "none"):
    """Arc and root scores from an impact matrix, as used by ``segment --parse dependency``.

    ``scores[h, d] = F[d, h]`` (the impact of the head on its dependent; ``transpose=True`` uses
    ``F[h, d]``). ``normalise="row"`` subtracts each dependent's mean incoming impact (so a word
    that every other word changes a lot does not dominate). The root score of word r is its mean
    impact on all other words. Returns ``(scores (n, n), root_scores (n,))``.
    """
    n = F.shape[0]
    A = F.T.copy() if not transpose else F.copy()  # A[h, d]
    if normalise == "row" and n > 1:
        off = ~np.eye(n, dtype=bool)
        col_mean = np.where(off, A, 0).sum(0) / (n - 1)  # per dependent
        A = A - col_mean[None, :]
    root = A.sum(1) / max(n - 1, 1)
    return A, root


def cle(scores: np.ndarray, root_scores: np.ndarray) -> tuple[list[int], float]:
    """Best (possibly non-projective) dependency tree with a single root: Chu–Liu/Edmonds.

    The maximum spanning arborescence (Chu & Liu 1965; Edmonds 1967) of the graph ROOT -> words,
    computed by networkx's ``maximum_spanning_arborescence``. One root is enforced by lowering
    every root arc by a constant larger than any score difference, so the best tree uses exactly
    one root arc (McDonald et al., "Non-projective Dependency Parsing using Spanning Tree
    Algorithms", 2005). Arcs scored ``-inf`` are absent.

    Args:
        scores: ``scores[h, d]`` = score of the arc h -> d, shape ``(n, n)`` (diagonal ignored).
        root_scores: ``root_scores[r]`` = score of word r being the root, shape ``(n,)``.

    Returns:
        ``(heads, total)`` as :func:`eisner`: 1-based heads (0 = root) and the tree's score.

    Raises:
        ValueError: no tree exists (e.g. every root arc is ``-inf``).
    """
    import networkx as nx

    n = len(root_scores)
    if n == 0:
        return [], 0.0
    finite = np.concatenate([scores[np.isfinite(scores)].ravel(), root_scores[np.isfinite(root_scores)]])
    if not np.isfinite(root_scores).any():
        raise ValueError("no word may be the root")
    big = 1.0 + n * (float(np.ptp(finite)) if finite.size else 0.0) + 1.0
    g = nx.DiGraph()
    g.add_nodes_from(range(n + 1))
    for r in range(n):
        if np.isfinite(root_scores[r]):
            g.add_edge(0, r + 1, weight=float(root_scores[r]) - big)
    for h in range(n):
        for d in range(n):
            if h != d and np.isfinite(scores[h, d]):
                g.add_edge(h + 1, d + 1, weight=float(scores[h, d]))
    try:
        t = nx.maximum_spanning_arborescence(g, attr="weight", preserve_attrs=False)
    except nx.NetworkXException as exc:
        raise ValueError(f"no spanning tree: {exc}") from None
    heads = [0] * n
    for h, d in t.edges():
        heads[d - 1] = h
    return heads, tree_score(heads, scores, root_scores)


def punctuation_word(word: str) -> bool:
    """True when every character of ``word`` is Unicode punctuation or a symbol (categories P*, S*):
    a label-free test for the words :func:`forbid_heads` keeps out of head positions."""
    import unicodedata

    return bool(word) and all(unicodedata.category(c)[0] in "PS" for c in word)


def forbid_heads(scores: np.ndarray, root_scores: np.ndarray, banned) -> tuple[np.ndarray, np.ndarray]:
    """Arc and root scores in which the ``banned`` words (bool mask, shape ``(n,)``, e.g.
    :func:`punctuation_word`) head no word and are not the root (their scores set to ``-inf``).
    When every word is banned the scores are returned unchanged (a tree must exist)."""
    banned = np.asarray(banned, dtype=bool)
    if banned.all() or not banned.any():
        return scores, root_scores
    sc = scores.astype(np.float64, copy=True)
    rt = root_scores.astype(np.float64, copy=True)
    sc[banned, :] = -np.inf
    rt[banned] = -np.inf
    return sc, rt


def right_chain(n: int, punct: Sequence[bool] | None = None) -> list[int]:
    """The right-chain tree of ``n`` words (1-based heads, 0 = root): each word headed by the next,
    the last word the root. With ``punct`` (a flag per word), punctuation heads nothing: each word
    is headed by the next non-punctuation word and the last non-punctuation word is the root (all
    punctuation: the plain chain)."""
    if not punct or all(punct):
        return [i + 2 if i + 1 < n else 0 for i in range(n)]
    content = [i for i in range(n) if not punct[i]]
    last = content[-1]
    heads = []
    for i in range(n):
        nxt = next((j for j in content if j > i), None)
        heads.append(0 if i == last else (nxt + 1 if nxt is not None else last + 1))
    return heads

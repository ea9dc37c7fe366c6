"""Exact k-nearest-neighbour search by WMD / WRD with WCD / RWMD pruning (Kusner et al. 2015,
section 4, "prefetch and prune")."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import NlptoolError, UsageError
from .transport import METRICS, PRUNE_RTOL, Doc, Prepared, cost_matrix, emd, prepare

# --------------------------------------------------------------------------------------------
# k-nearest-neighbour search


@dataclass
class SearchResult:
    """Neighbours of one query.

    Attributes:
        neighbors: ``[(corpus_index, distance)]``, nearest first (ties by index).
        exact_solves: transport problems solved for this query.
        candidates: corpus documents considered (non-empty ones).
    """

    neighbors: list[tuple[int, float]]
    exact_solves: int
    candidates: int

    @property
    def avoided(self) -> int:
        """Exact solves that the WCD/RWMD bounds made unnecessary."""
        return self.candidates - self.exact_solves


class CorpusIndex:
    """The corpus of a k-NN search, prepared once for one metric: weights, points, centroids,
    and all points stacked for vectorised RWMD.

    Empty documents (no token vectors) are never neighbours; ``valid`` lists the usable ones.
    """

    def __init__(self, docs: Sequence[Doc], metric: str):
        if metric not in METRICS:
            raise UsageError(f"metric {metric!r}: search takes wmd or wrd")
        self.metric = metric
        self.docs = list(docs)
        self.valid: list[int] = []
        self.prepared: list[Prepared | None] = []
        for i, d in enumerate(self.docs):
            try:
                p = prepare(d, metric)
            except NlptoolError:
                p = None
            self.prepared.append(p)
            if p is not None:
                self.valid.append(i)
        ps = [self.prepared[i] for i in self.valid]
        self.centroids = np.stack([p.a @ p.x for p in ps]) if ps else np.zeros((0, 1))
        self.points = np.concatenate([p.x for p in ps]) if ps else np.zeros((0, 1))
        self.weights = np.concatenate([p.a for p in ps]) if ps else np.zeros(0)
        sizes = np.array([len(p.a) for p in ps], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

    def wcd_all(self, q: Prepared) -> np.ndarray:
        """Centroid bounds of ``q`` to every valid document, ``(len(valid),)``."""
        diff = self.centroids - q.a @ q.x
        d = np.sqrt((diff * diff).sum(1))
        return d if self.metric == "wmd" else 0.5 * d * d

    def rwmd_all(self, q: Prepared, max_cells: int = 4_000_000) -> np.ndarray:
        """RWMD of ``q`` to every valid document, ``(len(valid),)``, in corpus blocks of at most
        ``max_cells`` cost entries."""
        n_docs = len(self.valid)
        out = np.empty(n_docs)
        per = max(1, max_cells // max(1, len(q.a)))
        ends = np.append(self.offsets[1:], len(self.points))
        d0 = 0
        while d0 < n_docs:
            d1 = d0
            while d1 < n_docs and (ends[d1] - self.offsets[d0] <= per or d1 == d0):
                d1 += 1
            lo, hi = self.offsets[d0], ends[d1 - 1]
            cost = cost_matrix(q.x, self.points[lo:hi], self.metric)
            starts = self.offsets[d0:d1] - lo
            q_side = q.a @ np.minimum.reduceat(cost, starts, axis=1)
            d_side = np.add.reduceat(self.weights[lo:hi] * cost.min(0), starts)
            out[d0:d1] = np.maximum(q_side, d_side)
            d0 = d1
        return out

    def exact(self, q: Prepared, qdoc: Doc, j: int) -> float:
        """Exact distance of ``q`` to valid document ``j`` (position in ``valid``)."""
        i = self.valid[j]
        if qdoc.key == self.docs[i].key:
            return 0.0
        return emd(q, self.prepared[i], self.metric)


def knn_search(query: Doc, index: CorpusIndex, k: int, *, prune: bool = True) -> SearchResult:
    """The ``k`` corpus documents nearest to ``query`` by exact WMD/WRD.

    With ``prune`` (Kusner et al. 2015, section 4): sort the corpus by the centroid bound (WCD),
    solve the first ``k`` exactly, then walk on in WCD order; stop once the WCD exceeds the current
    ``k``-th distance (every later WCD does too), and skip a document whose RWMD exceeds it. Both
    are lower bounds, so the neighbours equal brute force (``prune=False``) exactly; ties are broken
    by corpus index in both.

    Raises:
        NlptoolError: the query has no token vectors.
        UsageError: ``k < 1``.
    """
    if k < 1:
        raise UsageError("the number of neighbours must be at least 1")
    q = prepare(query, index.metric)
    n = len(index.valid)
    if n == 0:
        return SearchResult([], 0, 0)
    if not prune:
        dists = [(index.exact(q, query, j), index.valid[j]) for j in range(n)]
        dists.sort()
        return SearchResult([(i, d) for d, i in dists[:k]], n, n)
    wcd_ = index.wcd_all(q)
    order = np.lexsort((np.arange(n), wcd_))
    heap: list[tuple[float, int]] = []  # max-heap of (-dist, -corpus_index) of the current best k
    solves = 0

    def kth() -> float:
        return -heap[0][0]

    def push(d: float, i: int) -> None:
        item = (-d, -i)
        if len(heap) < k:
            heapq.heappush(heap, item)
        elif (d, i) < (-heap[0][0], -heap[0][1]):
            heapq.heapreplace(heap, item)

    rw = None
    for pos, j in enumerate(order):
        if len(heap) >= k:
            limit = kth() * (1 + PRUNE_RTOL) + PRUNE_RTOL
            if wcd_[j] > limit:
                break  # sorted by WCD: every remaining document is pruned
            if rw is None:
                rw = index.rwmd_all(q)
            if rw[j] > limit:
                continue
        d = index.exact(q, query, int(j))
        solves += 1
        push(d, index.valid[int(j)])
    best = sorted((-nd, -ni) for nd, ni in heap)
    return SearchResult([(i, d) for d, i in best], solves, n)

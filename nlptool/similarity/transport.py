"""Optimal-transport maths of WMD / WRD: documents, weights, ground costs, exact and entropic
solvers, and the WCD / RWMD lower bounds.

Sources: Kusner et al., ICML 2015 (WMD, WCD eq. 3, RWMD section 4); Yokoi et al., EMNLP 2020
(WRD eq. 8-9); Su, kexue.fm 2020-05-13; POT (Flamary et al., JMLR 2021) for the solvers; Cuturi
2013 for Sinkhorn. See :mod:`nlptool.similarity` for the overview.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputDataError, NlptoolError, UsageError

METRICS = ("wmd", "wrd")
SOLVERS = ("emd", "sinkhorn")

#: Tolerance used when pruning: a lower bound must exceed the k-th distance by more than this
#: (relative) amount before a document is skipped, so float rounding cannot change the result.
PRUNE_RTOL = 1e-9

#: Most support points one side of a transport problem may have. A text with more tokens is
#: reduced to this many weighted points (:func:`quantize`, :class:`StreamQuantizer`), so the cost
#: matrix and the transport plan stay below ``MAX_SUPPORT**2`` float64 each (32 MiB) however long
#: the texts are; a text with at most this many tokens is transported token by token, exactly as
#: before the cap existed.
MAX_SUPPORT = 2048


# --------------------------------------------------------------------------------------------
# documents


@dataclass
class Doc:
    """The token vectors of one text.

    Attributes:
        tokens: the tokens (words or model tokens), one per row of ``vectors``; repeated words of
            a static-vector text are merged into one row whose ``counts`` is their number. A
            contextual text of more than :data:`MAX_SUPPORT` tokens (see ``measures``) has one
            row, token ``""``: its exact IDF-weighted mean vector (what ``--pool mean`` uses).
        vectors: ``(n_tokens, dim)`` float64.
        counts: ``(n_tokens,)`` occurrences (1 for contextual tokens).
        idf: ``(n_tokens,)`` IDF weights, all 1 without IDF weighting.
        key: identity of the token sequence; equal keys mean identical texts (distance 0).
        oov: out-of-vocabulary words of the text (static vectors only).
        measures: for a contextual text of more than :data:`MAX_SUPPORT` tokens, its transport
            measures reduced while streaming, ``{"wmd": Prepared, "wrd": Prepared | None}``
            (``None``: every vector was zero), used by :func:`prepare` instead of the rows;
            else ``None``.
    """

    tokens: list[str]
    vectors: np.ndarray
    counts: np.ndarray | None = None
    idf: np.ndarray | None = None
    key: tuple = ()
    oov: list[str] = field(default_factory=list)
    measures: dict | None = None

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


def prepare(doc: Doc, metric: str, max_support: int | None = MAX_SUPPORT) -> Prepared:
    """The weights and points of ``doc`` for ``metric``.

    * ``wmd``: nBOW ``a_i = c_i w_i / sum_j c_j w_j`` (``w`` = IDF or 1), points as they are.
    * ``wrd``: ``a_i = c_i w_i ||x_i|| / sum_j c_j w_j ||x_j||``, points ``x_i / ||x_i||``;
      zero vectors carry no mass and are left out.

    A text reduced while streaming (``doc.measures``, a contextual text of more than
    :data:`MAX_SUPPORT` tokens) gives its stored measure. Any other measure with more than
    ``max_support`` points (a static text with that many distinct words) is reduced to
    ``max_support`` points by :func:`quantize`; at or below it nothing changes. ``None`` disables
    that cap (exact, memory ``O(n * m)``).

    Raises:
        NlptoolError: the document has no token (or, for WRD, only zero vectors).
    """
    if len(doc) == 0:
        raise NlptoolError(doc.empty_reason() or "no tokens")
    if metric not in METRICS:
        raise UsageError(f"metric {metric!r}: expected one of {', '.join(METRICS)}")
    if doc.measures is not None:
        p = doc.measures.get(metric)
        if p is None or not p.a.sum() > 0:
            raise NlptoolError("all token vectors are zero" if metric == "wrd" else "all token weights are zero")
        return p
    w = doc.counts * doc.idf
    if metric == "wmd":
        if w.sum() <= 0:
            raise NlptoolError("all token weights are zero")
        p = Prepared(w / w.sum(), doc.vectors)
    else:
        norms = np.linalg.norm(doc.vectors, axis=1)
        keep = norms > 0
        if not keep.any():
            raise NlptoolError("all token vectors are zero")
        m = (w * norms)[keep]
        if m.sum() <= 0:
            raise NlptoolError("all token weights are zero")
        p = Prepared(m / m.sum(), doc.vectors[keep] / norms[keep, None])
    if max_support is not None and len(p.a) > max_support:
        p = quantize(p, metric, max_support)
    return p


def quantize(p: Prepared, metric: str, k: int, *, block: int = 1024) -> Prepared:
    """Reduce a measure of ``n > k`` points to ``k`` of its own points: a systematic sample with
    probability proportional to mass (the points where the cumulative mass crosses
    ``(j + 1/2) / k``, ``j = 0..k-1``, in the points' order, i.e. a stratified sample along the
    text; the heaviest remaining points where a heavy point was hit twice), and every point's mass
    moved to its nearest sample point under the metric's cost (Euclidean for WMD, ``1 - cos`` for
    WRD): the Voronoi quantization of the measure onto a stratified sample of its support.

    Moving each point's mass to its sample point is a coupling of the two measures costing
    ``eps = sum_i a_i C(x_i, s(i))``; for WMD (a metric on measures) the distance to any other text
    changes by at most ``eps`` per reduced side (triangle inequality). The reduced points are
    actual token vectors (unit vectors for WRD stay unit vectors). On the texts measured in
    docs/similarity.md the reduction overestimates WMD/WRD by about 1 % at 2,500 tokens a side and
    about 10 % at 10,000 (barycenters instead of sample points underestimated by 13-22 %).

    Returns:
        ``Prepared`` with ``k`` points in their original order, weights summing to 1.
    """
    n = len(p.a)
    if n <= k:
        return p
    cum = np.cumsum(p.a)
    picks = np.minimum(np.searchsorted(cum, (np.arange(k) + 0.5) * (cum[-1] / k)), n - 1)
    centres = np.unique(picks)
    if len(centres) < k:  # a point heavier than 1/k was hit more than once: add the heaviest others
        rest = np.argsort(-p.a, kind="stable")
        rest = rest[~np.isin(rest, centres)][: k - len(centres)]
        centres = np.sort(np.concatenate([centres, rest]))
    cx = p.x[centres]
    owner = np.empty(n, dtype=np.int64)
    for s in range(0, n, block):
        owner[s:s + block] = cost_matrix(p.x[s:s + block], cx, metric).argmin(axis=1)
    owner[centres] = np.arange(k)  # a sample point keeps its own mass (a duplicate vector could tie)
    mass = np.bincount(owner, weights=p.a, minlength=k)
    return Prepared(mass / mass.sum(), cx)


class StreamQuantizer:
    """A weighted point stream reduced to at most ``k`` points in bounded memory (merge and
    reduce): points are buffered, and whenever the buffer holds ``2k`` of them it is reduced to
    ``k`` with :func:`quantize` (masses kept unnormalised, so a sample point that already stands
    for many earlier points is sampled in proportion to them, and the sample stays spread over the
    whole stream). Memory ``O(k * dim)`` however many points are added.

    Used for the token vectors of a long text (:class:`nlptool.similarity.ContextualEmbedder`),
    one per metric: WMD points ``x`` with mass ``w`` (IDF), WRD points ``x / ||x||`` with mass
    ``w ||x||``.
    """

    def __init__(self, k: int, metric: str):
        self.k, self.metric = int(k), metric
        self._a: list[np.ndarray] = []
        self._x: list[np.ndarray] = []
        self.n = 0

    def add(self, a: np.ndarray, x: np.ndarray) -> None:
        """Add points ``x`` ``(n, dim)`` with masses ``a`` ``(n,)`` (>= 0)."""
        if not len(a):
            return
        self._a.append(np.asarray(a, dtype=np.float64))
        self._x.append(np.asarray(x, dtype=np.float64))
        self.n += len(a)
        if self.n >= 2 * self.k:
            self._reduce()

    def _reduce(self) -> None:
        a, x = np.concatenate(self._a), np.concatenate(self._x)
        total = a.sum()
        if len(a) > self.k:
            if total > 0:
                r = quantize(Prepared(a / total, x), self.metric, self.k)
                a, x = r.a * total, r.x
            else:  # nothing but zero masses so far: any k of them stand for all
                a, x = a[: self.k], x[: self.k]
        self._a, self._x, self.n = [a], [x], len(a)

    def result(self) -> Prepared | None:
        """The measure, at most ``k`` points, weights summing to 1; ``None`` when nothing was added
        or the total mass is 0."""
        if not self.n:
            return None
        self._reduce()
        a, x = self._a[0], self._x[0]
        return Prepared(a / a.sum(), x) if a.sum() > 0 else None


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


#: Optional dependencies that POT probes for when it is imported (``try: import sklearn.cluster``
#: in ``ot.lowrank``, networkx in ``ot.gromov``) for features nlptool does not use (k-means
#: initialisation of low-rank OT, quantized Gromov-Wasserstein). With scikit-learn installed (for
#: ``split-valid``) the probes cost about 1 s of every ``similarity`` start-up.
POT_SKIPPED_PROBES = ("sklearn", "networkx")
#: Modules imported by ``import ot`` that nlptool never uses, loaded on first use instead
#: (``importlib.util.LazyLoader``: a real module object whose code runs on its first attribute
#: access, so a later user gets the real module):
#:
#: * ``ot.datasets`` imports ``scipy.stats`` (about 0.7 s).
#: * ``numpy.f2py`` (the Fortran wrapper generator) is imported only because scipy's array-API
#:   shim (``scipy._lib.array_api_compat.numpy``, which POT's ``import scipy.sparse`` pulls in)
#:   copies every public attribute of numpy, lazy submodules included; f2py in turn imports
#:   ``charset_normalizer`` when installed (together about 0.05 s, 0.15 s with the collections
#:   they set off). Nothing on nlptool's path uses it. It stays deferred when torch is imported
#:   before POT, as in every nlptool command (torch's own import reads each module's
#:   ``__file__``, which runs a deferred module: correct, only not faster).
#:
#: The scipy submodules POT imports with ``from scipy.x import f`` (``scipy.optimize``,
#: ``scipy.spatial.distance`` and through them ``scipy.linalg``, ``scipy.special``) cannot be
#: deferred this way: the ``from`` import reads the attribute and so runs the module.
POT_LAZY_MODULES = ("ot.datasets", "numpy.f2py")


class _SkipProbes:
    """A ``sys.meta_path`` finder that makes ``import`` of :data:`POT_SKIPPED_PROBES` fail, so
    POT's probes take their "not installed" branch, and loads :data:`POT_LAZY_MODULES` lazily."""

    def find_spec(self, name, path=None, target=None):
        import sys

        if name.split(".")[0] in POT_SKIPPED_PROBES and name.split(".")[0] not in sys.modules:
            raise ImportError(f"{name} is not needed by nlptool's use of POT")
        if name in POT_LAZY_MODULES:
            import importlib.machinery
            import importlib.util

            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = importlib.util.LazyLoader(spec.loader)
            return spec
        return None


def pot():
    """The ``ot`` module (POT), imported without its optional probes of scikit-learn and networkx
    (:data:`POT_SKIPPED_PROBES`, unless those are imported already), with the modules nlptool
    does not use loaded on first use (:data:`POT_LAZY_MODULES`), and with the cyclic garbage
    collector paused while it imports. Returns the module; an import that fails that way is
    retried as a plain ``import ot``.

    The pause: ``import ot`` (POT and some 300 scipy modules) allocates enough to set off
    collections, and once torch is imported a full collection walks torch's 170,000 objects
    (about 0.1 s on the 2-core CPU); paused, the import took 0.2 s less CPU. Reference counting
    frees as usual meanwhile; the collector is re-enabled afterwards if it was enabled.

    Raises:
        ImportError: POT is not installed.
    """
    import sys

    from ..threads import gc_paused

    if "ot" in sys.modules:
        return sys.modules["ot"]
    finder = _SkipProbes()
    sys.meta_path.insert(0, finder)
    with gc_paused():
        try:
            import ot
        except ImportError:
            for name in [m for m in sys.modules if m == "ot" or m.startswith("ot.")]:
                del sys.modules[name]
            sys.meta_path.remove(finder)
            import ot
        finally:
            if finder in sys.meta_path:
                sys.meta_path.remove(finder)
    return ot


def emd(pa: Prepared, pb: Prepared, metric: str) -> float:
    """Exact transport cost with :func:`ot.emd2` (network simplex), in the metric's units."""
    ot = pot()

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


#: A Sinkhorn plan whose marginals miss ``a``/``b`` by more than this (L1, total mass 1: one
#: percent of the mass) has not converged; its value is reported with a warning.
SINKHORN_MARGINAL_TOL = 1e-2


def sinkhorn_batch(problems: Sequence[tuple[Prepared, Prepared]], metric: str, reg: float, *,
                   device="cpu", batch_size: int = 256, max_iter: int = 1000, tol: float = 1e-7,
                   marginal_errors: list | None = None) -> list[float]:
    """Entropic transport costs ``<T, C>`` (Cuturi 2013) of many problems with
    :func:`ot.batch.solve_batch` (log-domain Sinkhorn) on the torch backend.

    Problems are sorted by size and padded with zero-mass rows/columns (cost 0) to the largest of
    their batch of ``batch_size``; padding receives no mass, so each value equals
    ``ot.sinkhorn2(a, b, C, reg)`` of the unpadded problem. ``reg`` is in the cost's units
    (Euclidean for WMD, ``1 - cos`` for WRD); smaller is closer to the exact value but slower.
    ``marginal_errors``, when given, receives per problem the L1 distance between the plan's
    marginals and ``a``/``b`` (0 at convergence; above :data:`SINKHORN_MARGINAL_TOL` the iteration
    stopped at ``max_iter`` before converging, e.g. for a very small ``reg``).
    """
    import torch

    ot = pot()
    if reg is None or reg <= 0:
        raise UsageError("the Sinkhorn solver needs an entropic regularisation > 0 (e.g. 0.05)")
    out = [0.0] * len(problems)
    errs_out = [0.0] * len(problems) if marginal_errors is not None else None
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
        if errs_out is not None:
            plan = res.plan.detach().cpu().numpy()
            errs = np.abs(plan.sum(axis=2) - a).sum(axis=1) + np.abs(plan.sum(axis=1) - b).sum(axis=1)
        for r, i in enumerate(idx):
            out[i] = float(vals[r])
            if errs_out is not None:
                errs_out[i] = float(errs[r]) if np.isfinite(errs[r]) else float("inf")
    if marginal_errors is not None:
        marginal_errors[:] = errs_out
    return out


def pair_distances(docs_a: Sequence[Doc], docs_b: Sequence[Doc], *, metrics: Sequence[str] = METRICS,
                   solver: str = "emd", reg: float | None = None, device="cpu",
                   sinkhorn_batch_size: int = 256) -> list[dict | Exception]:
    """Distances of the pairs ``(docs_a[i], docs_b[i])``.

    Returns one entry per pair: ``{"wmd": float, "wrd": float}`` (the keys of the requested
    ``metrics``; WMD >= 0 in Euclidean units of the embeddings, WRD in ``[0, 2]``), or an
    :class:`InputDataError` when a side has no token vectors (empty text, all words OOV). Identical
    token sequences give exactly 0 with either solver. A pair with a side of more than
    :data:`MAX_SUPPORT` tokens (or distinct static words) is transported on reduced measures
    (:func:`prepare`) and its entry gets a ``"warning"`` saying the value is approximate.

    Raises:
        UsageError: unknown metric or solver, sinkhorn without a positive ``reg``.
    """
    for m in metrics:
        if m not in METRICS:
            raise UsageError(f"metric {m!r}: expected wmd or wrd")
    if solver not in SOLVERS:
        raise UsageError(f"solver {solver!r}: expected emd or sinkhorn")
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
        if da.key != db.key and any(d.measures is not None or len(d) > MAX_SUPPORT for d in (da, db)):
            res["warning"] = (f"approximate: a text of more than {MAX_SUPPORT} tokens was reduced to {MAX_SUPPORT} "
                              "transport points (see docs/similarity.md, long texts)")
        results.append(res)
    if solver == "sinkhorn":
        for m, items in todo.items():
            if not items:
                continue
            errors: list = []
            vals = sinkhorn_batch([(pa, pb) for _, pa, pb in items], m, reg, device=device,
                                  batch_size=sinkhorn_batch_size, marginal_errors=errors)
            for (i, _, _), v, e in zip(items, vals, errors):
                if isinstance(results[i], Exception):
                    continue
                if not np.isfinite(v):
                    results[i] = InputDataError(f"Sinkhorn gave a non-finite {m} (reg {reg} too small for these "
                                                "costs); raise the regularisation or use the exact solver")
                    continue
                results[i][m] = v
                if e > SINKHORN_MARGINAL_TOL:
                    prev = results[i].get("warning")
                    msg = f"{m}: marginals off by {e:.2g}"
                    results[i]["warning"] = (f"{prev}; {msg}" if prev else
                                             f"Sinkhorn did not converge ({msg}; raise the regularisation or use the exact solver)")
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


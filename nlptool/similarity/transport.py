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
        idf: ``(n_tokens,)`` IDF weights, all 1 without IDF weighting.
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
    import ot
    import torch

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

    Returns one entry per pair: ``{"wmd": float, "wrd": float, "similarity": 1 - wrd}`` (the keys of
    the requested ``metrics``; ``similarity`` only with WRD, in ``[-1, 1]``), or an
    :class:`InputDataError` when a side has no token vectors (empty text, all words OOV). Identical
    token sequences give exactly 0 with either solver.

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
    for res in results:
        if isinstance(res, dict) and "wrd" in res and res["wrd"] is not None:
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

"""The library entry points of ``nlptool similarity``, usable from Python as they are:
:func:`load_embedder`, :func:`score_pairs` / :func:`pairs` (pair mode, several references),
:func:`search` (exact k-NN) and :func:`matrix` (all-pairs distances in row blocks), and
:func:`check_options`, the rules between the options. The command object
:class:`nlptool.similarity.Similarity` calls them."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from ..errors import InputDataError, NlptoolError, UsageError
from .defaults import CHAR_WEIGHT
from .embedders import ContextualEmbedder, StaticEmbedder
from .search import CorpusIndex, knn_search
from ..text import char_jaccard
from .transport import METRICS, SOLVERS, Doc, emd, mean_cosine, pair_distances, prepare
from .weights import builtin_idf_path, load_idf, load_whitening

#: Ways to compare two texts: ``none`` = optimal transport between token vectors (WMD/WRD),
#: ``mean`` = cosine of the (IDF-weighted) mean token vectors.
POOLS = ("none", "mean")
METRIC_CHOICES = ("wmd", "wrd", "both")

Log = Callable[[str], None]


class OovStats:
    """Out-of-vocabulary counts of static word vectors over every text embedded."""

    def __init__(self):
        self.words: Counter = Counter()
        self.total = 0
        self.texts = 0
        self.texts_with_oov = 0

    def add(self, doc: Doc) -> None:
        self.texts += 1
        self.total += int(doc.counts.sum()) + len(doc.oov)
        if doc.oov:
            self.texts_with_oov += 1
            self.words.update(doc.oov)

    def summary(self) -> str:
        n = sum(self.words.values())
        pct = 100.0 * n / self.total if self.total else 0.0
        top = ", ".join(f"{w} ({c})" for w, c in self.words.most_common(8))
        return (f"out of vocabulary: {n} of {self.total} words ({pct:.1f}%) in {self.texts_with_oov} of "
                f"{self.texts} texts" + (f"; most frequent: {top}" if top else ""))


def model_kind(model: str | os.PathLike) -> str:
    """How to load ``model`` for token vectors: ``masked-lm`` for a local checkpoint saved with an
    MLM head (its base model is used, and no pooler is newly initialised), else ``encoder``."""
    from ..models import resolve_model_path

    path = resolve_model_path(str(model))
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as fh:
            archs = json.load(fh).get("architectures") or []
    except (OSError, ValueError):
        return "encoder"
    return "masked-lm" if any(a.endswith("ForMaskedLM") for a in archs) else "encoder"


def load_embedder(
    loaded=None,
    *,
    vectors: str | os.PathLike | None = None,
    vectors_limit: int | None = None,
    layers: Sequence[int] = (-1,),
    idf: str | os.PathLike | None = None,
    uniform: bool = False,
    whiten: str | os.PathLike | None = None,
    drop_punct: bool = False,
    batch_size: int = 64,
    log: Log | None = None,
):
    """The token-vector source of a similarity run.

    Args:
        loaded: a :class:`nlptool.models.LoadedModel` (load it with ``kind=model_kind(name)``);
            ``None`` with ``vectors``.
        vectors: a word2vec file (text or binary) instead of a model; the embedder then has an
            ``oov_stats`` (:class:`OovStats`).
        layers: hidden-state indices averaged (0 = embeddings, -1 = last).
        idf: an IDF table (``token<TAB>idf``) or a corpus (one document per line); without it a
            built-in model uses its shipped table unless ``uniform``.
        whiten: BERT-whitening, a ``.npz`` or a text file to fit it on (contextual vectors only).
        drop_punct: leave punctuation tokens out of the transport (contextual vectors only).
        log: receives one-line messages (what was loaded).

    Raises:
        UsageError: inconsistent options (:func:`check_options`), missing files.
    """
    log = log or (lambda s: None)
    check_options(vectors=vectors, idf=idf, uniform=uniform, whiten=whiten, drop_punct=drop_punct)
    if vectors is not None:
        from .vectors import load_word2vec

        wv = load_word2vec(vectors, limit=vectors_limit)
        log(f"vectors {vectors}: {len(wv)} words, dim {wv.dim}")
        emb = StaticEmbedder(wv)
        emb.oov_stats = OovStats()
    else:
        if loaded is None:
            raise UsageError("give a loaded model or a word2vec file")
        emb = ContextualEmbedder(loaded, layers=tuple(layers), batch_size=batch_size, drop_punct=drop_punct)
        emb.oov_stats = None
        if whiten:
            emb.whitening = load_whitening(whiten, emb)
            log(f"whitening from {whiten}: {emb.whitening.w.shape[0]} -> {emb.whitening.w.shape[1]} dimensions")
    idf_file = idf
    if idf_file is None and not uniform and loaded is not None and vectors is None:
        idf_file = builtin_idf_path(loaded.name)
    if idf_file:
        emb.idf, emb.idf_default = load_idf(idf_file, emb.split)
        log(f"IDF weights from {idf_file}: {len(emb.idf)} tokens")
    return emb


def _embed(embedder, texts: Sequence[str]) -> list[Doc]:
    docs = embedder.embed(list(texts))
    stats = getattr(embedder, "oov_stats", None)
    if stats is not None:
        for d in docs:
            stats.add(d)
    return docs


def check_options(metric: str = "both", pool: str = "none", solver: str = "emd", reg: float | None = None, *,
                  vectors: str | os.PathLike | None = None, idf: str | os.PathLike | None = None,
                  uniform: bool = False, whiten: str | os.PathLike | None = None,
                  drop_punct: bool = False, char_weight: float = CHAR_WEIGHT) -> tuple[str, ...]:
    """The rules between the options of a similarity run, each written once: :class:`Similarity`
    (so the CLI), :func:`load_embedder`, :func:`score_pairs`, :func:`pairs` and :func:`matrix`
    check with it. (Which options each *mode* takes: :meth:`Similarity.check_mode`.)

    Returns:
        The transport metrics computed: ``("wmd", "wrd")`` for ``both``, else ``(metric,)``.

    Raises:
        UsageError: an unknown metric, pool or solver; ``sinkhorn`` without ``reg > 0``; an IDF
            file with ``uniform``; ``whiten`` or ``drop_punct`` with static ``vectors``;
            ``char_weight`` not a number in ``[0, 1]``.
    """
    if isinstance(char_weight, bool) or not isinstance(char_weight, (int, float)) or not 0.0 <= char_weight <= 1.0:
        raise UsageError(f"--char-weight {char_weight!r}: expected a number in [0, 1]")
    if pool not in POOLS:
        raise UsageError(f"pool {pool!r}: expected one of {', '.join(POOLS)}")
    if metric not in METRIC_CHOICES:
        raise UsageError(f"metric {metric!r}: expected wmd, wrd or both")
    if solver not in SOLVERS:
        raise UsageError(f"solver {solver!r}: expected emd or sinkhorn")
    if solver == "sinkhorn" and (reg is None or not reg > 0):
        raise UsageError("--solver sinkhorn needs --reg R with R > 0 (e.g. --reg 0.05)")
    if idf and uniform:
        raise UsageError("--idf FILE and --uniform exclude each other")
    if vectors is not None and (whiten or drop_punct):
        raise UsageError("--whiten and --drop-punct apply to contextual vectors (--model), not to --vectors")
    return METRICS if metric == "both" else (metric,)


def blend(cos: float, a: str, b: str, char_weight: float = CHAR_WEIGHT) -> float:
    """The pair score ``similarity = (1 - w) * cos + w * J``: the cosine of the two texts'
    (IDF-weighted) mean token vectors blended with the Jaccard similarity of their character sets
    (:func:`nlptool.similarity.transport.char_jaccard`), ``w = char_weight`` in ``[0, 1]``; the
    result is in ``[-1 + w, 1]`` (1 for identical texts). The cosine knows meaning but little of
    which words differ (``在哪个省`` / ``在哪个市``); the characters know that."""
    return (1.0 - char_weight) * cos + char_weight * char_jaccard(a, b)


def score_pairs(embedder, texts_a: Sequence[str], texts_b: Sequence[str | Sequence[str]], *,
                metric: str = "both", pool: str = "none", solver: str = "emd", reg: float | None = None,
                device="cpu", b_key: str | None = None, char_weight: float = CHAR_WEIGHT) -> list[dict | Exception]:
    """Scores of the pairs ``(texts_a[i], texts_b[i])``; ``texts_b[i]`` may be a list of references.

    One entry per pair, an :class:`InputDataError` for a text without token vectors:

    * ``pool="none"``: ``{"wmd": float, "wrd": float, "cos": float, "similarity": float}`` (the
      requested transport metrics, WMD in the vectors' Euclidean units, WRD in ``[0, 2]``; the
      cosine in ``[-1, 1]`` of the IDF-weighted mean token vectors; ``similarity`` =
      :func:`blend` of the cosine and the characters, ``char_weight`` :data:`CHAR_WEIGHT`).
    * ``pool="mean"``: ``{"cos": float, "similarity": float}`` (no transport).
    * several references: each value is a list (one per reference, in order) and ``<key>_min``
      (``cos_max`` for the cosine) holds the best; ``similarity`` is the highest reference's and
      ``best`` its index. Each listed value equals the pair mode's value of that single pair; a
      ``warning`` of a reference (``approximate: ...`` for a text of more than
      :data:`~nlptool.similarity.transport.MAX_SUPPORT` tokens, Sinkhorn not converged) is kept,
      naming the references it concerns unless it concerns all of them. An error names the
      reference, ``b_key[k]`` (``reference k`` without ``b_key``), or the first text.

    Raises:
        UsageError: unknown metric, pool or solver; sinkhorn without a positive ``reg``;
            ``char_weight`` outside ``[0, 1]``.
    """
    metrics = check_options(metric, pool, solver, reg, char_weight=char_weight)
    flat_a, flat_b, owner = [], [], []
    for i, (a, b) in enumerate(zip(texts_a, texts_b)):
        refs = [b] if isinstance(b, str) else list(b)
        for r in refs:
            flat_a.append(a)
            flat_b.append(r)
            owner.append(i)
    docs = _embed(embedder, list(flat_a) + list(flat_b))
    da, db = docs[: len(flat_a)], docs[len(flat_a):]
    if pool == "mean":
        flat: list[dict | Exception] = []
        for x, y in zip(da, db):
            bad = [f"{side} text: {d.empty_reason()}" for side, d in (("first", x), ("second", y)) if d.empty_reason()]
            if bad:
                flat.append(InputDataError("; ".join(bad)))
            else:
                flat.append({"cos": mean_cosine(x, y)})
    else:
        flat = pair_distances(da, db, metrics=metrics, solver=solver, reg=reg, device=device)
    for r, x, y, a, b in zip(flat, da, db, flat_a, flat_b):
        if isinstance(r, dict):
            warning = r.pop("warning", None)
            if "cos" not in r:
                r["cos"] = mean_cosine(x, y)
            r["similarity"] = blend(r["cos"], a, b, char_weight)
            if warning is not None:
                r["warning"] = warning
    if getattr(embedder, "oov_stats", None) is not None:
        for r, x, y in zip(flat, da, db):
            if isinstance(r, dict):
                r["oov"] = len(x.oov) + len(y.oov)

    def name(k: int) -> str:
        return f"{b_key}[{k}]" if b_key else f"reference {k}"

    out: list[dict | Exception] = []
    pos = 0
    for i, b in enumerate(texts_b):
        n = 1 if isinstance(b, str) else len(b)
        group = flat[pos:pos + n]
        first, refs = (da[pos] if n else None), db[pos:pos + n]
        pos += n
        if isinstance(b, str):
            out.append(group[0])
            continue
        if n == 0:
            out.append(InputDataError("the list of references is empty"))
            continue
        if any(isinstance(g, Exception) for g in group):
            why = _unusable(first, () if pool == "mean" else metrics)
            if why:
                out.append(InputDataError(f"first text: {why}"))
                continue
            msgs = []
            for k, (g, d) in enumerate(zip(group, refs)):
                if isinstance(g, Exception):
                    msgs.append(f"{name(k)}: {d.empty_reason() or (g.reason if isinstance(g, InputDataError) else g)}")
            out.append(InputDataError("; ".join(msgs)))
            continue
        res: dict = {}
        keys = ["cos"] if pool == "mean" else [*metrics, "cos"]
        for key in keys + (["oov"] if "oov" in group[0] else []):
            res[key] = [g[key] for g in group]
        best = int(np.argmax([g["similarity"] for g in group]))
        for key in keys:
            res[f"{key}_max" if key == "cos" else f"{key}_min"] = (max if key == "cos" else min)(res[key])
        res["best"] = best
        warned: dict[str, list[int]] = {}
        for k, g in enumerate(group):
            if g.get("warning"):
                warned.setdefault(g["warning"], []).append(k)
        if warned:
            res["warning"] = "; ".join(w if len(ks) == n else f"{', '.join(name(k) for k in ks)}: {w}"
                                       for w, ks in warned.items())
        res["similarity"] = group[best]["similarity"]
        out.append(res)
    return out


def _unusable(doc: Doc, metrics: Sequence[str]) -> str | None:
    """Why ``doc`` cannot be transported for one of ``metrics`` (or has no tokens), else None."""
    why = doc.empty_reason()
    for m in metrics:
        if why:
            break
        try:
            prepare(doc, m)
        except NlptoolError as exc:
            why = str(exc)
    return why


def pairs(records: Iterable, embedder, *, a_key: str = "sentence1", b_key: str = "sentence2",
          metric: str = "both", pool: str = "none", solver: str = "emd", reg: float | None = None,
          device="cpu", chunk_size: int = 1000, strict: bool = False, char_weight: float = CHAR_WEIGHT) -> Iterator[dict]:
    """Pair mode over records of :func:`nlptool.records.read_records` (``keys=[a_key, b_key]``,
    ``list_keys=[b_key]``): one output object per record, in order (see :func:`score_pairs`).

    Raises:
        InputDataError: with ``strict``, at the first bad record.
    """
    from ..engine import map_records

    check_options(metric, pool, solver, reg, char_weight=char_weight)

    def batch(recs):
        return score_pairs(embedder, [r.texts[a_key] for r in recs], [r.texts[b_key] for r in recs],
                           metric=metric, pool=pool, solver=solver, reg=reg, device=device, b_key=b_key,
                           char_weight=char_weight)

    yield from map_records(records, batch, strict=strict, chunk_size=chunk_size)


def search(query_records: Iterable, corpus_records: Iterable, embedder, *, metric: str = "wrd", top_k: int = 5,
           strict: bool = False, chunk_size: int = 256, log: Log | None = None) -> Iterator[dict]:
    """Exact k-NN search: for each query record, the ``top_k`` corpus texts nearest by WMD/WRD
    (:func:`knn_search`, WCD/RWMD pruning). Output objects: the query's fields plus
    ``{"neighbors": [{"line", "text", "distance"}], "exact_solves", "avoided"}``. A corpus record
    that cannot be read or has no token vectors is never a neighbour (reported through ``log``).

    Raises:
        UsageError: metric not wmd/wrd, ``top_k < 1``.
    """
    from ..engine import map_records

    log = log or (lambda s: None)
    if metric not in METRICS:
        raise UsageError(f"metric {metric!r}: search takes wmd or wrd")
    if top_k < 1:
        raise UsageError("the number of neighbours must be at least 1")
    crecs = list(corpus_records)
    good = [r for r in crecs if not r.error]
    for r in crecs:
        if r.error:
            log(f"corpus {r.error}; not searched")
    index = CorpusIndex(_embed(embedder, [r.text for r in good]), metric)
    empty = len(good) - len(index.valid)
    if empty:
        log(f"{empty} corpus text(s) have no token vectors (empty or all OOV) and are never neighbours")
    totals = {"queries": 0, "solves": 0, "candidates": 0}

    def batch(recs):
        out = []
        for qd in _embed(embedder, [r.text for r in recs]):
            why = qd.empty_reason()
            if why:
                out.append(InputDataError(f"query: {why}"))
                continue
            res = knn_search(qd, index, top_k)
            totals["queries"] += 1
            totals["solves"] += res.exact_solves
            totals["candidates"] += res.candidates
            obj = {"neighbors": [{"line": good[i].line, "text": good[i].text, "distance": d} for i, d in res.neighbors],
                   "exact_solves": res.exact_solves, "avoided": res.avoided}
            if getattr(embedder, "oov_stats", None) is not None:
                obj["oov"] = len(qd.oov)
            out.append(obj)
        return out

    yield from map_records(query_records, batch, strict=strict, chunk_size=chunk_size)
    c = totals["candidates"]
    avoided = c - totals["solves"]
    log(f"search ({metric}, top {top_k}): {totals['queries']} queries x {len(index.valid)} corpus texts; "
        f"{totals['solves']} exact solves, {avoided} of {c} avoided by WCD/RWMD pruning "
        f"({100.0 * avoided / c if c else 0.0:.1f}%)")


def _mean_vectors(docs: Sequence[Doc]) -> np.ndarray:
    """Unit (IDF-weighted) mean vectors ``(n, dim)``; rows of empty documents are NaN."""
    dim = next((d.vectors.shape[1] for d in docs if len(d)), 1)
    out = np.full((len(docs), dim), np.nan)
    for i, d in enumerate(docs):
        if len(d):
            w = d.counts * d.idf
            v = w @ d.vectors / w.sum()
            nrm = np.linalg.norm(v)
            out[i] = v / nrm if nrm > 0 else 0.0
    return out


def distance_block(rows: Sequence[Doc], cols: Sequence[Doc], metric: str) -> np.ndarray:
    """Exact distances ``(len(rows), len(cols))`` float64: WMD/WRD by :func:`emd` (0 for identical
    token sequences, as in pair mode), or ``cos`` = ``1 - cosine`` of the mean vectors. A row or
    column without token vectors is NaN."""
    out = np.full((len(rows), len(cols)), np.nan)
    if metric == "cos":
        a, b = _mean_vectors(rows), _mean_vectors(cols)
        return 1.0 - a @ b.T
    pc = []
    for d in cols:
        try:
            pc.append(prepare(d, metric))
        except NlptoolError:
            pc.append(None)
    for i, r in enumerate(rows):
        try:
            pr = prepare(r, metric)
        except NlptoolError:
            continue
        for j, (c, p) in enumerate(zip(cols, pc)):
            if p is not None:
                out[i, j] = 0.0 if r.key == c.key else emd(pr, p, metric)
    return out


def check_matrix_path(path: str | os.PathLike) -> str:
    """The matrix file of ``--matrix`` as a string, checked before any work (the command object
    calls this when it selects the mode; :func:`matrix` again).

    Raises:
        UsageError: the path does not end in ``.npy`` (``-`` included: the top-k lines go to stdout).
    """
    path = str(path)
    if not path.endswith(".npy"):
        raise UsageError(f"{path}: the matrix file must end in .npy")
    return path


def _npy_header(fh, shape: tuple[int, int]) -> None:
    """The ``.npy`` header (format 1.0, float64, C order) of a ``shape`` matrix, the bytes
    ``np.save`` and ``open_memmap`` write, so the rows can follow as they are computed."""
    from numpy.lib import format as npy

    npy.write_array_header_1_0(fh, {"descr": npy.dtype_to_descr(np.dtype(np.float64)), "fortran_order": False,
                                    "shape": tuple(int(n) for n in shape)})


def matrix(row_records: Iterable, embedder, out_path: str | os.PathLike, *, col_records: Iterable | None = None,
           metric: str = "wrd", pool: str = "none", top_k: int = 5, block_rows: int = 64,
           strict: bool = False, log: Log | None = None) -> Iterator[dict]:
    """All-pairs distances of one collection (``col_records=None``: rows x rows) or of queries x
    corpus, written to ``out_path`` as a ``.npy`` float64 matrix ``(n_rows, n_cols)``, plus one
    output object per row record with its ``top_k`` nearest columns
    (``{"neighbors": [{"index", "line", "text", "distance"}]}``; in the one-collection case a row is
    not its own neighbour).

    The file is written by :func:`nlptool.paths.atomic_output` like every output: the header, then
    each block of rows as it is computed, into a temporary file beside it that is renamed when the
    iterator is exhausted (closing the iterator early, or an error, leaves the old file as it was);
    a symlink is followed, a FIFO or device node is written through, never replaced.

    Values are exact and equal the pair mode's: WMD/WRD (``pool="none"``; ``metric`` ``both`` means
    WRD) or ``1 - cos`` of the mean vectors (``pool="mean"``). Memory: the columns' token vectors
    plus one block of ``block_rows`` rows (their token vectors and a ``(block_rows, n_cols)`` slice);
    the matrix itself is never held. Unreadable records and texts without token vectors get NaN rows
    / columns in the matrix and an ``error`` in their output object.

    Raises:
        UsageError: bad metric/pool/top_k/block size, an output path ending in something else than
            ``.npy`` (:func:`check_matrix_path`), a path :func:`nlptool.paths.check_output_path`
            refuses (a directory, a missing directory, an input).
        InputDataError: with ``strict``, at the first bad record.
    """
    from ..jsonl import output_record
    from ..paths import atomic_output, check_output_path

    log = log or (lambda s: None)
    check_options(metric, pool)
    if top_k < 1 or block_rows < 1:
        raise UsageError("the number of neighbours and the block size must be at least 1")
    out_path = check_matrix_path(out_path)
    check_output_path(out_path)
    m = "cos" if pool == "mean" else ("wrd" if metric == "both" else metric)
    rows = list(row_records)
    same = col_records is None
    cols = rows if same else list(col_records)
    if strict:
        for r in rows + ([] if same else cols):
            if r.error:
                raise InputDataError(r.error, r.source, r.line)
    col_texts = [("" if r.error else r.text) for r in cols]
    col_docs = _embed(embedder, col_texts)
    for r, d in zip(cols, col_docs):
        if r.error:
            d.tokens, d.vectors = [], np.zeros((0, 1))
    with atomic_output(out_path, "wb") as fh:
        _npy_header(fh, (len(rows), len(cols)))
        for s in range(0, len(rows), block_rows):
            block = rows[s:s + block_rows]
            docs = col_docs[s:s + block_rows] if same else _embed(embedder, [("" if r.error else r.text) for r in block])
            if not same:
                for r, d in zip(block, docs):
                    if r.error:
                        d.tokens, d.vectors = [], np.zeros((0, 1))
            vals = np.ascontiguousarray(distance_block(docs, col_docs, m), dtype=np.float64)
            fh.write(vals.tobytes())
            objs: list[dict] = []
            for k, (r, d) in enumerate(zip(block, docs)):
                if r.error:
                    objs.append(output_record(r))
                    continue
                why = d.empty_reason()
                if why:
                    if strict:
                        raise InputDataError(why, r.source, r.line)
                    objs.append(output_record(r, error=why))
                    continue
                row = vals[k].copy()
                if same:
                    row[s + k] = np.nan
                ok = np.flatnonzero(~np.isnan(row))
                order = ok[np.lexsort((ok, row[ok]))][:top_k]
                objs.append(output_record(r, {
                    "index": s + k,
                    "neighbors": [{"index": int(j), "line": cols[j].line, "text": cols[j].text,
                                   "distance": float(row[j])} for j in order]}))
            yield from objs
    log(f"matrix ({m}): {len(rows)} x {len(cols)} -> {out_path}")

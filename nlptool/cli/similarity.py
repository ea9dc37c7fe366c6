"""`nlptool similarity`: WMD / WRD between text pairs, or exact k-NN search over a corpus."""

from __future__ import annotations

from typing import Optional, Tuple

import typer

from . import app
from ._common import (
    BatchSizeOpt,
    DeviceOpt,
    InputFormatOpt,
    InputsArg,
    ModelOpt,
    OutputOpt,
    QuietOpt,
    StrictOpt,
    TextKeyOpt,
    boundary,
    info,
)

#: The default contextual layer(s), chosen on STS-B valid with the built-in model (README, section similarity).
DEFAULT_LAYER = "-1"


@app.command("similarity")
def similarity(
    inputs: list[str] = InputsArg,
    output: str = OutputOpt,
    input_format: str = InputFormatOpt,
    a_key: str = typer.Option("sentence1", "--a-key", help="Field of the first text (pair mode)."),
    b_key: str = typer.Option("sentence2", "--b-key", help="Field of the second text (pair mode)."),
    metric: str = typer.Option("both", "--metric", help="wmd|wrd|both (search mode: wmd or wrd; 'both' means wrd)."),
    model: str = ModelOpt,
    layer: str = typer.Option(DEFAULT_LAYER, "--layer", help="Hidden layer(s) of --model, comma-separated to average (0 = embeddings, -1 = last; e.g. 1,-1)."),
    vectors: Optional[str] = typer.Option(None, "--vectors", help="Static word2vec vectors (text or binary) instead of --model."),
    vectors_limit: Optional[int] = typer.Option(None, "--vectors-limit", help="Read only the first N words of --vectors."),
    weights: Optional[Tuple[str, str]] = typer.Option(None, "--weights", help="'idf FILE': IDF weights from a corpus (one document per line) or a token<TAB>idf table. Default with the built-in model: its shipped IDF table."),
    uniform: bool = typer.Option(False, "--uniform", help="No IDF: plain nBOW (WMD) / norm (WRD) weights, also for the built-in model."),
    whiten: Optional[str] = typer.Option(None, "--whiten", help="BERT-whitening of contextual vectors: a .npz saved by Whitening.save, or a text file (one sentence per line) to fit it on."),
    drop_punct: bool = typer.Option(False, "--drop-punct", help="Leave punctuation tokens out of the transport (they still give context)."),
    solver: str = typer.Option("emd", "--solver", help="emd (exact, ot.emd2) or sinkhorn (entropic, batched on the torch backend)."),
    reg: Optional[float] = typer.Option(None, "--reg", help="Entropic regularisation for --solver sinkhorn (cost units, e.g. 0.05)."),
    query: Optional[str] = typer.Option(None, "--query", help="Search mode: file of query texts."),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="Search mode: file of corpus texts."),
    top_k: int = typer.Option(5, "--top-k", help="Search mode: neighbours per query."),
    text_key: str = TextKeyOpt,
    device: str = DeviceOpt,
    batch_size: int = BatchSizeOpt,
    strict: bool = StrictOpt,
    quiet: bool = QuietOpt,
):
    """Word Mover's / Word Rotator's Distance of text pairs (JSONL or TSV), or exact k-NN search (--query/--corpus)."""
    with boundary():
        from ..errors import UsageError
        from ..io import JsonlWriter, map_records, read_records

        search = query is not None or corpus is not None
        if search and (query is None or corpus is None):
            raise UsageError("search mode needs both --query FILE and --corpus FILE")
        if search and inputs:
            raise UsageError("give either input files (pair mode) or --query/--corpus (search mode), not both")
        if metric not in ("wmd", "wrd", "both"):
            raise UsageError(f"--metric {metric}: expected wmd, wrd or both")
        if solver not in ("emd", "sinkhorn"):
            raise UsageError(f"--solver {solver}: expected emd or sinkhorn")
        if solver == "sinkhorn" and (reg is None or reg <= 0):
            raise UsageError("--solver sinkhorn needs --reg R with R > 0 (e.g. --reg 0.05)")
        if search and top_k < 1:
            raise UsageError("--top-k must be at least 1")
        if search and solver != "emd":
            raise UsageError("search mode is exact: it uses --solver emd")
        weights = tuple(weights) if weights and all(weights) else None
        if weights and weights[0] != "idf":
            raise UsageError(f"--weights {weights[0]}: the only weighting is 'idf FILE'")

        if weights and uniform:
            raise UsageError("--weights idf FILE and --uniform exclude each other")
        if vectors and (whiten or drop_punct):
            raise UsageError("--whiten and --drop-punct apply to contextual vectors (--model), not to --vectors")
        embedder, oov_stats = _make_embedder(model, layer, vectors, vectors_limit, weights, uniform, whiten,
                                             drop_punct, device, batch_size, quiet)

        if search:
            _search(query, corpus, text_key, input_format, "wmd" if metric == "wmd" else "wrd",
                    top_k, embedder, output, strict, quiet, oov_stats)
        else:
            from ..similarity import pair_distances

            metrics = ("wmd", "wrd") if metric == "both" else (metric,)
            sdev = "cpu"
            if solver == "sinkhorn":
                from ..models import resolve_device

                sdev = resolve_device(device)
            records = read_records(inputs, input_format=input_format, keys=[a_key, b_key], strict=strict)

            def batch(recs):
                docs = embedder.embed([r.texts[a_key] for r in recs] + [r.texts[b_key] for r in recs])
                da, db = docs[: len(recs)], docs[len(recs):]
                res = pair_distances(da, db, metrics=metrics, solver=solver, reg=reg, device=sdev)
                if oov_stats is not None:
                    for d in docs:
                        oov_stats.add(d)
                    for r, x, y in zip(res, da, db):
                        if isinstance(r, dict):
                            r["oov"] = len(x.oov) + len(y.oov)
                return res

            with JsonlWriter(output) as w:
                for obj in map_records(records, batch, strict=strict):
                    w.write(obj)
        if oov_stats is not None:
            info(oov_stats.summary(), quiet)


class _OovStats:
    def __init__(self):
        from collections import Counter

        self.words = Counter()
        self.total = 0
        self.texts = 0
        self.texts_with_oov = 0

    def add(self, doc) -> None:
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


def _model_kind(model: str) -> str:
    """``masked-lm`` for a local checkpoint saved with an MLM head (its base model is used, and
    loading it this way needs no newly initialised pooler), else ``encoder``."""
    import json
    import os

    from ..models import resolve_model_path

    path = resolve_model_path(model)
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as fh:
            archs = json.load(fh).get("architectures") or []
    except (OSError, ValueError):
        return "encoder"
    return "masked-lm" if any(a.endswith("ForMaskedLM") for a in archs) else "encoder"


def _make_embedder(model, layer, vectors, vectors_limit, weights, uniform, whiten, drop_punct, device,
                   batch_size, quiet):
    from ..similarity import ContextualEmbedder, StaticEmbedder, builtin_idf_path, load_idf, parse_layers

    if vectors:
        from ..vectors import load_word2vec

        wv = load_word2vec(vectors, limit=vectors_limit)
        info(f"vectors {vectors}: {len(wv)} words, dim {wv.dim}", quiet)
        if quiet:
            import logging

            logging.getLogger("jieba").setLevel(logging.WARNING)
        emb = StaticEmbedder(wv)
        stats = _OovStats()
    else:
        from ._common import load_for_cli

        layers = parse_layers(layer)
        loaded = load_for_cli(model, _model_kind(model), device, quiet)
        emb = ContextualEmbedder(loaded, layers=layers, batch_size=batch_size, drop_punct=drop_punct)
        stats = None
        if whiten:
            from ..similarity import load_whitening

            emb.whitening = load_whitening(whiten, emb)
            info(f"whitening from {whiten}: {emb.whitening.w.shape[0]} -> {emb.whitening.w.shape[1]} dimensions", quiet)
    idf_file = weights[1] if weights else None
    if idf_file is None and not uniform and not vectors:
        idf_file = builtin_idf_path(model)
    if idf_file:
        emb.idf, emb.idf_default = load_idf(idf_file, emb.split)
        info(f"IDF weights from {idf_file}: {len(emb.idf)} tokens", quiet)
    return emb, stats


def _search(query, corpus, text_key, input_format, metric, top_k, embedder, output, strict, quiet, oov_stats):
    from ..io import JsonlWriter, map_records, read_records
    from ..similarity import CorpusIndex, knn_search

    crecs = list(read_records([corpus], input_format=input_format, keys=[text_key], strict=strict))
    good = [r for r in crecs if not r.error]
    for r in crecs:
        if r.error:
            info(f"[yellow]corpus {r.error}; not searched[/]", quiet)
    cdocs = embedder.embed([r.text for r in good])
    if oov_stats is not None:
        for d in cdocs:
            oov_stats.add(d)
    index = CorpusIndex(cdocs, metric)
    empty = len(good) - len(index.valid)
    if empty:
        info(f"[yellow]{empty} corpus text(s) have no token vectors (empty or all OOV) and are never neighbours[/]", quiet)
    totals = {"queries": 0, "solves": 0, "candidates": 0}

    def batch(recs):
        qdocs = embedder.embed([r.text for r in recs])
        out = []
        for qd in qdocs:
            if oov_stats is not None:
                oov_stats.add(qd)
            why = qd.empty_reason()
            if why:
                out.append(ValueError(f"query: {why}"))
                continue
            res = knn_search(qd, index, top_k)
            totals["queries"] += 1
            totals["solves"] += res.exact_solves
            totals["candidates"] += res.candidates
            obj = {
                "neighbors": [
                    {"line": good[i].line, "text": good[i].text, "distance": d} for i, d in res.neighbors
                ],
                "exact_solves": res.exact_solves,
                "avoided": res.avoided,
            }
            if oov_stats is not None:
                obj["oov"] = len(qd.oov)
            out.append(obj)
        return out

    with JsonlWriter(output) as w:
        for obj in map_records(read_records([query], input_format=input_format, keys=[text_key], strict=strict),
                               batch, strict=strict, chunk_size=256):
            w.write(obj)
    c = totals["candidates"]
    avoided = c - totals["solves"]
    info(f"search ({metric}, top {top_k}): {totals['queries']} queries x {len(index.valid)} corpus texts; "
         f"{totals['solves']} exact solves, {avoided} of {c} avoided by WCD/RWMD pruning "
         f"({100.0 * avoided / c if c else 0.0:.1f}%)", quiet)

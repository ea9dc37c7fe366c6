"""`nlptool similarity`: WMD / WRD (or the mean-vector cosine) of text pairs, exact k-NN search over
a corpus, or an all-pairs matrix. Parse, load, call one function of :mod:`nlptool.similarity`, write."""

from __future__ import annotations

import enum
from typing import Optional

import typer

from . import app
from ._common import (
    BatchSizeOpt,
    DeviceOpt,
    InputFormatOpt,
    InputsArg,
    OutputOpt,
    QuietOpt,
    StrictOpt,
    TextKeyOpt,
    boundary,
    info,
)
from ._common import Engine, EngineOpt, GpusPerWorkerOpt, OutputDirOpt, ShardOpt, WorkersOpt

#: The default model: zh-bert-mini fine-tuned with CoSENT (docs/similarity.md).
DEFAULT_MODEL = "zh-sim-mini"
#: The default layer: the last one (the layer the fine-tuning trains).
DEFAULT_LAYER = -1


class Metric(str, enum.Enum):
    wmd = "wmd"
    wrd = "wrd"
    both = "both"


class Pool(str, enum.Enum):
    none = "none"
    mean = "mean"


class Solver(str, enum.Enum):
    emd = "emd"
    sinkhorn = "sinkhorn"


@app.command("similarity")
def similarity(
    inputs: list[str] = InputsArg,
    output: str = OutputOpt,
    input_format: str = InputFormatOpt,
    a_key: str = typer.Option("sentence1", "--a-key", help="Field of the first text (pair mode)."),
    b_key: str = typer.Option("sentence2", "--b-key", help="Field of the second text (pair mode); a JSON list of texts gives the distance to each reference and the minimum."),
    metric: Metric = typer.Option(Metric.both, "--metric", help="Transport distance (search/--matrix: 'both' means wrd)."),
    pool: Pool = typer.Option(Pool.none, "--pool", help="none: optimal transport between token vectors (WMD/WRD); mean: cosine of the (IDF-weighted) mean token vectors."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Built-in name (zh-sim-mini, zh-bert-mini, en-minilm), local model directory or Hugging Face hub id."),
    layer: int = typer.Option(DEFAULT_LAYER, "--layer", help="Hidden layer of --model (0 = embeddings, -1 = last)."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Several hidden layers to average, comma-separated (e.g. 1,-1); replaces --layer."),
    vectors: Optional[str] = typer.Option(None, "--vectors", help="Static word2vec vectors (text or binary) instead of --model."),
    vectors_limit: Optional[int] = typer.Option(None, "--vectors-limit", min=1, help="Read only the first N words of --vectors."),
    idf: Optional[str] = typer.Option(None, "--idf", help="IDF weights: a token<TAB>idf table or a corpus (one document per line). Default with a built-in model: its shipped table."),
    uniform: bool = typer.Option(False, "--uniform", help="No IDF: plain nBOW (WMD) / norm (WRD) weights and plain means, also for a built-in model."),
    whiten: Optional[str] = typer.Option(None, "--whiten", help="BERT-whitening of contextual vectors: a .npz saved by Whitening.save, or a text file (one sentence per line) to fit it on."),
    drop_punct: bool = typer.Option(False, "--drop-punct", help="Leave punctuation tokens out of the transport (they still give context)."),
    solver: Solver = typer.Option(Solver.emd, "--solver", help="emd: exact (ot.emd2); sinkhorn: entropic, batched on the torch backend (pair mode)."),
    reg: Optional[float] = typer.Option(None, "--reg", min=1e-9, help="Entropic regularisation for --solver sinkhorn (cost units, e.g. 0.05)."),
    query: Optional[str] = typer.Option(None, "--query", help="Search (or --matrix) mode: file of query texts."),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="Search (or --matrix) mode: file of corpus texts."),
    matrix: Optional[str] = typer.Option(None, "--matrix", help="All-pairs mode: write the distance matrix of one input file (or --query x --corpus) to this .npy file; -o gets the --top-k nearest per row."),
    top_k: int = typer.Option(5, "--top-k", min=1, help="Nearest neighbours kept per query / matrix row."),
    chunk_size: int = typer.Option(256, "--chunk-size", min=1, help="Records per chunk (pair and search mode) / matrix rows per block (bounds memory)."),
    text_key: str = TextKeyOpt,
    device: str = DeviceOpt,
    batch_size: int = BatchSizeOpt,
    strict: bool = StrictOpt,
    quiet: bool = QuietOpt,
    shard: Optional[str] = ShardOpt,
    engine: Engine = EngineOpt,
    workers: int = WorkersOpt,
    gpus_per_worker: float = GpusPerWorkerOpt,
    output_dir: Optional[str] = OutputDirOpt,
):
    """Word Mover's / Word Rotator's Distance (or mean cosine) of text pairs, exact k-NN search (--query/--corpus), or all pairs (--matrix)."""
    with boundary():
        from ..errors import UsageError
        from ..jsonl import JsonlWriter
        from ..records import check_stdin, read_records
        from ..similarity import load_embedder, model_kind, parse_layers

        search_mode = query is not None or corpus is not None
        if search_mode and (query is None or corpus is None):
            raise UsageError("search mode needs both --query FILE and --corpus FILE")
        if search_mode and inputs:
            raise UsageError("give either input files or --query/--corpus, not both")
        if solver is Solver.sinkhorn and reg is None:
            raise UsageError("--solver sinkhorn needs --reg R with R > 0 (e.g. --reg 0.05)")
        if solver is Solver.sinkhorn and (search_mode or matrix):
            raise UsageError("search and --matrix are exact: they use --solver emd")
        if search_mode and not matrix and pool is Pool.mean:
            raise UsageError("search mode transports token vectors; use --matrix with --pool mean for cosine neighbours")
        if idf and uniform:
            raise UsageError("--idf FILE and --uniform exclude each other")
        if vectors and (whiten or drop_punct):
            raise UsageError("--whiten and --drop-punct apply to contextual vectors (--model), not to --vectors")
        for path in (query, corpus, idf, whiten, vectors):
            if path is not None:
                check_stdin([path])
        check_stdin(inputs)
        layer_list = parse_layers(layers) if layers else (layer,)
        if engine is Engine.ray or output_dir:  # scale-out (docs/scale-out.md): pair mode on a Ray actor pool
            if search_mode or matrix:
                raise UsageError("--engine ray runs pair mode; search and --matrix run locally")
            from ..ray_engine import run_cli
            from ..workers import Similarity

            return run_cli(Similarity(model=model, metric=metric.value, pool=pool.value, layers=layer_list,
                                      vectors=vectors, vectors_limit=vectors_limit, idf=idf, uniform=uniform,
                                      whiten=whiten, drop_punct=drop_punct, solver=solver.value, reg=reg, device=device,
                                      batch_size=batch_size, a_key=a_key, b_key=b_key),
                           read_records(inputs, input_format=input_format, keys=[a_key, b_key], list_keys=[b_key],
                                        strict=strict, shard=shard),
                           inputs, output, output_dir, workers=workers, gpus_per_worker=gpus_per_worker,
                           chunk_size=chunk_size, strict=strict, input_format=input_format, keys=[a_key, b_key],
                           shard=shard, list_keys=[b_key])

        loaded = None
        if not vectors:
            from ._common import load_for_cli

            loaded = load_for_cli(model, model_kind(model), device, quiet)
        embedder = load_embedder(loaded, vectors=vectors, vectors_limit=vectors_limit, layers=layer_list, idf=idf,
                                 uniform=uniform, whiten=whiten, drop_punct=drop_punct, batch_size=batch_size,
                                 log=lambda s: info(s, quiet))
        log = lambda s: info(s, quiet)  # noqa: E731
        fmt = input_format
        if matrix:
            from ..similarity import matrix as run_matrix

            rows = read_records([query] if search_mode else inputs, input_format=fmt, keys=[text_key], shard=shard)
            cols = read_records([corpus], input_format=fmt, keys=[text_key]) if search_mode else None
            results = run_matrix(rows, embedder, matrix, col_records=cols, metric=metric.value, pool=pool.value,
                                 top_k=top_k, block_rows=chunk_size, strict=strict, log=log)
        elif search_mode:
            from ..similarity import search

            results = search(read_records([query], input_format=fmt, keys=[text_key], strict=strict, shard=shard),
                             read_records([corpus], input_format=fmt, keys=[text_key]), embedder,
                             metric="wmd" if metric is Metric.wmd else "wrd", top_k=top_k, strict=strict,
                             chunk_size=chunk_size, log=log)
        else:
            from ..models import resolve_device
            from ..similarity import pairs

            records = read_records(inputs, input_format=fmt, keys=[a_key, b_key], list_keys=[b_key], strict=strict,
                                   shard=shard)
            results = pairs(records, embedder, a_key=a_key, b_key=b_key, metric=metric.value, pool=pool.value,
                            solver=solver.value, reg=reg, device=resolve_device(device) if solver is Solver.sinkhorn else "cpu",
                            chunk_size=chunk_size, strict=strict)
        with JsonlWriter(output) as w:
            for obj in results:
                w.write(obj)
        if getattr(embedder, "oov_stats", None) is not None:
            info(embedder.oov_stats.summary(), quiet)

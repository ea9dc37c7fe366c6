"""`nlptool similarity`: WMD / WRD (or the mean-vector cosine) of text pairs, exact k-NN search over
a corpus, or an all-pairs matrix. Parse, build one :class:`nlptool.similarity.Similarity` (its
defaults, rules and modes), run the mode it selects."""

from __future__ import annotations

from typing import Optional

import typer

from ..similarity.command import CHAR_WEIGHT, DEFAULT_CHUNK_SIZE, DEFAULT_LAYER, DEFAULT_MODEL
from . import app
from .console import info
from .options import (ThreadsOpt, BatchSizeOpt, DeviceOpt, Engine, EngineOpt, GpusPerWorkerOpt, InputFileOpt, InputFormatOpt,
                      InputsArg, ModelOpt, OutputDirOpt, OutputFileOpt, OutputOpt, QuietOpt, ShardOpt, StrictOpt,
                      TextKeyOpt, WorkersOpt, choices)
from .run import apply_threads, quiet_libraries, run_record_command, write_results


Metric = choices("Metric", ("wmd", "wrd", "both"))
Pool = choices("Pool", ("none", "mean"))
Solver = choices("Solver", ("emd", "sinkhorn"))


@app.command("similarity")
def similarity(
    inputs: list[str] = InputsArg,
    output: str = OutputOpt,
    input_format: str = InputFormatOpt,
    a_key: str = typer.Option("sentence1", "--a-key", help="Field of the first text (pair mode)."),
    b_key: str = typer.Option("sentence2", "--b-key", help="Field of the second text (pair mode); a JSON list of texts gives the distance to each reference and the minimum."),
    metric: Metric = typer.Option(Metric.both, "--metric", help="Transport distance (search/--matrix: 'both' means wrd)."),
    pool: Pool = typer.Option(Pool.none, "--pool", help="none: optimal transport between token vectors (WMD/WRD); mean: cosine of the (IDF-weighted) mean token vectors only."),
    char_weight: float = typer.Option(CHAR_WEIGHT, "--char-weight", min=0.0, max=1.0, help="Pair mode: weight of the character-set Jaccard in the score 'similarity' = (1 - W) cos + W Jaccard (0 = the cosine alone)."),
    model: str = ModelOpt(DEFAULT_MODEL, help="Built-in name (zh-sim-mini, zh-bert-mini, en-minilm), local model directory or Hugging Face hub id."),
    layer: int = typer.Option(DEFAULT_LAYER, "--layer", help="Hidden layer of --model (0 = embeddings, -1 = last)."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Several hidden layers to average, comma-separated (e.g. 1,-1); replaces --layer."),
    vectors: Optional[str] = InputFileOpt(None, "--vectors", help="Static word2vec vectors (text or binary) instead of --model."),
    vectors_limit: Optional[int] = typer.Option(None, "--vectors-limit", min=1, help="Read only the first N words of --vectors."),
    idf: Optional[str] = InputFileOpt(None, "--idf", help="IDF weights: a token<TAB>idf table or a corpus (one document per line). Default with a built-in model: its shipped table."),
    uniform: bool = typer.Option(False, "--uniform", help="No IDF: plain nBOW (WMD) / norm (WRD) weights and plain means, also for a built-in model."),
    whiten: Optional[str] = InputFileOpt(None, "--whiten", help="BERT-whitening of contextual vectors: a .npz saved by Whitening.save, or a text file (one sentence per line) to fit it on."),
    drop_punct: bool = typer.Option(False, "--drop-punct", help="Leave punctuation tokens out of the transport (they still give context)."),
    solver: Solver = typer.Option(Solver.emd, "--solver", help="emd: exact (ot.emd2); sinkhorn: entropic, batched on the torch backend (pair mode)."),
    reg: Optional[float] = typer.Option(None, "--reg", min=1e-9, help="Entropic regularisation for --solver sinkhorn (cost units, e.g. 0.05)."),
    query: Optional[str] = InputFileOpt(None, "--query", help="Search (or --matrix) mode: file of query texts."),
    corpus: Optional[str] = InputFileOpt(None, "--corpus", help="Search (or --matrix) mode: file of corpus texts."),
    matrix: Optional[str] = OutputFileOpt(None, "--matrix", help="All-pairs mode: write the distance matrix of one input file (or --query x --corpus) to this .npy file; -o gets the --top-k nearest per row."),
    top_k: int = typer.Option(5, "--top-k", min=1, help="Nearest neighbours kept per query / matrix row."),
    chunk_size: int = typer.Option(DEFAULT_CHUNK_SIZE, "--chunk-size", min=1, help="Records per chunk (pair and search mode) / matrix rows per block (bounds memory)."),
    text_key: str = TextKeyOpt,
    device: str = DeviceOpt,
    batch_size: int = BatchSizeOpt,
    strict: bool = StrictOpt,
    quiet: bool = QuietOpt,
    threads: Optional[int] = ThreadsOpt(),
    shard: Optional[str] = ShardOpt,
    engine: Engine = EngineOpt,
    workers: int = WorkersOpt,
    gpus_per_worker: float = GpusPerWorkerOpt,
    output_dir: Optional[str] = OutputDirOpt,
):
    """Word Mover's / Word Rotator's Distance (or mean cosine) of text pairs, exact k-NN search (--query/--corpus), or all pairs (--matrix)."""
    from ..similarity import Similarity

    sim = Similarity(model=model, metric=metric.value, pool=pool.value, layer=layer, layers=layers, vectors=vectors,
                     vectors_limit=vectors_limit, idf=idf, uniform=uniform, whiten=whiten, drop_punct=drop_punct,
                     solver=solver.value, reg=reg, device=device, batch_size=batch_size, a_key=a_key, b_key=b_key,
                     text_key=text_key, top_k=top_k, char_weight=char_weight)
    mode = sim.select_mode(inputs, query=query, corpus=corpus, matrix=matrix, engine=engine, output_dir=output_dir)
    if mode == "pairs":  # the record engine: local or --engine ray
        return run_record_command(sim, inputs, output=output, input_format=input_format, strict=strict,
                                  shard=shard, chunk_size=chunk_size, quiet=quiet, engine=engine, workers=workers,
                                  gpus_per_worker=gpus_per_worker, output_dir=output_dir, name="similarity")
    quiet_libraries(quiet)  # before the model loads (search and --matrix load it outside the engine)
    apply_threads(sim)
    log = lambda s: info(s, quiet)  # noqa: E731
    if mode == "search":
        objs = sim.search(sim.read_texts([query], input_format=input_format, strict=strict, shard=shard),
                          sim.read_texts([corpus], input_format=input_format), strict=strict,
                          chunk_size=chunk_size, log=log)
    else:
        objs = sim.matrix(sim.read_texts([query] if query else inputs, input_format=input_format, shard=shard),
                          matrix, sim.read_texts([corpus], input_format=input_format) if corpus else None,
                          strict=strict, block_rows=chunk_size, log=log)
    write_results(sim, objs, output, quiet)

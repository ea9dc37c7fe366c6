"""``nlptool tokenize-sample``: exact Viterbi sampling (FFBS) of unigram-LM segmentations, n-best
decoding, sampling without replacement, entropy and boundary marginals."""

from __future__ import annotations

from typing import Optional

import typer

from . import app
from .options import (ChunkSizeOpt, Engine, EngineOpt, GpusPerWorkerOpt, InputFileOpt, InputFormatOpt, InputsArg,
                      OutputDirOpt, OutputOpt, QuietOpt, SeedOpt, ShardOpt, StrictOpt, TextKeyOpt, WorkersOpt, choices)
from .run import run_record_command


Method = choices("Method", ("ffbs", "su2023"))
Format = choices("Format", ("jsonl", "text"))


@app.command("tokenize-sample")
def tokenize_sample(
    inputs: list[str] = InputsArg,
    alpha: str = typer.Option("0.1", "--alpha", "-a", help="Temperature on log-probabilities: P(seg)^alpha / Z. 0 = uniform over segmentations, 'inf' = Viterbi decoding (the best path)."),
    num_samples: int = typer.Option(1, "--num-samples", "-k", min=1, help="Segmentations drawn per text (K > 1 writes \"samples\")."),
    without_replacement: bool = typer.Option(False, "--without-replacement", help="The K samples are distinct: sequential sampling without replacement (Gumbel-top-k law)."),
    nbest: Optional[int] = typer.Option(None, "--nbest", min=1, help="Write the K most probable segmentations with their log-probabilities (\"nbest\", best first) instead of sampling.", show_default=False),
    entropy: bool = typer.Option(False, "--entropy", help="Add the exact entropy (nats) of P(seg)^alpha / Z (\"entropy\")."),
    marginals: bool = typer.Option(False, "--marginals", help="Add the exact probability of a token boundary after each character (\"marginals\", n-1 numbers)."),
    ids: bool = typer.Option(False, "--ids", help="Add the token ids (\"ids\"; needs --sp-model)."),
    seed: Optional[int] = SeedOpt(None, help="Random seed (reproducible samples).", show_default=False),
    method: Method = typer.Option(Method.ffbs, "--method", help="ffbs (exact) or su2023 (the first, BIASED rule of Su's 2023-09-16 post; for reproducing it only)."),
    dict_path: Optional[str] = InputFileOpt(None, "--dict", help="A jieba-format dictionary (one 'word count' per line, an optional tag after). Default: jieba's dict.txt.", show_default=False),
    sp_model: Optional[str] = InputFileOpt(None, "--sp-model", help="A SentencePiece UNIGRAM .model file.", show_default=False),
    bytepiece_model: Optional[str] = InputFileOpt(None, "--bytepiece-model", help="A BytePiece JSON model (byte-level).", show_default=False),
    fmt: Format = typer.Option(Format.jsonl, "--format", help="jsonl (tokens + logp) or text (tokens separated by spaces; K samples or n-best separated by tabs)."),
    output: str = OutputOpt,
    input_format: str = InputFormatOpt,
    text_key: str = TextKeyOpt,
    chunk_size: int = ChunkSizeOpt,
    strict: bool = StrictOpt,
    quiet: bool = QuietOpt,
    shard: Optional[str] = ShardOpt,
    engine: Engine = EngineOpt,
    workers: int = WorkersOpt,
    gpus_per_worker: float = GpusPerWorkerOpt,
    output_dir: Optional[str] = OutputDirOpt,
):
    """Sample segmentations from a unigram LM lattice exactly (P(seg)^alpha / Z), or decode with --alpha inf."""
    from ..tokenize_sample import Sampler

    sampler = Sampler(alpha=alpha, num_samples=num_samples, without_replacement=without_replacement, nbest=nbest,
                      entropy=entropy, marginals=marginals, ids=ids, seed=seed, method=method.value,
                      dict_path=dict_path, sp_model=sp_model, bytepiece_model=bytepiece_model, text_key=text_key)
    run_record_command(sampler, inputs, output=output, input_format=input_format, strict=strict, shard=shard,
                       chunk_size=chunk_size, fmt=fmt.value, quiet=quiet, engine=engine, workers=workers,
                       gpus_per_worker=gpus_per_worker, output_dir=output_dir, name="tokenize-sample")

"""``nlptool tokenize-sample``: exact Viterbi sampling (FFBS) of unigram-LM segmentations."""

from __future__ import annotations

from typing import Optional

import typer

from . import app
from ._common import InputFormatOpt, InputsArg, OutputOpt, QuietOpt, StrictOpt, TextKeyOpt, boundary, info


@app.command("tokenize-sample")
def tokenize_sample(
    inputs: list[str] = InputsArg,
    alpha: str = typer.Option("0.1", "--alpha", "-a", help="Temperature on log-probabilities: P(seg)^alpha / Z. 0 = uniform over segmentations, 'inf' = Viterbi decoding (the best path)."),
    num_samples: int = typer.Option(1, "--num-samples", "-k", help="Segmentations drawn per text (K > 1 writes \"samples\")."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (reproducible samples).", show_default=False),
    method: str = typer.Option("ffbs", "--method", help="ffbs (exact) or su2023 (the first, BIASED rule of Su's 2023-09-16 post; for reproducing it only)."),
    dict_path: Optional[str] = typer.Option(None, "--dict", help="A jieba-format dictionary (one 'word count' per line, an optional tag after). Default: jieba's dict.txt.", show_default=False),
    sp_model: Optional[str] = typer.Option(None, "--sp-model", help="A SentencePiece UNIGRAM .model file.", show_default=False),
    bytepiece_model: Optional[str] = typer.Option(None, "--bytepiece-model", help="A BytePiece JSON model (byte-level).", show_default=False),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl (tokens + logp) or text (tokens separated by spaces; K samples separated by tabs)."),
    output: str = OutputOpt,
    input_format: str = InputFormatOpt,
    text_key: str = TextKeyOpt,
    strict: bool = StrictOpt,
    quiet: bool = QuietOpt,
):
    """Sample segmentations from a unigram LM lattice exactly (P(seg)^alpha / Z), or decode with --alpha inf."""
    with boundary():
        import random

        from ..errors import UsageError
        from ..io import JsonlWriter, map_records, read_records
        from ..unigram import check_alpha, load_model, piece_to_str

        a = check_alpha(alpha)
        if fmt not in ("jsonl", "text"):
            raise UsageError(f"--format {fmt}: expected jsonl or text")
        if num_samples < 1:
            raise UsageError(f"--num-samples {num_samples}: must be at least 1")
        if method not in ("ffbs", "su2023"):
            raise UsageError(f"--method {method}: expected ffbs or su2023")
        records = read_records(inputs, input_format=input_format, keys=[text_key], strict=strict)
        model = load_model(dict_path, sp_model, bytepiece_model)
        info(f"unigram LM: {model.kind} {model.name} ({len(model)} pieces); alpha={a:g}, method={method}", quiet)
        if method == "su2023":
            info("warning: --method su2023 is biased (it does not sample P(seg)^alpha / Z); use ffbs for exact sampling",
                 quiet)
        rng = random.Random(seed)

        def batch(recs):
            out = []
            for r in recs:
                segs = model.sample(r.text, a, num_samples=num_samples, rng=rng, method=method)
                toks = [[piece_to_str(t) for t in s.tokens] for s in segs]
                if num_samples == 1:
                    out.append({"tokens": toks[0], "logp": round(segs[0].logp, 6)})
                else:
                    out.append({"samples": toks, "logp": [round(s.logp, 6) for s in segs]})
            return out

        with JsonlWriter(output) as w:
            for obj in map_records(records, batch, strict=strict):
                if fmt == "jsonl":
                    w.write(obj)
                elif "error" in obj:
                    info(f"[yellow]skipped:[/] {obj['error']}", quiet)
                    w.write_line("")
                elif "tokens" in obj:
                    w.write_line(" ".join(obj["tokens"]))
                else:
                    w.write_line("\t".join(" ".join(s) for s in obj["samples"]))

"""``nlptool split-valid``: a validation split that resembles the test set (adversarial validation)."""

from __future__ import annotations

from typing import Optional

import typer

from . import app
from .console import console, info
from .options import (ThreadsOpt, DeviceOpt, InputFileOpt, InputFormatOpt, ModelOpt, OutputFileOpt, QuietOpt, SeedOpt, StrictOpt,
                      TextKeyOpt, choices, finite_float)
from .run import load_for_cli, quiet_jieba


Features = choices("Features", ("tfidf", "model"))


@app.command("split-valid")
def split_valid(
    train: str = InputFileOpt(..., "--train", help="Training file (text lines or JSONL; '-' = stdin)."),
    test: str = InputFileOpt(..., "--test", help="Test inputs (text lines or JSONL; labels not needed)."),
    out_train: str | None = OutputFileOpt(None, "--out-train", help="Write the training rows not chosen for validation here."),
    out_valid: str | None = OutputFileOpt(None, "--out-valid", help="Write the most test-like training rows here (written together with --out-train: both or neither)."),
    valid_size: str = typer.Option("0.1", "--valid-size", help="Validation size: a fraction (0.1) or a row count (500)."),
    weights: str | None = OutputFileOpt(
        None, "--weights", help="Instead (or as well): write every training row as JSONL with its importance weight w = D/(1-D), mean 1."
    ),
    max_weight: float = typer.Option(10.0, "--max-weight", parser=finite_float(1.0, lo_open=True), help="Cap on a normalised importance weight (> 1)."),
    features: Features = typer.Option(Features.tfidf, "--features", help="tfidf (jieba words + char n-grams) or model (mean-pooled --model vectors)."),
    model: str = ModelOpt("zh-bert-mini", help="Encoder for --features model: built-in name, local directory or hub id."),
    device: str = DeviceOpt,
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Sequences per forward pass (--features model)."),
    folds: int = typer.Option(5, "--folds", min=2, help="Stratified folds for the out-of-fold p(test|x)."),
    C: float = typer.Option(4.0, "--C", parser=finite_float(0.0, lo_open=True), help="Inverse L2 regularisation of the logistic regression (> 0)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Bootstrap replicates for the AUC's 95% interval (0 = none)."),
    seed: int = SeedOpt(0, help="Seed of the folds and the bootstrap."),
    report: str | None = OutputFileOpt(None, "--report", help="Write the JSON report here ('-' = stdout)."),
    input_format: str = InputFormatOpt,
    text_key: str = TextKeyOpt,
    strict: bool = StrictOpt,
    quiet: bool = QuietOpt,
    threads: Optional[int] = ThreadsOpt(),
):
    """Split the training set so the validation part resembles the test set (adversarial validation).

    Every output is written whole or not at all, and all of them together: a failure leaves every
    old output file as it was.
    """
    import contextlib

    from ..jsonl import JsonlWriter, output_record
    from ..paths import atomic_output, validate_paths
    from ..records import read_records
    from ..split_valid.adversarial import check_outputs, write_split
    from ..split_valid.adversarial import split_valid as run_split_valid

    features = Features(features).value
    split = check_outputs(train=train, test=test, out_train=out_train, out_valid=out_valid, weights=weights)
    outputs = [o for o in (out_train, out_valid, weights, report) if o]
    validate_paths([train, test], outputs)

    keys = [text_key]
    train_recs = list(read_records([train], input_format=input_format, keys=keys, strict=strict, keep_raw=True))
    test_recs = list(read_records([test], input_format=input_format, keys=keys, strict=strict))
    loaded = None
    if features == "model":
        def loaded():  # loaded by the library after its cheap checks (sizes, --valid-size)
            return load_for_cli(model, "encoder", device, quiet)
    else:
        quiet_jieba()
    settings = {"features": features, "model": model if features == "model" else None, "folds": folds,
                "C": C, "seed": seed, "bootstrap": bootstrap, "valid_size": valid_size if split else None,
                "train": train, "test": test}
    result = run_split_valid(
        train_recs, test_recs, valid_size=valid_size if split else None, weights=bool(weights),
        max_weight=max_weight, features=features, loaded=loaded, batch_size=batch_size, folds=folds, C=C,
        bootstrap=bootstrap, seed=seed, settings=settings, on_stage=lambda s: info(s, quiet),
    )
    n_err, first = result.train_unreadable
    if n_err:
        info(f"[yellow]warning:[/] {n_err} training line(s) could not be read (first: {first}); "
             "they stay in the training output, unscored", quiet)
    n_err, first = result.test_unreadable
    if n_err:
        info(f"[yellow]warning:[/] {n_err} test line(s) could not be read and are ignored (first: {first})", quiet)
    rep, valid_rec, p_rec = result.report, result.valid, result.p_test
    # every output opened first, all renamed into place together at the end (or none)
    with contextlib.ExitStack() as stack:
        if split:
            write_split([r.raw for r in train_recs], valid_rec, out_train, out_valid, stack, inputs=[train, test])
        if weights:
            w_rec = result.weights
            fh = stack.enter_context(JsonlWriter(weights))
            for i, r in enumerate(train_recs):
                if r.error:
                    fh.write(output_record(r))
                else:
                    fh.write(output_record(r, {"weight": round(float(w_rec[i]), 6), "p_test": round(p_rec[i], 6)}))
        if report:
            rfh = stack.enter_context(atomic_output(report, "w"))
            rfh.write(safe_report(rep))
    if not quiet:
        _summary(rep)


def safe_report(rep: dict) -> str:
    """The report as indented JSON that never holds NaN/Infinity (they become null)."""
    import json
    import math

    def clean(o):
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o

    return json.dumps(clean(rep), ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def _summary(rep: dict) -> None:
    s = rep["sizes"]
    lo, hi = rep["auc_ci95"]
    ci = f" (95% CI {lo:.3f}-{hi:.3f})" if lo is not None else ""
    lines = [
        f"sizes: train {s['train_scored']:,} rows scored ({s['train_unreadable']} unreadable), "
        f"test {s['test_scored']:,} rows ({s['test_unreadable']} unreadable)"
        + (f"; {s['train_rows_also_in_test']:,} training rows also occur in test" if s["train_rows_also_in_test"] else ""),
        (f"adversarial AUC {rep['auc']:.3f}{ci}, out-of-fold ({rep['settings']['folds']} folds); "
         f"in-sample {rep['auc_in_sample']:.3f}; drift score {rep['drift_score']:.3f}"),
        f"verdict: {rep['verdict']}",
    ]
    pm = rep["p_test_mean"]
    if "valid" in pm:
        lines.append(f"split: {s['valid']:,} validation rows, {s['out_train']:,} training rows; "
                     f"mean p(test) valid {pm['valid']:.3f} vs rest {pm['rest']:.3f} (test rows {pm['test']:.3f})")
    if "weights" in rep:
        wt = rep["weights"]
        lines.append(f"weights: min {wt['min']:.3f}, max {wt['max']:.3f}, {wt['n_capped']} capped at "
                     f"{wt['max_weight']}, effective sample size {wt['effective_sample_size']:,.0f}")
    tf = rep["top_features"]
    lines.append("test-indicative: " + " ".join(f for f, _ in tf["test"][:15]))
    lines.append("train-indicative: " + " ".join(f for f, _ in tf["train"][:15]))
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True, markup=False)

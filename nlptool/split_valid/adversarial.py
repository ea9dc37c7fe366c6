"""Adversarial validation: a validation split that resembles the test set.

Source: Su Jianlin, "如何划分一个跟测试集更接近的验证集？" (kexue.fm, 2020-10-16). When the test
*inputs* are available (not their labels), train a discriminator ``D(x) ≈ p(test | x)`` between the
training inputs (label 0) and the test inputs (label 1). The training rows that look most like test
rows become the validation set; alternatively every training row is weighted by ``D / (1 − D)``,
which estimates the density ratio ``p_test(x) / p_train(x)`` (importance weighting).

Practice followed here (FastML "Adversarial validation", Kaggle, deepchecks, evidently):

* the discriminator's ROC AUC diagnoses the shift: ≈ 0.5 means the two sets cannot be told apart
  (a random split is as good); deepchecks' *drift score* is ``max(2·AUC − 1, 0)`` in ``[0, 1]``;
* ``p(test | x)`` of a training row must come from a model that did not see that row: it is an
  **out-of-fold** probability from stratified K-fold cross-validation (an in-sample probability of
  a flexible model says more about memorisation than about shift).

Features are TF-IDF over jieba words plus character 1–2-grams (Chinese and English alike) or
mean-pooled vectors of a transformer encoder; the classifier is logistic regression with balanced
class weights, so ``D`` is estimated as if both sets had the same size (the prior ``n_test/n_train``
is removed; ``D/(1−D)`` is then the density ratio itself, up to the model's error). Everything but
:func:`fast_auc`/:func:`bootstrap_auc_ci` uses scikit-learn.

Library code: raises :mod:`nlptool.errors`, never prints or exits.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import NlptoolError, UsageError

#: Verdict thresholds on the out-of-fold AUC (upper bounds, the last one open).
VERDICTS = (
    (0.55, "none", "no detectable shift: train and test look alike; a random validation split is as good"),
    (0.65, "mild", "mild shift: the test-like validation split differs a little from a random one"),
    (0.80, "moderate", "moderate shift: prefer the test-like validation split over a random one"),
    (2.00, "strong", "strong shift: train and test are easy to tell apart; validate on the test-like split"),
)


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------


def _jieba_words(text: str) -> list[str]:
    from ..text import jieba_words

    return jieba_words(text.lower())


def tfidf_features(texts: Sequence[str], *, char_ngrams: tuple[int, int] = (1, 2), min_df: int | None = None,
                   max_features: int | None = 500_000):
    """TF-IDF over jieba words plus TF-IDF over character n-grams, side by side.

    Each block is sublinear-tf, L2-normalised per row (so a row's norm is √2 unless a block is empty).
    The vocabulary and IDF are fitted on all ``texts`` (train and test together): this uses no
    label, so the out-of-fold probabilities stay honest.

    Args:
        texts: n strings (train rows then test rows).
        char_ngrams: range of character n-gram lengths.
        min_df: minimum document frequency of a feature; default 2 (1 below 20 texts).
        max_features: cap per block (most frequent kept); ``None`` = no cap.

    Returns:
        ``(X, names)``: a ``(n, n_features)`` CSR matrix and the feature names, ``w:<word>`` for
        words and ``c:<chars>`` for character n-grams.

    Raises:
        NlptoolError: no feature at all (every text empty or whitespace).
    """
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer

    if min_df is None:
        min_df = 2 if len(texts) >= 20 else 1
    blocks, names = [], []
    word_vec = TfidfVectorizer(tokenizer=_jieba_words, token_pattern=None, lowercase=False, min_df=min_df,
                               sublinear_tf=True, max_features=max_features, dtype=np.float32)
    char_vec = TfidfVectorizer(analyzer="char", ngram_range=char_ngrams, lowercase=True, min_df=min_df,
                               sublinear_tf=True, max_features=max_features, dtype=np.float32)
    for prefix, vec in (("w:", word_vec), ("c:", char_vec)):
        try:
            blocks.append(vec.fit_transform(texts))
        except ValueError:  # empty vocabulary
            continue
        names.extend(prefix + f for f in vec.get_feature_names_out())
    if not blocks:
        raise NlptoolError("no features: every text is empty (check the text field and the input files)")
    return sp.hstack(blocks, format="csr"), names


def model_features(texts: Sequence[str], loaded, *, batch_size: int = 64, on_batch=None) -> np.ndarray:
    """Mean-pooled last hidden states of an encoder (padding excluded).

    Texts are sorted by length, run in batches under :func:`torch.inference_mode`, truncated to the
    model's window, and returned in input order.

    Args:
        texts: n strings.
        loaded: a :class:`nlptool.models.LoadedModel` (``kind="encoder"`` or ``"masked-lm"``).
        batch_size: sequences per forward pass.
        on_batch: called with the number of texts after each batch (progress).

    Returns:
        ``(n, hidden)`` float32 array.
    """
    import torch

    n = len(texts)
    from ..batching import length_order

    order = length_order([len(t) for t in texts])
    out: np.ndarray | None = None
    tok, net, dev = loaded.tokenizer, loaded.model, loaded.device
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=loaded.max_length,
                      return_tensors="pt")
            enc = {k: v.to(dev) for k, v in enc.items()}
            res = net(**enc, output_hidden_states=True)
            hidden = getattr(res, "last_hidden_state", None)
            if hidden is None:
                hidden = res.hidden_states[-1]
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            pooled = pooled.float().cpu().numpy()
            if out is None:
                out = np.zeros((n, pooled.shape[1]), dtype=np.float32)
            out[idx] = pooled
            if on_batch:
                on_batch(len(idx))
    if out is None:
        raise NlptoolError("no texts to encode")
    return out


# --------------------------------------------------------------------------------------------
# Discriminator, out-of-fold probabilities, AUC
# --------------------------------------------------------------------------------------------


def make_discriminator(dense: bool, C: float = 4.0, seed: int = 0):
    """Logistic regression with balanced class weights (a pipeline with standardisation for dense
    vectors; liblinear for sparse TF-IDF)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if dense:
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=2000,
                                                                  random_state=seed))
    return LogisticRegression(C=C, class_weight="balanced", solver="liblinear", max_iter=1000, random_state=seed)


def out_of_fold_proba(X, y: np.ndarray, *, folds: int = 5, seed: int = 0, C: float = 4.0, on_fold=None) -> np.ndarray:
    """Out-of-fold ``p(y=1 | x)`` for every row: stratified K-fold, each row scored by the model
    trained on the other K−1 folds.

    Args:
        X: ``(n, d)`` features (sparse or dense).
        y: ``(n,)`` 0/1 labels (0 = train row, 1 = test row).
        folds: K ≥ 2; each class needs at least K rows.
        on_fold: called with the fold number (1-based) after each fold.

    Returns:
        ``(n,)`` float64 probabilities in ``[0, 1]``.
    """
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    dense = not hasattr(X, "tocsr")
    base = make_discriminator(dense, C=C, seed=seed)
    p = np.full(len(y), np.nan)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (tr, te) in enumerate(skf.split(np.zeros(len(y)), y), start=1):
        clf = clone(base).fit(X[tr], y[tr])
        p[te] = clf.predict_proba(X[te])[:, 1]
        if on_fold:
            on_fold(k)
    return p


def fast_auc(y: np.ndarray, score: np.ndarray, weights: np.ndarray | None = None) -> float:
    """ROC AUC (Mann–Whitney, ties count ½), optionally with per-row weights (bootstrap counts).

    ``AUC = Σ_pos Σ_neg w_i w_j [s_i > s_j] + ½[s_i = s_j]  /  (W_pos · W_neg)``, O(n log n).
    Equals :func:`sklearn.metrics.roc_auc_score` for unit weights. NaN when a class has no weight.
    """
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    uniq, inv = np.unique(score, return_inverse=True)
    return _auc_from_groups(inv, len(uniq), y, w)


def _auc_from_groups(inv: np.ndarray, n_groups: int, y: np.ndarray, w: np.ndarray) -> float:
    wp = np.bincount(inv[y], weights=w[y], minlength=n_groups)
    wn = np.bincount(inv[~y], weights=w[~y], minlength=n_groups)
    tp, tn = wp.sum(), wn.sum()
    if tp <= 0 or tn <= 0:
        return float("nan")
    below = np.cumsum(wn) - wn
    return float((wp * (below + 0.5 * wn)).sum() / (tp * tn))


def bootstrap_auc_ci(y: np.ndarray, score: np.ndarray, *, n_boot: int = 1000, level: float = 0.95,
                     seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUC, resampling rows with replacement within each class
    (class sizes fixed). The scores are held fixed (the discriminator is not refitted), so the
    interval reflects sampling noise of the evaluation, not of training.

    Returns:
        ``(low, high)``; ``(nan, nan)`` when ``n_boot`` is 0 or a class is empty.
    """
    y = np.asarray(y).astype(bool)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    if n_boot <= 0 or len(pos) == 0 or len(neg) == 0:
        return float("nan"), float("nan")
    uniq, inv = np.unique(np.asarray(score, dtype=np.float64), return_inverse=True)
    rng = np.random.default_rng(seed)
    n = len(y)
    aucs = np.empty(n_boot)
    for b in range(n_boot):
        w = np.bincount(rng.choice(pos, len(pos)), minlength=n) + np.bincount(rng.choice(neg, len(neg)), minlength=n)
        aucs[b] = _auc_from_groups(inv, len(uniq), y, w.astype(np.float64))
    a = (1 - level) / 2
    lo, hi = np.quantile(aucs, [a, 1 - a])
    return float(lo), float(hi)


def drift_score(auc: float) -> float:
    """deepchecks' domain-classifier drift score ``max(2·AUC − 1, 0)`` in ``[0, 1]``."""
    return max(2 * auc - 1, 0.0)


def verdict(auc: float, ci: tuple[float, float] | None = None) -> tuple[str, str, bool]:
    """``(level, sentence, random_split_as_good)`` for an out-of-fold AUC.

    The shift counts as undetected (level ``none``) when AUC < 0.55 or the interval's lower end is
    ≤ 0.5; then a random validation split is as good.
    """
    if auc < VERDICTS[0][0] or (ci is not None and not math.isnan(ci[0]) and ci[0] <= 0.5):
        return VERDICTS[0][1], VERDICTS[0][2], True
    for upper, level, sentence in VERDICTS:
        if auc < upper:
            return level, sentence, False
    return VERDICTS[-1][1], VERDICTS[-1][2], False  # pragma: no cover


# --------------------------------------------------------------------------------------------
# Selection and weights
# --------------------------------------------------------------------------------------------


def parse_valid_size(value: str | float | int, n_train: int) -> int:
    """``--valid-size`` as a row count: a fraction in (0, 1) (``0.1``) or an integer count (``500``).

    The fraction is rounded to the nearest count, at least 1.

    Raises:
        UsageError: not a number, not in range, or leaving no training row.
    """
    text = str(value).strip()
    try:
        if any(c in text for c in ".eE"):
            frac = float(text)
            if not 0 < frac < 1:
                raise UsageError(f"validation size {text}: a fraction must be between 0 and 1 (exclusive)")
            k = max(1, int(round(frac * n_train)))
        else:
            k = int(text)
    except ValueError:
        raise UsageError(f"validation size {text}: expected a fraction (0.1) or a row count (500)") from None
    if k < 1:
        raise UsageError(f"validation size {text}: must be at least 1 row")
    if k >= n_train:
        raise UsageError(
            f"validation size {text}: {k} rows, but the training file has only {n_train} usable rows; "
            "the validation set must leave at least one training row"
        )
    return k


def select_valid(p_train: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the ``k`` training rows with the highest ``p(test | x)``; ties go to the
    earlier row (a stable sort), so the result is deterministic."""
    order = np.argsort(-np.asarray(p_train), kind="stable")
    mask = np.zeros(len(p_train), dtype=bool)
    mask[order[:k]] = True
    return mask


def importance_weights(p_train: np.ndarray, *, max_weight: float = 10.0, eps: float = 1e-6) -> np.ndarray:
    """Su's alternative to a split: ``w = D / (1 − D)`` for each training row, normalised to mean 1
    and clipped at ``max_weight``.

    ``D`` is first clipped to ``[eps, 1 − eps]``. Clipping then renormalising would push rows over
    the cap again, so the result is the water-filling solution ``w = min(s · r, max_weight)`` with the
    scale ``s`` found by bisection such that ``mean(w) = 1`` exactly (r = D/(1−D)). A few rows with
    huge ratios therefore cannot dominate a weighted loss.

    Args:
        p_train: ``(n,)`` out-of-fold ``p(test | x)`` of the training rows.
        max_weight: cap C > 1 on a normalised weight.

    Returns:
        ``(n,)`` float64 weights, mean 1, each in ``(0, max_weight]``.

    Raises:
        UsageError: ``max_weight`` ≤ 1 (mean 1 is then impossible unless all weights are 1).
    """
    if not max_weight > 1:
        raise UsageError(f"max weight {max_weight}: must be a finite number greater than 1 (the weights have mean 1)")
    d = np.clip(np.asarray(p_train, dtype=np.float64), eps, 1 - eps)
    r = d / (1 - d)
    r = r / r.mean()
    if r.max() <= max_weight:
        return r
    lo, hi = 1.0, max_weight / r.min()   # mean(min(s r, C)) is increasing in s; at s=1 it is < 1
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.minimum(mid * r, max_weight).mean() < 1:
            lo = mid
        else:
            hi = mid
    return np.minimum(hi * r, max_weight)


def effective_sample_size(w: np.ndarray) -> float:
    """Kish's effective sample size ``(Σw)² / Σw²``."""
    w = np.asarray(w, dtype=np.float64)
    return float(w.sum() ** 2 / (w ** 2).sum()) if len(w) else 0.0


# --------------------------------------------------------------------------------------------
# The whole method
# --------------------------------------------------------------------------------------------


@dataclass
class AdversarialResult:
    """What :func:`adversarial_validation` measured.

    ``p_train``/``p_test``: out-of-fold ``p(test | x)``, shapes ``(n_train,)``/``(n_test,)``.
    ``auc``: out-of-fold ROC AUC in [0, 1]; ``auc_ci``: bootstrap 95 % interval;
    ``auc_in_sample``: the same classifier fitted and scored on all rows (optimistic, reference only).
    ``top_test``/``top_train``: ``[(feature, coefficient)]`` of the classifier fitted on all rows,
    most test-indicative (largest positive) and most train-indicative (most negative).
    """

    p_train: np.ndarray
    p_test: np.ndarray
    auc: float
    auc_ci: tuple[float, float]
    auc_in_sample: float
    drift_score: float
    level: str
    verdict: str
    random_split_as_good: bool
    top_test: list[tuple[str, float]] = field(default_factory=list)
    top_train: list[tuple[str, float]] = field(default_factory=list)
    n_features: int = 0


def check_sizes(n_train: int, n_test: int, folds: int) -> None:
    """Raise :class:`UsageError` when the discriminator cannot be trained with ``folds`` folds."""
    if n_train == 0:
        raise UsageError("the training file has no usable rows: nothing to split")
    if n_test == 0:
        raise UsageError("the test file has no usable rows: adversarial validation needs test inputs")
    if folds < 2:
        raise UsageError(f"folds {folds}: needs at least 2 folds for out-of-fold probabilities")
    if min(n_train, n_test) < folds:
        raise UsageError(
            f"folds {folds}: needs at least {folds} rows in each of train ({n_train}) and test ({n_test}); "
            "use fewer folds or give more rows"
        )


def check_outputs(*, train: str, test: str, out_train: str | None = None, out_valid: str | None = None,
                  weights: str | None = None) -> bool:
    """The output rules of ``split-valid``: a split needs both ``out_train`` and ``out_valid``;
    without a split, ``weights`` must be asked for; ``train`` and ``test`` cannot both be stdin
    (``"-"``). Returns whether a split (train/valid files) is asked for.

    Raises:
        UsageError: one line naming the options to give.
    """
    split = bool(out_train or out_valid)
    if split and not (out_train and out_valid):
        raise UsageError("give both --out-train and --out-valid (or --weights alone)")
    if not split and not weights:
        raise UsageError("nothing to write: give --out-train and --out-valid, or --weights FILE")
    if train == "-" and test == "-":
        raise UsageError("--train and --test cannot both be stdin")
    return split


def check_settings(*, C: float = 4.0, seed: int = 0, n_boot: int = 0) -> None:
    """Validate the discriminator settings before any work (sklearn and numpy would otherwise fail
    late with a traceback, or accept NaN).

    Raises:
        UsageError: ``C`` not a positive finite number, ``seed`` or ``n_boot`` negative.
    """
    import math

    if not (isinstance(C, (int, float)) and math.isfinite(C) and C > 0):
        raise UsageError(f"C = {C}: the inverse regularisation strength must be a positive finite number")
    if int(seed) < 0:
        raise UsageError(f"seed {seed}: must be >= 0")
    if int(n_boot) < 0:
        raise UsageError(f"bootstrap replicates {n_boot}: must be >= 0 (0 = no interval)")


def adversarial_validation(
    train_texts: Sequence[str],
    test_texts: Sequence[str],
    *,
    features: str = "tfidf",
    vectors: np.ndarray | None = None,
    folds: int = 5,
    C: float = 4.0,
    seed: int = 0,
    n_boot: int = 1000,
    top_k: int = 50,
    on_stage=None,
) -> AdversarialResult:
    """Train the train-vs-test discriminator and score every row out-of-fold.

    Args:
        train_texts, test_texts: the inputs (labels are never needed).
        features: ``tfidf`` (see :func:`tfidf_features`) or ``model`` (then ``vectors`` must be the
            ``(n_train + n_test, hidden)`` array from :func:`model_features`, train rows first).
        folds: stratified K for the out-of-fold probabilities.
        C: inverse L2 regularisation strength of the logistic regression.
        seed: fold assignment and bootstrap.
        n_boot: bootstrap replicates for the AUC interval (0 = none).
        top_k: features reported in each direction.
        on_stage: called with a short description before each stage (progress).

    Raises:
        UsageError: empty sets, too few rows for ``folds``, unknown ``features``.
        NlptoolError: no features could be built.
    """
    n_tr, n_te = len(train_texts), len(test_texts)
    check_sizes(n_tr, n_te, folds)
    check_settings(C=C, seed=seed, n_boot=n_boot)
    stage = on_stage or (lambda s: None)
    y = np.r_[np.zeros(n_tr, dtype=np.int8), np.ones(n_te, dtype=np.int8)]
    if features == "tfidf":
        stage("features: TF-IDF (jieba words + char 1-2-grams)")
        X, names = tfidf_features(list(train_texts) + list(test_texts))
    elif features == "model":
        if vectors is None or len(vectors) != n_tr + n_te:
            raise UsageError("features='model' needs vectors for the train rows then the test rows")
        X = np.asarray(vectors, dtype=np.float32)
        names = [f"dim{j}" for j in range(X.shape[1])]
    else:
        raise UsageError(f"features {features!r}: expected tfidf or model")
    stage(f"discriminator: {folds}-fold out-of-fold logistic regression on {X.shape[1]:,} features")
    p = out_of_fold_proba(X, y, folds=folds, seed=seed, C=C)
    auc = fast_auc(y, p)
    ci = bootstrap_auc_ci(y, p, n_boot=n_boot, seed=seed)
    stage("discriminator on all rows (feature weights, in-sample AUC)")
    final = make_discriminator(features == "model", C=C, seed=seed).fit(X, y)
    auc_in = fast_auc(y, final.predict_proba(X)[:, 1])
    lr = final[-1] if hasattr(final, "steps") else final
    coef = lr.coef_.ravel()
    order = np.argsort(coef, kind="stable")
    top_test = [(names[j], float(coef[j])) for j in order[::-1][:top_k] if coef[j] > 0]
    top_train = [(names[j], float(coef[j])) for j in order[:top_k] if coef[j] < 0]
    level, sentence, as_good = verdict(auc, ci)
    return AdversarialResult(
        p_train=p[:n_tr], p_test=p[n_tr:], auc=auc, auc_ci=ci, auc_in_sample=auc_in,
        drift_score=drift_score(auc), level=level, verdict=sentence, random_split_as_good=as_good,
        top_test=top_test, top_train=top_train, n_features=int(X.shape[1]),
    )


# --------------------------------------------------------------------------------------------
# Lossless output
# --------------------------------------------------------------------------------------------


def terminated(raw: bytes) -> bytes:
    """The line with a line terminator: unchanged when it ends in ``\\n``, else ``\\n`` appended
    (only the last line of a file can lack one)."""
    return raw if raw.endswith(b"\n") else raw + b"\n"


def write_split(raw_lines: Sequence[bytes], valid_mask: np.ndarray, out_train: str, out_valid: str, stack,
                *, inputs: Sequence[str] = ()) -> None:
    """Write the lossless split: ``out_train`` gets the lines not in ``valid_mask``, ``out_valid``
    the others, byte-identical and in input order (a missing final newline is added). Both are
    opened through :func:`nlptool.paths.atomic_output` on ``stack`` (a :class:`contextlib.ExitStack`):
    they are renamed into place together when the caller's ``with`` block ends without an
    exception, so a failure leaves both old files (both outputs or neither). Each written temp file
    is read back and compared before that (see :func:`verify_split`).

    Raises:
        NlptoolError: the bytes read back differ (a bug or a failing disk).
        OSError: from writing (ENOSPC, EIO): nothing is renamed.
    """
    from ..paths import atomic_output

    fh_train = stack.enter_context(atomic_output(out_train, "wb", inputs=inputs))
    fh_valid = stack.enter_context(atomic_output(out_valid, "wb", inputs=inputs))
    for b, m in zip(raw_lines, valid_mask):
        (fh_valid if m else fh_train).write(terminated(b))
    for fh, path, want in ((fh_train, out_train, False), (fh_valid, out_valid, True)):
        fh.flush()
        if path == "-" or not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            continue
        expect = b"".join(terminated(r) for r, m in zip(raw_lines, valid_mask) if bool(m) == want)
        got = os.pread(fh.fileno(), len(expect) + 1, 0)
        if got != expect:
            raise NlptoolError(f"{path}: written lines differ from the input lines (lossless check failed)")


def verify_split(raw_lines: Sequence[bytes], valid_mask: np.ndarray, out_train: str, out_valid: str) -> None:
    """Read both outputs back and check the split is lossless: out-train holds exactly the
    non-validation lines and out-valid the validation lines, each byte-identical (a missing final
    newline of the input's last line excepted) and in input order. Outputs written to stdout are
    not checked.

    Raises:
        NlptoolError: the outputs do not match (a bug or a concurrent writer).
    """
    for path, want in ((out_train, False), (out_valid, True)):
        if path == "-":
            continue
        expect = b"".join(terminated(r) for r, m in zip(raw_lines, valid_mask) if bool(m) == want)
        with open(path, "rb") as fh:
            got = fh.read()
        if got != expect:
            raise NlptoolError(f"{path}: written lines differ from the input lines (lossless check failed)")


def report_dict(res: AdversarialResult, *, sizes: dict[str, Any], valid_mask: np.ndarray | None,
                weights: np.ndarray | None, settings: dict[str, Any], max_weight: float | None = None) -> dict:
    """The JSON report (see docs/split-valid.md)."""
    def r4(x):
        return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)

    out: dict[str, Any] = {
        "method": "adversarial validation (Su 2020-10-16): out-of-fold p(test|x) of a train-vs-test discriminator",
        "settings": settings,
        "sizes": sizes,
        "auc": r4(res.auc),
        "auc_ci95": [r4(res.auc_ci[0]), r4(res.auc_ci[1])],
        "auc_in_sample": r4(res.auc_in_sample),
        "drift_score": r4(res.drift_score),
        "shift": res.level,
        "verdict": res.verdict,
        "random_split_as_good": res.random_split_as_good,
        "p_test_mean": {"train": r4(res.p_train.mean()), "test": r4(res.p_test.mean())},
        "n_features": res.n_features,
        "top_features": {
            "test": [[f, round(c, 4)] for f, c in res.top_test],
            "train": [[f, round(c, 4)] for f, c in res.top_train],
        },
    }
    if valid_mask is not None:
        out["p_test_mean"]["valid"] = r4(res.p_train[valid_mask].mean()) if valid_mask.any() else None
        out["p_test_mean"]["rest"] = r4(res.p_train[~valid_mask].mean()) if (~valid_mask).any() else None
        out["valid_p_test_min"] = r4(res.p_train[valid_mask].min()) if valid_mask.any() else None
    if weights is not None:
        out["weights"] = {
            "formula": "w = D/(1-D), D = out-of-fold p(test|x) clipped to [1e-6, 1-1e-6]; "
                       f"normalised to mean 1 and capped at {max_weight}",
            "max_weight": max_weight,
            "min": r4(weights.min()), "max": r4(weights.max()), "mean": r4(weights.mean()),
            "n_capped": int((weights >= (max_weight or np.inf) - 1e-9).sum()),
            "effective_sample_size": round(effective_sample_size(weights), 1),
        }
    return out


@dataclass
class SplitValidResult:
    """What :func:`split_valid` decides for one training file.

    Attributes:
        report: the JSON report (:func:`report_dict`: AUC with its interval, verdict, sizes, settings,
            top features, weight statistics).
        valid: ``(n_train_records,)`` bool, True for the records chosen for validation (None without
            a split); unreadable records are never chosen.
        weights: importance weight per readable training record index (None unless asked for).
        p_test: ``p(test | x)`` per training record, None for unreadable ones.
        train_unreadable, test_unreadable: the first error of each side's unreadable records and
            their count, ``(count, first error or None)``.
    """

    report: dict[str, Any]
    valid: np.ndarray | None
    weights: dict[int, float] | None
    p_test: list[float | None]
    train_unreadable: tuple[int, str | None]
    test_unreadable: tuple[int, str | None]


def split_valid(train_records: Sequence, test_records: Sequence, *, valid_size: str | float | int | None = 0.1,
                weights: bool = False, max_weight: float = 10.0, features: str = "tfidf", loaded=None,
                batch_size: int = 64, folds: int = 5, C: float = 4.0, bootstrap: int = 1000, seed: int = 0,
                settings: dict[str, Any] | None = None, on_stage=None) -> SplitValidResult:
    """Adversarial validation of a training set against a test set, then the validation split
    and/or importance weights (Su, kexue.fm 2020-10-16): the entry point ``nlptool split-valid`` calls.

    Args:
        train_records, test_records: :class:`nlptool.records.Record` lists (records with ``error`` are
            kept in place for the split output but not scored).
        valid_size: validation rows, a fraction or a count (:func:`parse_valid_size`); None = no split.
        weights: also compute importance weights ``w = D / (1 - D)`` normalised to mean 1, capped at
            ``max_weight``.
        features: ``"tfidf"`` (jieba words + character n-grams) or ``"model"`` (mean-pooled vectors of
            ``loaded``, a :class:`nlptool.models.LoadedModel`, or a callable returning one: it is
            called only after the cheap checks, so a bad size fails before a model loads).
        folds, C, bootstrap, seed: the discriminator and the AUC interval (:func:`adversarial_validation`).
        settings: recorded in the report as given.
        on_stage: called with one-line progress strings.

    Raises:
        UsageError: too few rows for the folds, bad settings, ``features="model"`` without a model.
    """
    check_settings(C=C, seed=seed, n_boot=bootstrap)
    good = [i for i, r in enumerate(train_records) if not r.error]
    test_texts = [r.text for r in test_records if not r.error]
    train_texts = [train_records[i].text for i in good]
    n_train_err = len(train_records) - len(good)
    n_test_err = len(test_records) - len(test_texts)
    check_sizes(len(train_texts), len(test_texts), folds)
    split = valid_size is not None
    k = parse_valid_size(valid_size, len(train_texts)) if split else None
    test_set = set(test_texts)
    n_dup = sum(t in test_set for t in train_texts)
    vectors = None
    if features == "model":
        if loaded is None:
            raise UsageError("model features need a loaded encoder")
        if callable(loaded):
            loaded = loaded()
        if on_stage:
            on_stage(f"encoding {len(train_texts) + len(test_texts):,} texts")
        vectors = model_features(train_texts + test_texts, loaded, batch_size=batch_size)
    res = adversarial_validation(train_texts, test_texts, features=features, vectors=vectors, folds=folds, C=C,
                                 seed=seed, n_boot=bootstrap, on_stage=on_stage)
    p_rec: list[float | None] = [None] * len(train_records)
    for i, p in zip(good, res.p_train):
        p_rec[i] = float(p)
    valid_rec = np.zeros(len(train_records), dtype=bool) if split else None
    valid_good = None
    w = None
    if weights:
        w = importance_weights(res.p_train, max_weight=max_weight)
    if split:
        valid_good = select_valid(res.p_train, k)
        valid_rec[np.asarray(good, dtype=int)[valid_good]] = True
    sizes = {
        "train_lines": len(train_records), "train_scored": len(train_texts), "train_unreadable": n_train_err,
        "test_lines": len(test_records), "test_scored": len(test_texts), "test_unreadable": n_test_err,
        "train_rows_also_in_test": n_dup,
    }
    if split:
        sizes.update({"valid": int(valid_rec.sum()), "out_train": int((~valid_rec).sum())})
    rep = report_dict(res, sizes=sizes, valid_mask=valid_good, weights=w, settings=dict(settings or {}),
                      max_weight=max_weight if weights else None)
    first = lambda recs: next((r.error for r in recs if r.error), None)  # noqa: E731
    return SplitValidResult(
        report=rep, valid=valid_rec, weights=dict(zip(good, map(float, w))) if w is not None else None,
        p_test=p_rec, train_unreadable=(n_train_err, first(train_records)),
        test_unreadable=(n_test_err, first(test_records)),
    )

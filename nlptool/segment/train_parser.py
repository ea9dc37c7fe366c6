"""``nlptool train parser``: self-train the biaffine dependency parser (:mod:`nlptool.segment.biaffine`)
on Perturbed Masking's trees, without a treebank.

The stages (:func:`train_parser`):

1. sentences: the corpus lines (shuffled, :func:`nlptool.segment.train.read_corpus_lines`) are cut
   into sentences at ``。！？；``; the tagger (``segmenter``, the built-in zh-seg-mini) segments them and
   the first ``sentences`` of ``min_words``..``max_words`` words are kept;
2. teacher trees: :func:`nlptool.segment.api.parse_words` with the ``--parse dependency`` masking
   defaults (impact of layer 1 of ``teacher``, Eisner, punctuation never heads), cached per sentence
   in ``OUT.work/teacher_trees-<weights sha256>.jsonl`` (a rerun reuses them);
3. rounds: round 1 fits a fresh student to the teacher's trees; every later round fits a fresh
   student to the previous student's trees (self-training; Li, Song, Su and Shao, Findings of ACL 2022
   do the same for segmentation). Few epochs on purpose: the student generalises the teacher's
   consistent decisions before it memorises its noise (``make bench-parse`` has the epoch study);
4. optional dev report: UAS on a CoNLL-U file (gold words, punctuation not scored) after every
   round, for the log and the metrics only: the last round is saved.

No gold tree enters training.
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from ..errors import UsageError
from ..training import TrainSettings, check_int_at_least

#: Where a corpus line is cut into sentences (kept with the sentence before it).
SENTENCE_END = re.compile(r"[^。！？；]+[。！？；]?")


@dataclass(kw_only=True)
class ParserSettings(TrainSettings):
    """The settings of ``nlptool train parser`` (:func:`train_parser`): the shared
    :class:`nlptool.training.TrainSettings` (``epochs`` per round, ``batch_size``, ``learning_rate``:
    Adam with linear decay; ``seed``; ``device``) plus:

    Attributes:
        teacher: the BERT probed by Perturbed Masking (built-in name, directory or hub id).
        segmenter: the tagger that cuts the corpus into words (built-in zh-seg-mini by default).
        sentences: training sentences (the first of the shuffled corpus that fit the lengths).
        min_words, max_words: sentence length range in words.
        rounds: self-training rounds (>= 1).
        dev_file: a CoNLL-U file scored after every round (report only), or None.
        dev_max_words: longest dev sentence scored.
        teacher_batch_size: sequences per Perturbed Masking forward pass.
    """

    UNUSED: ClassVar[tuple[str, ...]] = ("max_steps", "max_minutes", "warmup_ratio", "weight_decay")

    teacher: str = "zh-bert-mini"
    segmenter: str = "zh-seg-mini"
    sentences: int = 12_000
    min_words: int = 3
    max_words: int = 25
    rounds: int = 1
    epochs: float = 0.5
    batch_size: int = 32
    learning_rate: float = 2e-3
    dev_file: str | os.PathLike | None = None
    dev_max_words: int = 20
    teacher_batch_size: int = 256

    def check(self) -> None:
        """The shared rules, plus ``rounds`` >= 1, ``sentences`` >= 1 and ``1 <= min_words <= max_words``.

        Raises:
            UsageError: one line naming the setting.
        """
        check_int_at_least("the number of rounds", self.rounds, 1)
        check_int_at_least("the number of sentences", self.sentences, 1)
        if not (isinstance(self.min_words, int) and isinstance(self.max_words, int) and 1 <= self.min_words <= self.max_words):
            raise UsageError("need 1 <= min words <= max words")
        super().check()


def corpus_sentences(lines: Sequence[str], *, min_chars: int = 4, max_chars: int = 80) -> list[str]:
    """The sentences of corpus lines: cut at ``。！？；`` (the mark stays with its sentence), stripped,
    kept when ``min_chars``..``max_chars`` characters long."""
    out = []
    for line in lines:
        for s in SENTENCE_END.findall(line):
            s = s.strip()
            if min_chars <= len(s) <= max_chars:
                out.append(s)
    return out


def _masking_heads(loaded, word_lists: Sequence[Sequence[str]], batch_size: int) -> list[list[int]]:
    """The teacher's trees: :func:`nlptool.segment.api.parse_words` with the masking defaults, as 1-based heads."""
    from .api import parse_words

    return [[int(h or 0) for h in r.heads] for r in parse_words(loaded, word_lists, batch_size=batch_size)]


def _teacher_trees(s: ParserSettings, word_lists: list[list[str]], cache, teacher) -> list[list[int]]:
    """The teacher's trees of ``word_lists``, read from / appended to the JSONL ``cache``;
    ``teacher()`` gives the loaded BERT (called only when a tree is missing)."""
    done: dict[str, list[int]] = {}
    if cache.is_file():
        with open(cache, encoding="utf-8") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                    done["\t".join(rec["words"])] = rec["heads"]
                except (ValueError, KeyError, TypeError):
                    continue  # the cut last line of an interrupted run
    todo = [w for w in word_lists if "\t".join(w) not in done]
    if todo:
        loaded = teacher()
        t0 = time.perf_counter()
        with open(cache, "a", encoding="utf-8") as fh:
            fh.write("\n")  # ends a line an interrupted run may have cut
            step = 500
            for k in range(0, len(todo), step):
                chunk = todo[k : k + step]
                for ws, hs in zip(chunk, _masking_heads(loaded, chunk, s.teacher_batch_size)):
                    done["\t".join(ws)] = hs
                    fh.write(json.dumps({"words": ws, "heads": hs}, ensure_ascii=False) + "\n")
                fh.flush()
                s.tick(k + len(chunk), len(todo), "teacher trees (sentences)")
                el = time.perf_counter() - t0
                s.say(f"  teacher: {k + len(chunk):,}/{len(todo):,} sentences, {(k + len(chunk)) / max(el, 1e-9):.1f}/s")
    return [done["\t".join(w)] for w in word_lists]


def self_training_rounds(word_lists: Sequence[Sequence[str]], heads: Sequence[Sequence[int]], words, chars, *,
                         rounds: int = 1, epochs: float = 0.5, batch_size: int = 32, learning_rate: float = 2e-3,
                         seed: int = 0, device=None, log=None, progress=None):
    """Self-training of the biaffine student: round 1 fits a fresh parser to ``heads`` (the teacher's
    trees, 1-based, 0 = root), every later round a fresh parser to the previous round's trees of the
    same sentences (:func:`nlptool.segment.biaffine.train_student`, seed ``seed + round - 1``).

    Yields ``(round, parser, info)`` after each round: the round number (1-based), a
    :class:`nlptool.segment.biaffine.LoadedParser` on ``device`` (default CPU) and the training
    record (``steps``, ``loss``). ``progress(done, total, round)`` follows every step.
    """
    import torch

    from .biaffine import LoadedParser, new_parser, parse_with_student, train_student

    device = device if device is not None else torch.device("cpu")
    parser = None
    for rnd in range(1, rounds + 1):
        if parser is not None:
            heads = parse_with_student(parser, word_lists)
        net = new_parser(words, chars).to(device)
        info = train_student(net, words, chars, word_lists, heads, epochs=epochs, batch_size=batch_size,
                             lr=learning_rate, seed=seed + rnd - 1, log=log, device=device,
                             progress=None if progress is None else functools.partial(_round_progress, progress, rnd))
        parser = LoadedParser("student", "", net, device, {}, words, chars)
        yield rnd, parser, info


def _round_progress(progress, rnd: int, done: int, total: int) -> None:
    progress(done, total, rnd)


def train_parser(corpus: Sequence[str | os.PathLike], out: str | os.PathLike,
                 settings: ParserSettings | None = None, **overrides) -> dict:
    """Self-train a biaffine dependency parser on Perturbed Masking trees (module docstring) and save
    it to ``out`` (:func:`nlptool.segment.biaffine.save_parser`, whole or not at all,
    :func:`nlptool.paths.atomic_dir`).

    Args:
        corpus: UTF-8 text files, one paragraph per line (People's Daily ``word/tag`` lines are
            stripped back to raw text).
        settings: :class:`ParserSettings`; ``overrides``: fields of it to change.

    Returns:
        the metrics written to ``out/metrics.json``: sentence and word counts, the teacher's share
        of right-chain heads, per round the training loss (and dev UAS with ``dev_file``).

    Raises:
        UsageError: bad settings, a missing corpus file, or fewer than 10 usable sentences.
        InputDataError: a corpus file is not valid UTF-8.
        ModelError: a model cannot be loaded.
    """
    import numpy as np
    import torch

    from ..models import load_model, resolve_device, resolve_model_path
    from ..paths import atomic_dir, check_out_dir, work_dir_scope
    from .api import segment_with_tagger, weights_fingerprint
    from .biaffine import build_vocabs, parse_with_student, save_parser
    from .parsing import right_chain
    from .train import read_corpus_lines

    s = ParserSettings.build(settings, overrides)
    s.check()
    check_out_dir(out)
    dev_sents = _read_dev(s)  # a bad treebank fails before the slow stages
    dev = resolve_device(s.device)
    torch.manual_seed(s.seed)
    lines = read_corpus_lines(corpus, exclude=set(), max_chars=None, seed=s.seed)
    sents = corpus_sentences(lines)
    tagger = load_model(s.segmenter, kind="char-tagger", device=s.device)
    word_lists: list[list[str]] = []
    for k in range(0, len(sents), 4 * s.sentences):
        for r in segment_with_tagger(tagger, sents[k : k + 4 * s.sentences], impacts=False):
            ws = [w for w in r.words if w.strip()]
            if s.min_words <= len(ws) <= s.max_words:
                word_lists.append(ws)
        if len(word_lists) >= s.sentences:
            break
    word_lists = word_lists[: s.sentences]
    if len(word_lists) < 10:
        raise UsageError(f"the corpus gave {len(word_lists)} sentences of {s.min_words}-{s.max_words} words; need at least 10")
    n_words = sum(map(len, word_lists))
    s.say(f"corpus: {len(word_lists):,} sentences, {n_words:,} words (tagger {s.segmenter})")

    teacher = functools.cache(lambda: load_model(s.teacher, kind="encoder", device=s.device))  # loaded once, if needed
    with work_dir_scope(out) as work:
        fp = weights_fingerprint(resolve_model_path(s.teacher)) or "unhashed"
        heads = _teacher_trees(s, word_lists, work / f"teacher_trees-{fp[:16]}.jsonl", teacher)
    right = np.mean([h == c for hs in heads for h, c in zip(hs, right_chain(len(hs)))])
    metrics: dict = {"sentences": len(word_lists), "words": n_words, "teacher": s.teacher, "segmenter": s.segmenter,
                     "teacher_right_chain_share": round(float(right), 4), "rounds": []}
    words, chars = build_vocabs(word_lists)
    if dev_sents is not None:
        metrics["teacher_dev_uas"] = _dev_uas(dev_sents, lambda ws: _masking_heads(teacher(), ws, s.teacher_batch_size))
        s.say(f"round 0 (teacher): dev UAS {metrics['teacher_dev_uas']:.3f}")
    parser = None
    for rnd, parser, info in self_training_rounds(
            word_lists, heads, words, chars, rounds=s.rounds, epochs=float(s.epochs or 1.0), batch_size=s.batch_size,
            learning_rate=s.learning_rate, seed=s.seed, device=dev, log=s.say,
            progress=lambda d, t, r: s.tick(d, t, f"round {r}")):
        row = {"round": rnd, **info}
        if dev_sents is not None:
            row["dev_uas"] = _dev_uas(dev_sents, functools.partial(parse_with_student, parser))
        metrics["rounds"].append(row)
        s.say(f"round {rnd}: loss {info['loss']:.3f}" + (f", dev UAS {row['dev_uas']:.3f}" if "dev_uas" in row else ""))
    config = {"teacher": s.teacher, "segmenter": s.segmenter, "training": s.record()}
    config["training"].update(dev_file=os.path.basename(str(s.dev_file)) if s.dev_file else None, device=str(dev),
                              corpus_files=[os.path.basename(str(c)) for c in corpus])
    with atomic_dir(out) as tmp:
        save_parser(parser.model, words, chars, tmp, config)
        with open(os.path.join(tmp, "metrics.json"), "w", encoding="utf-8") as fh:
            json.dump(metrics, fh, ensure_ascii=False, indent=2)
            fh.write("\n")
    return metrics


def _read_dev(s: ParserSettings):
    if not s.dev_file:
        return None
    from .conllu import read_conllu

    return read_conllu(s.dev_file, max_words=s.dev_max_words)


def _dev_uas(dev_sents, heads_of) -> float:
    """UAS without punctuation of ``heads_of(word lists) -> heads`` on the gold words of ``dev_sents``."""
    from .conllu import attachment_score

    return round(attachment_score(dev_sents, heads_of([x.words for x in dev_sents])), 4)


def evaluate_parser(model: str | os.PathLike, gold: str | os.PathLike, *, max_words: int = 20, device: str = "cpu") -> dict:
    """UAS (punctuation not scored, gold words given) of the parser ``model`` and of the right-chain
    baseline on a CoNLL-U file's sentences of at most ``max_words`` words, on all of them and on the
    even (A) and odd (B) halves as ``make bench-parse`` splits them.

    Raises:
        UsageError: ``gold`` does not exist; ModelError: ``model`` is not a parser.
    """
    from ..models import load_model
    from .biaffine import parse_with_student
    from .conllu import attachment_score, read_conllu
    from .parsing import punctuation_word, right_chain

    sents = read_conllu(gold, max_words=max_words)
    parser = load_model(str(model), kind="dependency-parser", device=device)
    pred = parse_with_student(parser, [s.words for s in sents])
    chain = [right_chain(len(s.words)) for s in sents]
    skip = [right_chain(len(s.words), [punctuation_word(w) for w in s.words]) for s in sents]
    out: dict = {"sentences": len(sents), "max_words": max_words}
    for name, heads in (("student", pred), ("right_chain", chain), ("right_chain_skip_punct", skip)):
        out[name] = {half: round(attachment_score(sents[sl], heads[sl]), 4)
                     for half, sl in (("A", slice(0, None, 2)), ("B", slice(1, None, 2)), ("all", slice(None)))}
    same = [h == c for p, q in zip(pred, chain) for h, c in zip(p, q)]
    out["student_heads_equal_right_chain"] = round(sum(same) / max(1, len(same)), 4)
    right = [(h == g, g == d + 2) for s, p in zip(sents, pred) for d, (h, g, pu) in enumerate(zip(p, s.heads, s.punct))
             if not pu]
    correct = [nxt for ok, nxt in right if ok]
    out["student_correct_heads_next_word"] = round(sum(correct) / max(1, len(correct)), 4)
    return out


def card(metrics: dict, *, quick: bool = False):
    """The card (:class:`nlptool.training.Card`) of a trained parser, from its ``metrics.json``
    (with the UD scores :func:`finish_builtin` adds as ``evaluation``)."""
    from ..training import Card

    tr = metrics.get("training", {})
    rows = ["| round | trained on | steps | final loss | dev UAS |", "|---|---|---|---|---|"]
    rows.append(f"| 0 | (the teacher itself) | - | - | {metrics.get('teacher_dev_uas', '-')} |")
    for r in metrics.get("rounds", []):
        what = "the teacher's trees" if r["round"] == 1 else f"round {r['round'] - 1}'s trees"
        rows.append(f"| {r['round']} | {what} | {r['steps']} | {r['loss']:.3f} | {r.get('dev_uas', '-')} |")
    summary = f"""A Chinese dependency parser (unlabelled heads): a small biaffine parser (Dozat and Manning,
ICLR 2017) **trained without a treebank** on the trees that Perturbed Masking over {metrics['teacher']}
(Wu et al., ACL 2020) gives to raw sentences segmented by {metrics['segmenter']} (self-training; Li,
Song, Su and Shao, Findings of ACL 2022), by `nlptool train parser`. The default of
`nlptool segment --parse dependency` (`--parse-method student`)."""
    data = f"""- Corpus: {metrics['sentences']:,} sentences, {metrics['words']:,} words (tagger words) of
  {', '.join(tr.get('corpus_files', [])) or 'the corpus given'} (shuffled with seed {tr.get('seed', 0)}).
- Teacher trees: impact matrix of layer 1, Eisner, punctuation never heads: {metrics['teacher_right_chain_share']:.1%}
  of the teacher's heads are the next word (right-chain's).
- UD Chinese GSDSimp dev (gold words): scored after every round and used to choose the epochs,
  sentences and rounds on its even half; no gold tree enters training."""
    training = f"""{len(metrics.get('rounds', []))} round(s), {tr.get('epochs')} epoch(s) each, batch {tr.get('batch_size')},
Adam lr {tr.get('learning_rate')} with linear decay, device {tr.get('device')}.

{chr(10).join(rows)}"""
    sections = [("Data", data), ("Training", training)]
    ev = metrics.get("evaluation")
    if ev:
        s, c, k = ev["student"], ev["right_chain"], ev["right_chain_skip_punct"]
        sections.append(("Quality", f"""UAS without punctuation on UD Chinese GSDSimp dev, {ev['sentences']} sentences of at most
{ev['max_words']} words, gold words given (`make bench-parse` has the full table):

| parser | UAS A | UAS B | UAS all |
|---|---|---|---|
| this model | {s['A']:.3f} | {s['B']:.3f} | {s['all']:.3f} |
| right-chain (head = next word) | {c['A']:.3f} | {c['B']:.3f} | {c['all']:.3f} |
| right-chain, punctuation heads nothing | {k['A']:.3f} | {k['B']:.3f} | {k['all']:.3f} |

**It mostly copies the right-chain bias of its teacher**: {ev['student_heads_equal_right_chain']:.0%} of its heads
are the next word, and {ev['student_correct_heads_next_word']:.0%} of its correct heads are. Its lead over
right-chain comes from punctuation, which heads nothing, and from the root; right-chain whose
punctuation heads nothing scores {'above' if k['all'] > s['all'] else 'at or below'} it (docs/segment.md)."""))
    return Card(summary, sections, quick=quick)


def finish_builtin(src: str | os.PathLike, name: str, *, gold: str | os.PathLike | None = None,
                   commands: Sequence[str] = (), dest: str | os.PathLike | None = None, quick: bool = False,
                   device: str = "cpu") -> dict:
    """Last stage of the built-in parser's build: score ``src`` on the CoNLL-U file ``gold`` when it
    exists (:func:`evaluate_parser`), then export it with :func:`nlptool.training.export_builtin`
    and its card (:func:`card`). Returns the metrics written as ``training_metrics.json``."""
    from pathlib import Path

    from ..training import export_builtin

    src = Path(src)
    metrics = json.loads((src / "metrics.json").read_text(encoding="utf-8"))
    cfg = json.loads((src / "config.json").read_text(encoding="utf-8"))
    metrics["training"] = cfg.get("training", {})
    if gold is not None and os.path.exists(gold):
        metrics["evaluation"] = evaluate_parser(src, gold, device=device)
    export_builtin(src, name, card=lambda facts: card(metrics, quick=quick), commands=commands, dest=dest,
                   metrics=metrics)
    return metrics

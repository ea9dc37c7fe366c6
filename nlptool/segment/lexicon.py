"""The unigram word lexicon of the tagger: learnt by SentencePiece unigram EM on the raw corpus,
re-estimated by hard EM, and decoded jointly with the tagger's ``p(join)`` by a semi-Markov Viterbi
(:func:`lexicon_decode`). See docs/segment.md.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError, NlptoolError
from ..text import latin_digit_run


# ------------------------------------------------------------------------- unigram word lexicon

#: Lexicon keys of Latin/digit runs (one key character per run, like the tagger's [NUM]/[ENG]):
#: Unicode private-use characters, so a key string has one character per unit.
LEX_NUM, LEX_ENG = "\ue000", "\ue001"
#: The lexicon file inside a segmenter directory: ``key \t log-probability`` per line.
LEXICON_FILE = "lexicon.tsv"
#: The (weight, bonus, oov_scale) grid searched on the dev set for :func:`lexicon_decode`.
LEXICON_WEIGHTS = (0.3, 0.5, 0.7, 1.0)
LEXICON_BONUSES = (0.0, 1.0, 2.0)
LEXICON_OOV_SCALES = (None, 0.4, 0.5, 0.6)


def lexicon_key(unit: str) -> str:
    """The lexicon key of one unit (its model form): the character itself, or :data:`LEX_NUM` /
    :data:`LEX_ENG` for a Latin/digit run (:func:`latin_digit_run`, the vocabulary's ``[NUM]``/``[ENG]``)."""
    run = latin_digit_run(unit)
    return unit if run is None else LEX_NUM if run == "num" else LEX_ENG


def decode_settings(config: dict) -> dict:
    """The :func:`lexicon_decode` keyword arguments a tagger's ``config.json`` holds
    (``lexicon_weight``, ``lexicon_bonus``, ``lexicon_oov_scale``; missing: 0, 0, None)."""
    oov = config.get("lexicon_oov_scale")
    return {"weight": float(config.get("lexicon_weight", 0.0)), "bonus": float(config.get("lexicon_bonus", 0.0)),
            "oov_scale": None if oov is None else float(oov)}


@dataclass
class Lexicon:
    """A unigram word language model over unit keys (:func:`lexicon_key`): ``logp[word]`` is the
    natural-log probability of a word (at most ``max_len`` units); ``unk_logp`` scores a single
    unit the lexicon does not hold. Multi-unit strings outside the lexicon are never words."""

    logp: dict[str, float]
    unk_logp: float
    max_len: int

    def __len__(self) -> int:
        return len(self.logp)

    @classmethod
    def from_pieces(cls, pieces: dict[str, float]) -> "Lexicon":
        if not pieces:
            raise NlptoolError("the lexicon is empty")
        return cls(dict(pieces), min(pieces.values()) - 2.0, max(map(len, pieces)))

    def save(self, path: str | os.PathLike) -> None:
        """Write ``key \\t logp`` lines (UTF-8), most probable first."""
        rows = sorted(self.logp.items(), key=lambda kv: (-kv[1], kv[0]))
        Path(path).write_text("".join(f"{k}\t{v:.4f}\n" for k, v in rows), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Lexicon":
        """Read a file written by :meth:`save`.

        Raises:
            ModelError: the file is unreadable or a line is not ``key \\t number``.
        """
        pieces: dict[str, float] = {}
        try:
            with open(path, encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    key, _, val = line.rstrip("\n").partition("\t")
                    pieces[key] = float(val)
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: cannot read the lexicon: {exc}") from None
        except ValueError:
            raise ModelError(f"{path}: line {n} is not `word<TAB>log-probability`") from None
        try:
            return cls.from_pieces(pieces)
        except NlptoolError:
            raise ModelError(f"{path}: the lexicon is empty") from None


def train_lexicon(clauses: Iterable[str], work: str | os.PathLike, *, size: int = 60_000, max_len: int = 4,
                  seed: int = 0) -> Lexicon:
    """Learn a unigram word LM from raw clauses (strings of :func:`lexicon_key` keys, one per
    clause) with SentencePiece's unigram trainer (Kudo, ACL 2018: EM over all segmentations, then
    pruning to ``size`` pieces of at most ``max_len`` units). Unsupervised: raw text only, the same
    family of models as the segmental/nested Pitman-Yor LMs of unsupervised segmentation.

    ``size`` is a soft limit (a small corpus yields fewer pieces). Files go to ``work``.

    Raises:
        NlptoolError: no clause to learn from, or SentencePiece fails.
    """
    import sentencepiece as spm

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    src = work / "lexicon_corpus.txt"
    n = 0
    with open(src, "w", encoding="utf-8") as fh:
        for c in clauses:
            if c:
                fh.write(c + "\n")
                n += 1
    if not n:
        raise NlptoolError("no text to learn the lexicon from")
    prefix = work / "lexicon"
    try:
        spm.set_random_generator_seed(seed)
        spm.SentencePieceTrainer.train(
            input=str(src), model_prefix=str(prefix), model_type="unigram", vocab_size=size,
            hard_vocab_limit=False, max_sentencepiece_length=max_len, character_coverage=0.9999,
            add_dummy_prefix=False, split_by_whitespace=True, split_by_unicode_script=False, split_by_number=False,
            split_digits=False, remove_extra_whitespaces=False, normalization_rule_name="identity",
            bos_id=-1, eos_id=-1, unk_id=0, num_threads=os.cpu_count() or 1, input_sentence_size=2_000_000,
            shuffle_input_sentence=True, minloglevel=2)
        sp = spm.SentencePieceProcessor(model_file=str(prefix) + ".model")
    except (RuntimeError, OSError) as exc:
        raise NlptoolError(f"SentencePiece could not learn the lexicon: {exc}") from None
    pieces = {}
    for i in range(sp.get_piece_size()):
        if sp.is_unknown(i) or sp.is_control(i) or sp.is_unused(i):
            continue
        piece = sp.id_to_piece(i).replace("\u2581", "")
        if piece:
            pieces[piece] = float(sp.get_score(i))
    return Lexicon.from_pieces(pieces)


def reestimate_lexicon(keys: Sequence[str], joins: Sequence[np.ndarray], *, min_count: int = 2) -> Lexicon:
    """One hard (Viterbi) EM step of the unigram word LM: relative frequencies of the words of a
    decoded corpus. ``keys[k]``: clause k as a string of :func:`lexicon_key` keys (length n_k);
    ``joins[k]``: its join decisions, shape ``(n_k - 1,)`` (e.g. from :func:`lexicon_decode`).
    Multi-unit words seen fewer than ``min_count`` times are dropped; every single unit seen stays.

    Raises:
        NlptoolError: the corpus has no unit.
    """
    from collections import Counter

    counts: Counter = Counter()
    for clause, j in zip(keys, joins):
        start = 0
        for k in range(len(clause)):
            if k == len(clause) - 1 or not j[k]:
                counts[clause[start : k + 1]] += 1
                start = k + 1
    total = sum(counts.values())
    if not total:
        raise NlptoolError("no text to estimate the lexicon from")
    return Lexicon.from_pieces({w: math.log(c / total) for w, c in counts.items() if c >= min_count or len(w) == 1})


def lexicon_decode(keys: str, p: np.ndarray, lexicon: Lexicon, *, weight: float, bonus: float,
                   oov_scale: float | None = None) -> np.ndarray:
    """Best segmentation of one clause under the tagger's boundary probabilities and a unigram
    word LM: a semi-Markov Viterbi over words of at most ``lexicon.max_len`` units maximising

        sum over pairs of log p(decision)  +  weight * sum over words of log P_lex(word)  +  bonus * #words

    (a product of experts). A single unit outside the lexicon scores ``lexicon.unk_logp``; a
    multi-unit string outside it scores ``oov_scale * unk_logp`` per unit, or is never a word when
    ``oov_scale`` is None (then ``weight = 0`` keeps the tagger's decisions except that a multi-unit
    word must be in the lexicon). ``keys``: the clause's units as a string of :func:`lexicon_key`
    keys, one character per unit (:func:`nlptool.segment.api.clause_keys`), length n; ``p``: ``p(join)`` per neighbour pair, shape ``(n - 1,)``. Returns a boolean join
    decision per pair, shape ``(n - 1,)``. Cost O(n * max_len).
    """
    n = len(keys)
    if n < 2:
        return np.zeros(0, dtype=bool)
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    cum = np.concatenate([[0.0], np.cumsum(np.log(q))]).tolist()  # cum[i] = sum log p_join[0:i]
    cut = np.log1p(-q).tolist()
    logp, unk, L = lexicon.logp, lexicon.unk_logp, lexicon.max_len
    oov = None if oov_scale is None else oov_scale * unk
    best = [0.0] + [-math.inf] * n
    back = [0] * (n + 1)
    for b in range(1, n + 1):
        bb, ba = -math.inf, b - 1
        cb = cum[b - 1]
        for a in range(max(0, b - L), b):
            if b - a == 1:
                lw = logp.get(keys[a], unk)
            else:
                lw = logp.get(keys[a:b])
                if lw is None:
                    if oov is None:
                        continue
                    lw = oov * (b - a)
            s = best[a] + weight * lw + bonus + (cb - cum[a]) + (cut[a - 1] if a else 0.0)
            if s > bb:
                bb, ba = s, a
        best[b], back[b] = bb, ba
    joins = np.zeros(n - 1, dtype=bool)
    b = n
    while b > 0:
        a = back[b]
        joins[a : b - 1] = True
        b = a
    return joins

"""The unigram word lexicon of the tagger: learnt by SentencePiece unigram EM on the raw corpus,
re-estimated by hard EM, and decoded jointly with the tagger's ``p(join)`` by a semi-Markov Viterbi
(:func:`lexicon_decode`). See docs/segment.md.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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
    _index: "LexiconIndex | None" = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.logp)

    def index(self) -> "LexiconIndex | None":
        """The :class:`LexiconIndex` of this lexicon (built on first use and kept: change ``logp``
        only through a new :class:`Lexicon`), or None when its words cannot be packed into 62-bit
        codes (:func:`lexicon_decode_batch` then decodes clause by clause)."""
        if self._index is None or self._index.size != (len(self.logp), self.unk_logp, self.max_len):
            self._index = LexiconIndex.build(self)
        return self._index if self._index.ok else None

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
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: cannot read the lexicon: {exc}") from None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        cells = "\t".join(lines).split("\t")
        if len(cells) == 2 * len(lines):  # one tab per line: all keys, then all numbers, at C speed
            try:
                return cls.from_pieces(dict(zip(cells[0::2], map(float, cells[1::2]))))
            except (ValueError, NlptoolError):
                pass  # the line-by-line reading below names the bad line
        for n, line in enumerate(lines, 1):
            key, _, val = line.partition("\t")
            try:
                pieces[key] = float(val)
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


# ------------------------------------------------------------------ vectorised decoding (many clauses)


@dataclass
class LexiconIndex:
    """A :class:`Lexicon` as arrays, for :func:`lexicon_decode_batch`: every key character that
    occurs in a word gets a code ``1..A`` (``alphabet[code - 1]`` is its code point; 0 = a key
    outside every word); a word of ``l`` units is the integer ``sum code_i << bits * (l - 1 - i)``
    (``bits = A.bit_length()``), kept sorted per length. ``ok`` is False when ``bits * max_len > 62``."""

    size: tuple
    ok: bool
    bits: int = 0
    alphabet: np.ndarray | None = None  # sorted key code points
    unigram: np.ndarray | None = None  # (A + 1,): log P of a one-unit word by code; unk_logp when not a word
    words: dict = field(default_factory=dict)  # l -> (sorted codes int64, log P float64), l >= 2

    @classmethod
    def build(cls, lex: "Lexicon") -> "LexiconIndex":
        size = (len(lex.logp), lex.unk_logp, lex.max_len)
        keys = list(lex.logp)
        vals = np.fromiter(lex.logp.values(), dtype=np.float64, count=len(keys))
        lens = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
        if "" in lex.logp:  # never a word (a word has at least one unit)
            keep = lens > 0
            keys, vals, lens = [k for k in keys if k], vals[keep], lens[keep]
        cps = np.frombuffer("".join(keys).encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int64)
        alphabet = np.unique(cps)
        bits = max(int(len(alphabet)).bit_length(), 1)
        if bits * max(lex.max_len, 1) > 62:
            return cls(size, False)
        codes = np.searchsorted(alphabet, cps) + 1
        starts = np.zeros(len(keys), dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        unigram = np.full(len(alphabet) + 1, lex.unk_logp, dtype=np.float64)
        one = lens == 1
        unigram[codes[starts[one]]] = vals[one]
        words = {}
        for n in range(2, int(lens.max(initial=0)) + 1):
            sel = np.flatnonzero(lens == n)
            code = np.zeros(len(sel), dtype=np.int64)
            for i in range(n):
                code = (code << bits) | codes[starts[sel] + i]
            order = np.argsort(code)
            words[n] = (code[order], vals[sel][order])
        return cls(size, True, bits, alphabet, unigram, words)

    def codes(self, key_points: np.ndarray) -> np.ndarray:
        """Codes of key code points (0 for a key in no word)."""
        key_points = np.asarray(key_points, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.alphabet, key_points), max(len(self.alphabet) - 1, 0))
        if not len(self.alphabet):
            return np.zeros(len(key_points), dtype=np.int64)
        return np.where(self.alphabet[pos] == key_points, pos + 1, 0)

    def lookup(self, n: int, code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(found, logp)`` for codes of ``n``-unit strings (``logp`` is junk where not found)."""
        table = self.words.get(n)
        if table is None or not len(table[0]):
            return np.zeros(code.shape, dtype=bool), np.zeros(code.shape)
        words, vals = table
        pos = np.minimum(np.searchsorted(words, code), len(words) - 1)
        return words[pos] == code, vals[pos]


def lexicon_decode_batch(keys: np.ndarray, p: np.ndarray, offsets: np.ndarray, lexicon: Lexicon, *, weight: float,
                         bonus: float, oov_scale: float | None = None, group: int = 2048) -> np.ndarray:
    """:func:`lexicon_decode` of many clauses at once, with the same decisions (the same float
    operations in the same order, the same tie rule: the longest word wins a tie).

    ``keys``: the :func:`lexicon_key` of every unit as a code point, (n_units,), clause k being
    ``keys[offsets[k] : offsets[k + 1]]`` (at least one unit each); ``p``: ``p(join)`` of every pair,
    (n_units - n_clauses,), clause k's pairs starting at ``offsets[k] - k``. Returns the join
    decisions, bool, shaped like ``p``.

    The semi-Markov Viterbi runs over positions, vectorised over up to ``group`` clauses sorted
    longest first (those still running at a position are a prefix); word scores come from
    :class:`LexiconIndex` (one sorted-array search per word length). Cost O(n * max_len) array
    operations per position instead of Python steps per unit.
    """
    keys = np.asarray(keys, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    p = np.asarray(p)
    n_clauses = len(offsets) - 1
    lengths = np.diff(offsets)
    pair_start = offsets[:-1] - np.arange(n_clauses)
    out = np.zeros(len(p), dtype=bool)
    index = lexicon.index()
    if index is None:  # a lexicon too wide for the packed codes: clause by clause
        text = keys.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")
        for k in np.flatnonzero(lengths >= 2).tolist():
            a, n, s = int(offsets[k]), int(lengths[k]), int(pair_start[k])
            out[s : s + n - 1] = lexicon_decode(text[a : a + n], p[s : s + n - 1], lexicon, weight=weight,
                                                bonus=bonus, oov_scale=oov_scale)
        return out
    codes = index.codes(keys)
    L, bits = lexicon.max_len, index.bits
    oov = None if oov_scale is None else oov_scale * lexicon.unk_logp
    order = np.argsort(-lengths, kind="stable")
    order = order[lengths[order] >= 2]
    for g in range(0, len(order), group):
        rows = order[g : g + group]
        n = lengths[rows]
        m, T = len(rows), int(n[0])
        j = np.arange(T)
        unit_ok = j[None, :] < n[:, None]
        K = np.where(unit_ok, codes[np.minimum(offsets[rows][:, None] + j, len(codes) - 1)], 0)
        pair_ok = unit_ok[:, 1:]
        pair_at = pair_start[rows][:, None] + j[None, : T - 1]
        q = np.clip(np.where(pair_ok, p[np.minimum(pair_at, len(p) - 1)], 0.5).astype(np.float64), 1e-6, 1 - 1e-6)
        cum = np.zeros((m, T))
        np.cumsum(np.log(q), axis=1, out=cum[:, 1:])  # cum[:, i] = sum log p_join[0:i], as in lexicon_decode
        cut = np.log1p(-q)
        # wl[l][:, a]: weight * log P_lex of the l units from a (-inf: never a word)
        wl = {1: weight * index.unigram[K]}
        code = K
        for n_units in range(2, min(L, T) + 1):
            code = (code[:, : T - n_units + 1] << bits) | K[:, n_units - 1 :]
            found, val = index.lookup(n_units, code)
            w = np.full((m, T), -np.inf)
            if oov is None:
                w[:, : T - n_units + 1] = np.where(found, weight * val, -np.inf)
            else:
                w[:, : T - n_units + 1] = weight * np.where(found, val, oov * n_units)
            wl[n_units] = w
        best = np.full((m, T + 1), -np.inf)
        best[:, 0] = 0.0
        back = np.zeros((m, T + 1), dtype=np.int64)
        running = m - np.searchsorted(n[::-1], np.arange(T + 1), side="left")  # rows with n >= b
        for b in range(1, T + 1):
            mb = int(running[b])
            top = min(L, b)
            cb = cum[:mb, b - 1]
            cands = np.empty((mb, top))
            for c, n_units in enumerate(range(top, 0, -1)):  # a = b - n_units ascending, as lexicon_decode
                a = b - n_units
                s = best[:mb, a] + wl[n_units][:mb, a]
                s += bonus
                s += cb - cum[:mb, a]
                if a:
                    s += cut[:mb, a - 1]
                cands[:, c] = s
            k = cands.argmax(axis=1)  # the first maximum: the smallest a, as `s > bb` keeps it
            best[:mb, b] = cands[np.arange(mb), k]
            back[:mb, b] = b - (top - k)
        starts = np.zeros((m, T + 1), dtype=bool)
        pos = n.copy()
        live = np.arange(m)
        while len(live):
            a = back[live, pos[live]]
            starts[live, a] = True
            pos[live] = a
            live = live[a > 0]
        out[pair_at[pair_ok]] = ~starts[:, 1:T][pair_ok]
    return out

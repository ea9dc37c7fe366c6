"""Unsupervised Chinese word segmentation and parsing by Perturbed Masking.

Text handling (the parts the model never sees):

* the text is cut into *pieces*: whitespace runs, punctuation/symbol runs (a run of one repeated
  character such as ``——`` or ``……``), runs of Latin letters/digits (ASCII or full-width, with
  inner ``.,:-`` as in ``3.14`` or ``COVID-19``), and single characters of any other script;
* whitespace and punctuation are always word boundaries; a letter/digit run is one unit that is
  never split; a *clause* is a maximal run of the other units, cut further so that it fits the
  model's window (and ``max_clause`` units);
* inside a clause, neighbours are joined when their impact ``d`` (see
  :func:`nlptool.segment.masking.adjacent_impacts`) is at least the threshold, cut otherwise;
* the words always concatenate back to the input text exactly (whitespace runs are words too).

Threshold rule ``auto`` (no gold labels): ``d`` is divided by the mean ``d`` of its clause,
and neighbours are joined when that ratio is at least ``AUTO_RATIO``. The ratio makes the rule
independent of the model's scale (Su's fixed threshold 8 suits BERT-base only) and of the other
lines of the input; clauses of two units, which have no reference, use the model's calibrated
global threshold (the median of all ``d`` on a calibration text). See the README for its measured
accuracy.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputDataError, NlptoolError, UsageError
from ..text import ALNUM_RUN, is_punct_or_space

#: ``auto`` threshold: join when d / mean(d in the clause) >= AUTO_RATIO (chosen on a development
#: set, People's Daily 1998, by benchmarks/tune_segment_rule.py; never on the test set).
AUTO_RATIO = 1.0
#: Longest clause (in units) given to the model at once; longer ones are cut into windows.
MAX_CLAUSE = 128


@dataclass
class Piece:
    """A span ``text[start:end]``; ``kind`` is ``space``, ``punct``, ``alnum`` or ``char``."""

    start: int
    end: int
    kind: str


def split_pieces(text: str) -> list[Piece]:
    """Cut ``text`` into pieces (see the module docstring); they tile the text exactly."""
    pieces: list[Piece] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            j = i + 1
            while j < n and text[j].isspace():
                j += 1
            pieces.append(Piece(i, j, "space"))
        else:
            m = ALNUM_RUN.match(text, i)
            if m:
                j = m.end()
                pieces.append(Piece(i, j, "alnum"))
            elif is_punct_or_space(ch):
                j = i + 1
                while j < n and text[j] == ch:
                    j += 1
                pieces.append(Piece(i, j, "punct"))
            else:
                j = i + 1
                # keep combining marks / variation selectors with their base character
                while j < n and unicodedata.category(text[j]) in ("Mn", "Me", "Mc"):
                    j += 1
                pieces.append(Piece(i, j, "char"))
        i = j
    return pieces


_NORMALISE_CACHE: dict[str, str] = {}


def model_form(s: str) -> str:
    """What the model sees for a unit: NFKC per character when that keeps it one character
    (full-width ``１`` -> ``1``), so models trained on either width work; offsets are unaffected."""
    out = _NORMALISE_CACHE.get(s)
    if out is None:
        chars = []
        for c in s:
            k = unicodedata.normalize("NFKC", c)
            chars.append(k if len(k) == 1 else c)
        out = "".join(chars)
        if len(_NORMALISE_CACHE) < 200_000:
            _NORMALISE_CACHE[s] = out
    return out


class UnitEncoder:
    """Token ids of units for one tokenizer, cached. Unknown material maps to ``[UNK]``."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.cache: dict[str, list[int]] = {}
        self.unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else 0

    def __call__(self, unit: str) -> list[int]:
        ids = self.cache.get(unit)
        if ids is None:
            ids = self.tokenizer.encode(model_form(unit), add_special_tokens=False) or [self.unk]
            self.cache[unit] = ids
        return ids


@dataclass
class Clause:
    """Units of one clause: their spans in the text and their token ids."""

    text_index: int
    spans: list[tuple[int, int]]
    ids: list[list[int]] = field(default_factory=list)


def clauses_of(text: str, text_index: int, encode: UnitEncoder, max_tokens: int, max_units: int = MAX_CLAUSE):
    """Pieces and clauses of one text. Returns ``(pieces, clauses)``; a clause is a maximal run
    of ``alnum``/``char`` pieces cut to at most ``max_tokens`` tokens and ``max_units`` units."""
    pieces = split_pieces(text)
    clauses: list[Clause] = []
    cur: Clause | None = None
    cur_tokens = 0
    for p in pieces:
        if p.kind in ("space", "punct"):
            cur = None
            continue
        ids = encode(text[p.start : p.end])
        if len(ids) > max_tokens:  # a giant letter run: keep it whole, alone
            ids = ids[:max_tokens]
        if cur is None or cur_tokens + len(ids) > max_tokens or len(cur.spans) >= max_units:
            cur = Clause(text_index, [])
            clauses.append(cur)
            cur_tokens = 0
        cur.spans.append((p.start, p.end))
        cur.ids.append(ids)
        cur_tokens += len(ids)
    return pieces, clauses


def words_from_cuts(text: str, pieces: list[Piece], joins: dict[int, bool]) -> list[str]:
    """Assemble words: ``joins[start]`` is True when the unit starting at ``start`` is glued to the
    previous unit. Space and punctuation pieces are always words of their own."""
    words: list[str] = []
    prev_unit = False
    for p in pieces:
        s = text[p.start : p.end]
        if p.kind in ("space", "punct"):
            words.append(s)
            prev_unit = False
        else:
            if prev_unit and joins.get(p.start, False):
                words[-1] += s
            else:
                words.append(s)
            prev_unit = True
    return words


def auto_joins(d: np.ndarray, ratio: float = AUTO_RATIO, fallback: float | None = None) -> np.ndarray:
    """The ``auto`` threshold rule on one clause's neighbour impacts ``d`` (shape ``(n − 1,)``).

    Returns booleans (True = join). For ``n − 1 ≥ 2``: ``d / mean(d) ≥ ratio``. For a
    two-unit clause: ``d ≥ fallback`` (joined when no fallback is known).
    """
    if d.size == 0:
        return np.zeros(0, dtype=bool)
    if d.size == 1:
        return np.array([fallback is None or d[0] >= fallback])
    mean = float(np.mean(d))
    if mean <= 0:
        return d > 0
    return d / mean >= ratio


@dataclass
class SegmentResult:
    """``words`` tile the text; ``impacts`` are the neighbour impacts per clause (diagnostics)."""

    words: list[str]
    impacts: list[list[float]] = field(default_factory=list)


def segment_texts(
    loaded,
    texts: Sequence[str],
    *,
    threshold: float | str = "auto",
    layer: int = -1,
    batch_size: int = 256,
    max_clause: int = MAX_CLAUSE,
    ratio: float = AUTO_RATIO,
    fallback=None,
    stats=None,
    progress=None,
) -> list[SegmentResult]:
    """Segment texts by Perturbed Masking (Wu et al., ACL 2020; Su 2020-06-10).

    Args:
        loaded: a :class:`nlptool.models.LoadedModel` (BERT-family MLM or encoder).
        texts: any strings (empty allowed, any length: long texts are cut into clauses).
        threshold: ``"auto"`` (the label-free rule of :func:`auto_joins`) or a number in the
            model's distance units (join when ``d >= threshold``).
        layer: hidden layer (``-1`` = last).
        batch_size: masked inputs per forward pass.
        max_clause: longest clause in units.
        fallback: global threshold for two-unit clauses under ``auto`` (see
            :func:`calibrate_threshold`), or a zero-argument callable returning it, called only
            when such a clause occurs (so the calibration is not paid for when it is not needed).

    Returns:
        one :class:`SegmentResult` per text; ``"".join(r.words) == text`` always holds.
    """
    from .masking import neighbour_impacts

    encode = UnitEncoder(loaded.tokenizer)
    max_tokens = min(loaded.max_length - 2, 4 * max_clause)
    all_pieces = []
    all_clauses: list[Clause] = []
    for t, text in enumerate(texts):
        pieces, clauses = clauses_of(text, t, encode, max_tokens, max_clause)
        all_pieces.append(pieces)
        all_clauses.extend(clauses)
    ds = neighbour_impacts(
        loaded, [c.ids for c in all_clauses], layer=layer, batch_size=batch_size, stats=stats, progress=progress
    )
    if callable(fallback):
        fallback = fallback() if threshold == "auto" and any(d.size == 1 for d in ds) else None
    joins: list[dict[int, bool]] = [{} for _ in texts]
    impacts: list[list[list[float]]] = [[] for _ in texts]
    for clause, d in zip(all_clauses, ds):
        if threshold == "auto":
            j = auto_joins(d, ratio, fallback)
        else:
            j = d >= float(threshold)
        for (start, _end), glue in zip(clause.spans[1:], j):
            joins[clause.text_index][start] = bool(glue)
        impacts[clause.text_index].append([round(float(x), 4) for x in d])
    return [
        SegmentResult(words_from_cuts(text, pieces, jn), imp)
        for text, pieces, jn, imp in zip(texts, all_pieces, joins, impacts)
    ]


def calibrate_threshold(loaded, texts: Sequence[str], *, layer: int = -1, batch_size: int = 256) -> float:
    """Median neighbour impact over a calibration text: the model's scale for ``d``."""
    res = segment_texts(loaded, texts, threshold=0.0, layer=layer, batch_size=batch_size)
    ds = [x for r in res for clause in r.impacts for x in clause]
    return float(np.median(ds)) if ds else 0.0



@dataclass
class ParseResult:
    """Parse of one word list. ``tree``: bracketed string (constituency); ``heads``: 1-based heads,
    0 = root (dependency), one per word. Whitespace-only words get head ``None`` and are left
    out of the tree."""

    words: list[str]
    tree: str | None = None
    heads: list[int | None] | None = None


def parse_words(
    loaded,
    word_lists: Sequence[Sequence[str]],
    *,
    mode: str = "dependency",
    layer: int = -1,
    batch_size: int = 256,
    arc: str = "dependent-on-head",
    normalise: str = "none",
    stats=None,
    progress=None,
    model_words: Sequence[Sequence[str] | None] | None = None,
) -> list[ParseResult]:
    """Parse word sequences from their word-level impact matrix (Wu et al., ACL 2020).

    Each word is one unit (all its tokens are masked together; its vector is the mean of its
    tokens'). Whitespace words are skipped. A sentence whose tokens do not fit the model's
    window is cut into windows that are parsed separately; the roots of later windows are
    attached to the first window's root (constituency: the window trees are joined right-branching).

    Args:
        mode: ``"dependency"`` (Eisner, see :func:`nlptool.segment.parsing.eisner`) or
            ``"constituency"`` (MART, see :func:`nlptool.segment.parsing.mart`).
        arc: ``"dependent-on-head"`` (default) scores the arc h->d with F[h, d], the impact of
            the dependent on its head; ``"head-on-dependent"`` with F[d, h]. The default was the
            better of the two on UD Chinese GSDSimp dev with the built-in model (UAS 0.242 vs
            0.162, ``make bench-parse``).
        normalise: see :func:`nlptool.segment.parsing.dependency_scores`.
        model_words: per sentence, what the model sees for each word (e.g. converted to
            simplified characters), or ``None`` to use the words themselves; the tree keeps ``words``.
    """
    from .parsing import dependency_scores, eisner, mart, tree_to_brackets
    from .masking import impact_matrices

    encode = UnitEncoder(loaded.tokenizer)
    max_tokens = loaded.max_length - 2
    seqs: list[list[list[int]]] = []
    owners: list[tuple[int, list[int]]] = []  # (sentence, word indices of this window)
    for s, words in enumerate(word_lists):
        idx = [i for i, w in enumerate(words) if w.strip()]
        cur: list[int] = []
        cur_ids: list[list[int]] = []
        used = 0
        for i in idx:
            seen = model_words[s][i] if model_words is not None and model_words[s] is not None else words[i]
            ids = encode(seen.strip())[:max_tokens]
            if cur and used + len(ids) > max_tokens:
                seqs.append(cur_ids)
                owners.append((s, cur))
                cur, cur_ids, used = [], [], 0
            cur.append(i)
            cur_ids.append(ids)
            used += len(ids)
        if cur:
            seqs.append(cur_ids)
            owners.append((s, cur))
    mats = impact_matrices(loaded, seqs, layer=layer, batch_size=batch_size, stats=stats, progress=progress)
    results = [ParseResult(list(w)) for w in word_lists]
    pieces: dict[int, list] = {}
    for (s, idx), F in zip(owners, mats):
        pieces.setdefault(s, []).append((idx, F))
    for s, words in enumerate(word_lists):
        res = results[s]
        parts = pieces.get(s, [])
        if mode == "dependency":
            heads: list[int | None] = [None] * len(words)
            first_root = None
            for idx, F in parts:
                sc, root = dependency_scores(F, transpose=(arc == "dependent-on-head"), normalise=normalise)
                h, _ = eisner(sc, root)
                for local, head in enumerate(h):
                    heads[idx[local]] = 0 if head == 0 else idx[head - 1] + 1
                r = idx[h.index(0)]
                if first_root is None:
                    first_root = r
                else:
                    heads[r] = first_root + 1
            res.heads = heads
        else:
            trees = []
            for idx, F in parts:
                trees.append(_remap(mart(F), idx))
            tree = None
            for t in reversed(trees):
                tree = t if tree is None else (t, tree)
            res.tree = tree_to_brackets(tree, list(words)) if tree is not None else ""
    return results


def _remap(tree, idx):
    if isinstance(tree, int):
        return idx[tree]
    return tuple(_remap(t, idx) for t in tree)


_FALLBACK_CACHE: dict[tuple[str, int], float] = {}


def auto_fallback(loaded, *, layer: int = -1, batch_size: int = 256) -> float:
    """The global threshold that ``auto`` uses for two-unit clauses: the median neighbour impact
    of the model on the calibration text shipped with nlptool (``nlptool/data/calibration_zh.txt``,
    25 sentences written for nlptool). Read from the built-in segmenter's config.json when that
    was built from the same weights (the calibration is computed once, when the model is built:
    :func:`shipped_fallback`); otherwise computed once per model and layer per process."""
    key = (loaded.path, layer)
    if key not in _FALLBACK_CACHE:
        shipped = shipped_fallback(loaded.path, layer)
        if shipped is not None:
            _FALLBACK_CACHE[key] = shipped
            return shipped
        from importlib.resources import files

        text = (files("nlptool") / "data" / "calibration_zh.txt").read_text(encoding="utf-8")
        lines = [x for x in text.splitlines() if x.strip()]
        _FALLBACK_CACHE[key] = calibrate_threshold(loaded, lines, layer=layer, batch_size=batch_size)
    return _FALLBACK_CACHE[key]


# ------------------------------------------------------------------- the tagger (zh-seg-mini)


def tagger_clauses(text: str, text_index: int, vocab, max_units: int | None = None):
    """Pieces and clauses of one text for the character tagger: like :func:`clauses_of`, with each
    unit's id from the tagger vocabulary (``clause.ids[k] == [id]``)."""
    from .tagger import TAGGER_MAX_UNITS

    def encode(unit: str) -> list[int]:
        return [vocab.id_of(model_form(unit))]

    return clauses_of(text, text_index, encode, 10**9, max_units or TAGGER_MAX_UNITS)


def clause_keys(text: str, clause: Clause) -> str:
    """The lexicon keys of a clause's units (:func:`nlptool.segment.lexicon.lexicon_key` of each unit's
    model form), one character per unit: the string :func:`nlptool.segment.lexicon.lexicon_decode` reads."""
    from .lexicon import lexicon_key

    return "".join(lexicon_key(model_form(text[a:b])) for a, b in clause.spans)


@dataclass
class TaggerPass:
    """One forward pass of a character tagger over ``texts``: the pieces of every text, its clauses
    and their ``p(join)`` (``probs[k]`` of shape ``(n_k - 1,)`` for clause k). :meth:`decode` turns
    it into words under any decoding settings without running the model again."""

    texts: Sequence[str]
    pieces: list[list[Piece]]
    clauses: list[Clause]
    probs: list[np.ndarray]
    _keys: list[str] | None = None

    def keys(self) -> list[str]:
        """:func:`clause_keys` of every clause (computed once)."""
        if self._keys is None:
            self._keys = [clause_keys(self.texts[c.text_index], c) for c in self.clauses]
        return self._keys

    def decode(self, lexicon=None, *, weight: float = 0.0, bonus: float = 0.0,
               oov_scale: float | None = None) -> list[SegmentResult]:
        """Words per text: with a :class:`nlptool.segment.lexicon.Lexicon`, each clause by
        :func:`nlptool.segment.lexicon.lexicon_decode` with these settings; without, ``p(join) >= 0.5``.
        ``impacts`` holds the probabilities ``p(join)``."""
        from .lexicon import lexicon_decode

        keys = self.keys() if lexicon is not None else None
        joins: list[dict[int, bool]] = [{} for _ in self.texts]
        impacts: list[list[list[float]]] = [[] for _ in self.texts]
        for k, (clause, p) in enumerate(zip(self.clauses, self.probs)):
            if lexicon is not None:
                decided = lexicon_decode(keys[k], p, lexicon, weight=weight, bonus=bonus, oov_scale=oov_scale)
            else:
                decided = p >= 0.5
            for (start, _end), q in zip(clause.spans[1:], decided):
                joins[clause.text_index][start] = bool(q)
            impacts[clause.text_index].append([round(float(x), 4) for x in p])
        return [SegmentResult(words_from_cuts(text, pieces, jn), imp)
                for text, pieces, jn, imp in zip(self.texts, self.pieces, joins, impacts)]


def tagger_pass(tagger, texts: Sequence[str], *, batch_size: int = 256) -> TaggerPass:
    """Run a character tagger once over ``texts``: one forward pass per clause, clauses of all
    texts batched and length-sorted (:func:`nlptool.segment.tagger.join_probabilities`)."""
    from .tagger import join_probabilities

    all_pieces, all_clauses = [], []
    for t, text in enumerate(texts):
        pieces, clauses = tagger_clauses(text, t, tagger.tokenizer)
        all_pieces.append(pieces)
        all_clauses.extend(clauses)
    probs = join_probabilities(tagger, [[u[0] for u in c.ids] for c in all_clauses], batch_size=batch_size)
    return TaggerPass(texts, all_pieces, all_clauses, probs)


def segment_with_tagger(tagger, texts: Sequence[str], *, batch_size: int = 256, progress=None,
                        lexicon: bool = True) -> list[SegmentResult]:
    """Segment texts with a self-trained character tagger (:mod:`nlptool.segment.tagger`, e.g. the built-in
    ``zh-seg-mini``): :func:`tagger_pass`, then :meth:`TaggerPass.decode`. When the tagger carries a
    unigram word lexicon (and ``lexicon`` is True) each clause is decoded with it and the settings in
    the tagger's config (:func:`nlptool.segment.lexicon.decode_settings`); otherwise neighbours are joined
    when ``p(join) >= 0.5``. ``impacts`` holds the probabilities ``p(join)``.

    Returns one :class:`SegmentResult` per text; ``"".join(r.words) == text`` always holds.
    """
    from .lexicon import decode_settings

    tp = tagger_pass(tagger, texts, batch_size=batch_size)
    if progress is not None:
        progress(len(texts))
    lex = getattr(tagger, "lexicon", None) if lexicon else None
    return tp.decode(lex, **decode_settings(tagger.config)) if lex is not None else tp.decode()


# ------------------------------------------------------------- traditional -> simplified script

_CONVERTERS: dict[str, object] = {}


def _opencc(config: str):
    conv = _CONVERTERS.get(config)
    if conv is None:
        try:
            import opencc
        except ImportError:
            raise NlptoolError(
                "converting traditional characters needs OpenCC's Python package: pip install opencc"
            ) from None
        conv = opencc.OpenCC(config)
        _CONVERTERS[config] = conv
    return conv


_CHAR_MAPS: dict[str, dict[str, str]] = {"t2s": {}, "s2t": {}}


def convert_chars(text: str, config: str = "t2s") -> str:
    """Character-aligned script conversion with OpenCC (``t2s``: traditional -> simplified,
    ``s2t``: the reverse): every character is converted on its own and kept when OpenCC maps it
    to anything other than exactly one character, so ``len(out) == len(text)`` and offsets agree.
    (Phrase-level conversion is not used: it can change the length.)

    Raises:
        NlptoolError: the ``opencc`` package is not installed.
    """
    cache = _CHAR_MAPS[config]
    out = []
    conv = None
    for c in text:
        m = cache.get(c)
        if m is None:
            if ord(c) < 0x2E80:  # nothing below the CJK blocks changes script
                m = c
            else:
                conv = conv or _opencc(config)
                m = conv.convert(c)
                if len(m) != 1:
                    m = c
            if len(cache) < 100_000:
                cache[c] = m
        out.append(m)
    return "".join(out)


def looks_traditional(text: str) -> bool:
    """Auto-detection: True when more characters change under t2s than under s2t (simplified text
    is nearly a fixed point of t2s, traditional text of s2t). False when OpenCC is not installed."""
    if not any(ord(c) >= 0x2E80 for c in text):
        return False
    try:
        import opencc  # noqa: F401
    except ImportError:  # without OpenCC, auto means no conversion (t2s says how to get it)
        return False
    t2s = convert_chars(text, "t2s")
    s2t = convert_chars(text, "s2t")
    n_t = sum(a != b for a, b in zip(text, t2s))
    n_s = sum(a != b for a, b in zip(text, s2t))
    return n_t > n_s


def model_text(text: str, convert: str = "auto") -> str:
    """The text the model sees: ``convert`` is ``none``, ``t2s`` (always) or ``auto`` (t2s when
    :func:`looks_traditional`). Same length as ``text``, so words map back by offsets."""
    if convert == "none":
        return text
    if convert == "t2s" or (convert == "auto" and looks_traditional(text)):
        return convert_chars(text, "t2s")
    if convert not in ("auto", "t2s"):
        raise UsageError(f"convert must be auto, t2s or none, not {convert!r}")
    return text


# ------------------------------------------------------------------------------ user dictionary


@dataclass
class UserDict:
    """Words that must never be split (jieba's format: ``word [count [tag]]`` per line)."""

    words: frozenset
    lengths: tuple  # distinct word lengths, longest first

    @classmethod
    def from_words(cls, words) -> "UserDict":
        ws = frozenset(w for w in words if w)
        return cls(ws, tuple(sorted({len(w) for w in ws}, reverse=True)))


def read_user_dict(path: str | os.PathLike) -> UserDict:
    """Read a user dictionary in jieba's format (``word [count [tag]]``, UTF-8; blank lines and
    lines starting with ``#`` skipped; the word is the first whitespace-separated field; a count,
    when given, is a positive finite number, as jieba requires).

    Raises:
        InputDataError: the file cannot be read, a line is not UTF-8, has more than three fields,
            or a count that is not a positive finite number (naming the file and line).
    """
    import math

    words = []
    try:
        with open(path, "rb") as fh:
            for lineno, raw_bytes in enumerate(fh, 1):
                try:
                    raw = raw_bytes.decode("utf-8-sig" if lineno == 1 else "utf-8")
                except UnicodeDecodeError:
                    raise InputDataError("the user dictionary is not UTF-8 text (re-encode it with iconv)",
                                         source=str(path), line=lineno) from None
                parts = raw.split()
                if not parts or parts[0].startswith("#"):
                    continue
                if len(parts) > 3:
                    raise InputDataError(f"expected 'word [count [tag]]', found {len(parts)} fields",
                                         source=str(path), line=lineno)
                if len(parts) >= 2:
                    try:
                        count = float(parts[1])
                    except ValueError:
                        count = float("nan")
                    if not (math.isfinite(count) and count > 0):
                        raise InputDataError(f"the count {parts[1]!r} of {parts[0]!r} is not a positive number",
                                             source=str(path), line=lineno)
                words.append(parts[0])
    except OSError as exc:
        raise InputDataError(f"cannot read the user dictionary: {exc}", source=str(path)) from None
    return UserDict.from_words(words)


def apply_user_dict(text: str, words: list[str], user_dict: UserDict | None) -> list[str]:
    """Force dictionary words: scanning left to right, at each piece boundary the longest
    dictionary word starting there (and ending on a piece boundary) is matched and the scan
    continues after it (overlaps are resolved left to right); a matched word gets boundaries at
    both ends and none inside. ``words`` must tile ``text``; the result tiles it too."""
    if not user_dict or not user_dict.words or not text:
        return words
    cuts = set()
    i = 0
    for w in words:
        cuts.add(i)
        i += len(w)
    cuts.add(i)
    piece_edges = {p.start for p in split_pieces(text)} | {len(text)}
    starts = sorted(piece_edges)
    matched = []
    pos = 0
    for s in starts:
        if s < pos:
            continue
        for L in user_dict.lengths:
            e = s + L
            if e <= len(text) and e in piece_edges and text[s:e] in user_dict.words:
                matched.append((s, e))
                pos = e
                break
    if not matched:
        return words
    for s, e in matched:
        cuts.difference_update(range(s + 1, e))
        cuts.add(s)
        cuts.add(e)
    edges = sorted(cuts)
    return [text[a:b] for a, b in zip(edges, edges[1:])]


# -------------------------------------------------------------------- the one CLI entry point


def segment_or_parse(
    texts: Sequence[str | None],
    *,
    segmenter=None,
    method: str = "tagger",
    given_words: Sequence[Sequence[str] | None] | None = None,
    parser=None,
    parse: str = "none",
    threshold: float | str = "auto",
    layer: int = -1,
    batch_size: int = 256,
    user_dict: UserDict | None = None,
    convert: str = "auto",
    fallback=None,
) -> list[dict | Exception]:
    """What ``nlptool segment`` does for one chunk of records: segment (or take given word lists),
    force user-dictionary words, and parse when asked.

    Args:
        texts: one text per record (``None`` where ``given_words`` supplies the words).
        segmenter: the loaded model of ``method``: a :class:`nlptool.segment.tagger.LoadedTagger`
            (``tagger``) or a BERT :class:`nlptool.models.LoadedModel` (``masking``).
        method: ``tagger`` (:func:`segment_with_tagger`) or ``masking`` (:func:`segment_texts`).
        given_words: per record, a word list to parse as given (not segmented), or ``None``.
        parser: the BERT used for ``--parse`` (Perturbed Masking impact matrix of the words).
        parse: ``none``, ``dependency`` or ``constituency``.
        user_dict: words never split (:func:`read_user_dict`).
        convert: ``auto``/``t2s``/``none``: traditional -> simplified before the model
            (:func:`model_text`); output words are always the input's own characters.
        fallback: the two-unit-clause threshold for ``masking`` (see :func:`auto_fallback`).

    Returns:
        per record a dict ``{"words": [...]}`` (plus ``"tree"`` or ``"heads"``), or a
        ``ValueError`` for a record whose given words are not a list of strings.
    """
    n = len(texts)
    given_words = given_words or [None] * n
    results: list = [None] * n
    word_lists: list = [None] * n
    seg_idx = [i for i in range(n) if given_words[i] is None]
    originals = [texts[i] or "" for i in seg_idx]
    seen = [model_text(t, convert) for t in originals]
    if seg_idx:
        if method == "tagger":
            segs = segment_with_tagger(segmenter, seen, batch_size=batch_size)
        elif method == "masking":
            segs = segment_texts(segmenter, seen, threshold=threshold, layer=layer, batch_size=batch_size, fallback=fallback)
        else:
            raise UsageError(f"method must be tagger or masking, not {method!r}")
        for i, orig, s in zip(seg_idx, originals, segs):
            words, k = [], 0
            for w in s.words:  # back to the original characters (same offsets)
                words.append(orig[k : k + len(w)])
                k += len(w)
            word_lists[i] = apply_user_dict(orig, words, user_dict)
    for i in range(n):
        if word_lists[i] is None:
            given = given_words[i]
            if not isinstance(given, list) or not all(isinstance(w, str) for w in given):
                results[i] = ValueError("the given word list must be a list of strings")
            else:
                word_lists[i] = given
    if parse != "none":
        ok = [i for i in range(n) if results[i] is None]
        lists = [word_lists[i] for i in ok]
        seen_words = [[model_text(w, convert) for w in ws] if convert != "none" else None for ws in lists]
        parsed = parse_words(parser, lists, mode=parse, layer=layer, batch_size=batch_size, model_words=seen_words)
        for i, p in zip(ok, parsed):
            rec = {"words": word_lists[i]}
            if parse == "constituency":
                rec["tree"] = p.tree
            else:
                rec["heads"] = p.heads
            results[i] = rec
    else:
        for i in range(n):
            if results[i] is None:
                results[i] = {"words": word_lists[i]}
    return results


def weights_fingerprint(model_dir: str | os.PathLike) -> str | None:
    """SHA-256 of a model directory's ``model.safetensors`` (None when it has none)."""
    import hashlib

    path = os.path.join(str(model_dir), "model.safetensors")
    if not os.path.isfile(path):
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shipped_fallback(model_dir: str | os.PathLike, layer: int = -1) -> float | None:
    """The two-unit-clause threshold shipped in the built-in ``zh-seg-mini`` config.json
    (``teacher_fallback``), when its ``teacher_sha256`` and ``layer`` match ``model_dir``'s weights;
    else None."""
    import json
    from pathlib import Path

    cfg_path = Path(__file__).parent / "data" / "models" / "zh-seg-mini" / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if cfg.get("layer") != layer or "teacher_fallback" not in cfg or not cfg.get("teacher_sha256"):
        return None
    if weights_fingerprint(model_dir) != cfg["teacher_sha256"]:
        return None
    return float(cfg["teacher_fallback"])


def teacher_of(tagger) -> str:
    """The BERT a segmenter (``tagger``, a loaded :mod:`nlptool.segment.tagger` model) was self-trained
    from, which ``--parse`` uses for the impact matrix: the ``teacher`` of its config, resolved by
    :func:`nlptool.models.related_model` (a built-in name stays inside the package; a relative
    path is relative to the segmenter's directory, never the working directory). Default
    ``zh-bert-mini``."""
    from ..models import related_model

    return related_model(tagger.config.get("teacher", "zh-bert-mini"), tagger.path)

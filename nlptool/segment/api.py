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
from .biaffine import LoadedParser

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
    max_tokens = _masking_max_tokens(loaded, max_clause)
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



#: Hidden layer of the impact matrix for dependency parsing when none is given (``--layer`` not
#: set): the best layer on half of UD Chinese GSDSimp dev (``make bench-parse``).
DEPENDENCY_LAYER = 1


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
    layer: int | None = None,
    batch_size: int = 256,
    arc: str = "dependent-on-head",
    normalise: str = "row",
    root: str = "none",
    punctuation_heads: bool = False,
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
        layer: hidden layer of the impact matrix; ``None``: :data:`DEPENDENCY_LAYER` for
            ``dependency``, the last layer for ``constituency``.
        arc: ``"dependent-on-head"`` (default) scores the arc h->d with F[h, d], the impact of
            the dependent on its head; ``"head-on-dependent"`` with F[d, h].
        normalise: see :func:`nlptool.segment.parsing.dependency_scores`.
        root: ``"none"`` (every word the same root score; the decoder picks the root) or
            ``"mean"`` (a word's mean impact on the others).
        punctuation_heads: let punctuation words (:func:`nlptool.segment.parsing.punctuation_word`)
            head words and be the root (default: they never do; :func:`nlptool.segment.parsing.forbid_heads`).

    The dependency defaults (layer 1, dependent-on-head, ``row``, ``root="none"``, punctuation
    heads nothing) are the best of the ablation of ``make bench-parse`` on half of UD Chinese
    GSDSimp dev: UAS 0.281 on sentences of at most 20 words, **the same as the right-chain baseline
    (0.280) and below right-chain whose punctuation heads nothing (0.302)**; at layer 1 the impact
    is mostly that of the neighbouring words, so these trees are close to chains (docs/segment.md).
        model_words: per sentence, what the model sees for each word (e.g. converted to
            simplified characters), or ``None`` to use the words themselves; the tree keeps ``words``.
    """
    from .parsing import dependency_scores, eisner, forbid_heads, mart, punctuation_word, tree_to_brackets
    from .masking import impact_matrices

    if root not in ("none", "mean"):
        raise ValueError(f"root must be 'none' or 'mean', not {root!r}")
    if layer is None:
        layer = DEPENDENCY_LAYER if mode == "dependency" else -1
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
                sc, root_sc = dependency_scores(F, transpose=(arc == "dependent-on-head"), normalise=normalise)
                if root == "none":
                    root_sc = np.zeros_like(root_sc)
                if not punctuation_heads:
                    sc, root_sc = forbid_heads(sc, root_sc, [punctuation_word(words[i]) for i in idx])
                h, _ = eisner(sc, root_sc)
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


def parse_student_words(parser, word_lists: Sequence[Sequence[str]],
                        model_words: Sequence[Sequence[str] | None] | None = None) -> list[ParseResult]:
    """Dependency trees of word sequences by the self-trained biaffine parser
    (:func:`nlptool.segment.biaffine.parse_with_student`; ``segment --parse-method student``).
    Whitespace words get head ``None`` and are left out, as in :func:`parse_words`;
    ``model_words``: what the parser sees for each word (e.g. simplified characters), or ``None``."""
    from .biaffine import parse_with_student

    idxs = [[i for i, w in enumerate(ws) if w.strip()] for ws in word_lists]
    seen = [[(mw if mw is not None else ws)[i] for i in idx]
            for ws, mw, idx in zip(word_lists, model_words or [None] * len(word_lists), idxs)]
    out = []
    for ws, idx, h in zip(word_lists, idxs, parse_with_student(parser, seen)):
        heads: list[int | None] = [None] * len(ws)
        for local, head in enumerate(h):
            heads[idx[local]] = 0 if head == 0 else idx[head - 1] + 1
        out.append(ParseResult(list(ws), heads=heads))
    return out


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


# The tagger's text layout, vectorised: the same pieces and clauses as split_pieces/tagger_clauses,
# computed for many texts at once with numpy over their code points. Each character gets a class
# (cached per code point); piece and clause boundaries are then array comparisons.
_SPACE, _ALNUM, _SEP, _PUNCT, _MARK, _OTHER = 1, 2, 3, 4, 5, 6
#: Piece kinds of :class:`TaggerLayout` (``piece_kinds`` codes index this tuple).
PIECE_KINDS = ("space", "punct", "alnum", "char")
_LUTS: dict[str, np.ndarray] = {}


def _char_class(ch: str) -> int:
    """The class of one character as :func:`split_pieces` sees it: whitespace, a letter/digit of
    :data:`ALNUM_RUN`, a separator that ALNUM_RUN keeps between two of those (``3.14``), other
    punctuation/symbols, a combining mark (kept with its base character), anything else."""
    if ch.isspace():
        return _SPACE
    if ALNUM_RUN.fullmatch(ch):
        return _ALNUM
    if is_punct_or_space(ch):
        return _SEP if ALNUM_RUN.fullmatch("0" + ch + "0") else _PUNCT
    if unicodedata.category(ch) in ("Mn", "Me", "Mc"):
        return _MARK
    return _OTHER


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def _per_code_point(lut: np.ndarray, cp: np.ndarray, fill) -> np.ndarray:
    """``lut[cp]``, first filling the entries still 0 with ``fill(chr(c))`` (never 0)."""
    v = lut[cp]
    missing = v == 0
    if missing.any():
        for c in np.unique(cp[missing]).tolist():
            lut[c] = fill(chr(c))
        v = lut[cp]
    return v


def _lut(name: str, dtype) -> np.ndarray:
    lut = _LUTS.get(name)
    if lut is None:  # 0x110000 entries, zero pages until touched
        lut = _LUTS[name] = np.zeros(0x110000, dtype=dtype)
    return lut


@dataclass
class TaggerLayout:
    """Pieces, units and clauses of many texts at once, as flat arrays: what
    :func:`split_pieces` and :func:`tagger_clauses` give text by text (the same spans), built by
    :func:`tagger_layout`. Offsets are into ``joined`` (the texts concatenated); text t is
    ``joined[text_offsets[t] : text_offsets[t + 1]]``."""

    texts: Sequence[str]
    joined: str
    text_offsets: np.ndarray  # (n_texts + 1,)
    piece_starts: np.ndarray  # (n_pieces,) ascending; a piece ends where the next starts (or at len(joined))
    piece_kinds: np.ndarray  # (n_pieces,) index into PIECE_KINDS
    unit_pieces: np.ndarray  # (n_units,) the pieces that are units (alnum or char), in order
    unit_starts: np.ndarray  # (n_units,)
    unit_ends: np.ndarray  # (n_units,)
    unit_ids: np.ndarray  # (n_units,) tagger vocabulary ids (TaggerVocab.id_of of the unit's model form)
    clause_offsets: np.ndarray  # (n_clauses + 1,) clause k = units clause_offsets[k] : clause_offsets[k + 1]
    clause_texts: np.ndarray  # (n_clauses,) text of each clause (ascending)

    def unit_keys(self) -> np.ndarray:
        """:func:`nlptool.segment.lexicon.lexicon_key` of every unit's model form, as code points (n_units,)."""
        from .lexicon import lexicon_key

        keys = np.empty(len(self.unit_starts), dtype=np.int64)
        single = self.unit_ends - self.unit_starts == 1
        cp = _code_points(self.joined)
        keys[single] = _per_code_point(_lut("key", np.uint32), cp[self.unit_starts[single]],
                                       lambda ch: ord(lexicon_key(model_form(ch))))
        for u in np.flatnonzero(~single).tolist():
            keys[u] = ord(lexicon_key(model_form(self.joined[self.unit_starts[u] : self.unit_ends[u]])))
        return keys


def tagger_layout(texts: Sequence[str], vocab, max_units: int | None = None) -> TaggerLayout:
    """:class:`TaggerLayout` of ``texts`` for a tagger vocabulary (a
    :class:`nlptool.segment.tagger.TaggerVocab`): pieces as :func:`split_pieces` cuts them, clauses
    as :func:`tagger_clauses` (maximal runs of units, cut every ``max_units`` units, default
    :data:`nlptool.segment.tagger.TAGGER_MAX_UNITS`), computed for all texts at once."""
    from .tagger import TAGGER_MAX_UNITS

    max_units = max_units or TAGGER_MAX_UNITS
    texts = list(texts)
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    toff = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lens, out=toff[1:])
    joined = "".join(texts)
    N = len(joined)
    cp = _code_points(joined)
    cls = _per_code_point(_lut("class", np.uint8), cp, _char_class)
    first = np.zeros(N, dtype=bool)
    first[toff[:-1][lens > 0]] = True
    last = np.zeros(N, dtype=bool)
    last[toff[1:][lens > 0] - 1] = True
    prev_cls = np.zeros(N, dtype=np.uint8)
    prev_cls[1:] = cls[:-1]
    prev_cls[first] = 0
    next_cls = np.zeros(N, dtype=np.uint8)
    next_cls[:-1] = cls[1:]
    next_cls[last] = 0
    # ALNUM_RUN = A+(?:DA+)*: every letter/digit is in a run; a separator only between two of them
    alnum = (cls == _ALNUM) | ((cls == _SEP) & (prev_cls == _ALNUM) & (next_cls == _ALNUM))
    kind = np.full(N, 3, dtype=np.int8)
    kind[(cls == _PUNCT) | (cls == _SEP)] = 1
    kind[alnum] = 2
    kind[cls == _SPACE] = 0
    prev_kind = np.full(N, -1, dtype=np.int8)
    prev_kind[1:] = kind[:-1]
    prev_kind[first] = -1
    same_char = np.zeros(N, dtype=bool)
    same_char[1:] = cp[1:] == cp[:-1]
    # a new piece: a new kind; punctuation: another character (a run repeats one); a character
    # that is not a combining mark (marks stay with their base)
    start = (kind != prev_kind) | ((kind == 1) & ~same_char) | ((kind == 3) & (cls != _MARK))
    ps = np.flatnonzero(start)
    pe = np.append(ps[1:], N)
    pkind = kind[ps]
    is_unit = pkind >= 2
    up = np.flatnonzero(is_unit)
    us, ue = ps[up], pe[up]
    # clauses: maximal runs of units inside one text, cut every max_units units
    run_start = first[us].copy()
    run_start[0:1] = True
    run_start[1:] |= ~is_unit[up[1:] - 1]
    run_id = np.cumsum(run_start) - 1
    pos = np.arange(len(up)) - np.flatnonzero(run_start)[run_id]
    clause_start = run_start | (pos % max_units == 0)
    coff = np.append(np.flatnonzero(clause_start), len(up))
    ctext = np.searchsorted(toff, us[coff[:-1]], side="right") - 1
    # unit ids: one character through a per-code-point table of this vocabulary, runs one by one
    ids = np.empty(len(up), dtype=np.int64)
    single = ue - us == 1
    if not hasattr(vocab, "_nlptool_cp_ids"):
        vocab._nlptool_cp_ids = np.zeros(0x110000, dtype=np.int32)  # id + 1
    ids[single] = _per_code_point(vocab._nlptool_cp_ids, cp[us[single]],
                                  lambda ch: vocab.id_of(model_form(ch)) + 1) - 1
    for u in np.flatnonzero(~single).tolist():
        ids[u] = vocab.id_of(model_form(joined[us[u] : ue[u]]))
    return TaggerLayout(texts, joined, toff, ps, pkind, up, us, ue, ids, coff, ctext)


class TaggerPass:
    """One forward pass of a character tagger over ``texts``: the layout of every text
    (:class:`TaggerLayout`) and ``p(join)`` of every pair of neighbouring units, flat
    (``probs_flat``; clause k's pairs start at ``clause_offsets[k] - k``). :meth:`decode` turns it
    into words under any decoding settings without running the model again. ``pieces``,
    ``clauses`` and ``probs`` give the same as per-text lists (built on first use)."""

    def __init__(self, layout: TaggerLayout, probs_flat: np.ndarray):
        self.layout = layout
        self.probs_flat = probs_flat
        self._keys: list[str] | None = None
        self._cache: dict = {}

    @property
    def texts(self) -> Sequence[str]:
        return self.layout.texts

    @property
    def pieces(self) -> list[list[Piece]]:
        """The :func:`split_pieces` of every text."""
        if "pieces" not in self._cache:
            lay = self.layout
            ends = np.append(lay.piece_starts[1:], len(lay.joined)).tolist()
            bounds = np.searchsorted(lay.piece_starts, lay.text_offsets).tolist()
            starts, kinds, toff = lay.piece_starts.tolist(), lay.piece_kinds.tolist(), lay.text_offsets.tolist()
            self._cache["pieces"] = [[Piece(starts[i] - toff[t], ends[i] - toff[t], PIECE_KINDS[kinds[i]])
                                      for i in range(bounds[t], bounds[t + 1])] for t in range(len(self.texts))]
        return self._cache["pieces"]

    @property
    def clauses(self) -> list[Clause]:
        """The clauses of all texts, in order (:func:`tagger_clauses`)."""
        if "clauses" not in self._cache:
            lay = self.layout
            us, ue, ids = lay.unit_starts.tolist(), lay.unit_ends.tolist(), lay.unit_ids.tolist()
            toff, coff = lay.text_offsets.tolist(), lay.clause_offsets.tolist()
            out = []
            for k, t in enumerate(lay.clause_texts.tolist()):
                r = range(coff[k], coff[k + 1])
                out.append(Clause(t, [(us[u] - toff[t], ue[u] - toff[t]) for u in r], [[ids[u]] for u in r]))
            self._cache["clauses"] = out
        return self._cache["clauses"]

    @property
    def probs(self) -> list[np.ndarray]:
        """``p(join)`` per clause, shape ``(n_k - 1,)``."""
        coff = self.layout.clause_offsets
        start = (coff[:-1] - np.arange(len(coff) - 1)).tolist()
        return [self.probs_flat[a : a + n - 1] for a, n in zip(start, np.diff(coff).tolist())]

    def keys(self) -> list[str]:
        """:func:`clause_keys` of every clause (computed once)."""
        if self._keys is None:
            text = self.layout.unit_keys().astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")
            coff = self.layout.clause_offsets.tolist()
            self._keys = [text[a:b] for a, b in zip(coff, coff[1:])]
        return self._keys

    def decode(self, lexicon=None, *, weight: float = 0.0, bonus: float = 0.0,
               oov_scale: float | None = None, impacts: bool = True) -> list[SegmentResult]:
        """Words per text: with a :class:`nlptool.segment.lexicon.Lexicon`, every clause by
        :func:`nlptool.segment.lexicon.lexicon_decode` with these settings (run for all clauses at
        once by :func:`nlptool.segment.lexicon.lexicon_decode_batch`); without, ``p(join) >= 0.5``.
        ``impacts`` (when asked) holds the probabilities ``p(join)`` rounded to 4 places, per clause."""
        from .lexicon import lexicon_decode_batch

        lay = self.layout
        if lexicon is not None:
            joins = lexicon_decode_batch(lay.unit_keys(), self.probs_flat, lay.clause_offsets, lexicon,
                                         weight=weight, bonus=bonus, oov_scale=oov_scale)
        else:
            joins = self.probs_flat >= 0.5
        # a word starts at every piece except a unit joined to the unit before it in its clause
        n_units, n_clauses = len(lay.unit_starts), len(lay.clause_offsets) - 1
        later = np.ones(n_units, dtype=bool)
        later[lay.clause_offsets[:-1]] = False
        glued = np.zeros(n_units, dtype=bool)
        clause_of = np.repeat(np.arange(n_clauses), np.diff(lay.clause_offsets))
        glued[later] = joins[(np.arange(n_units) - clause_of - 1)[later]]
        word_start = np.ones(len(lay.piece_starts), dtype=bool)
        word_start[lay.unit_pieces[glued]] = False
        bounds = np.append(lay.piece_starts[word_start], len(lay.joined))
        per_text = np.searchsorted(bounds, lay.text_offsets).tolist()
        b = bounds.tolist()
        j = lay.joined
        words = [j[x:y] for x, y in zip(b, b[1:])]
        imps: list[list[list[float]]] = [[] for _ in self.texts]
        if impacts:
            for t, p in zip(lay.clause_texts.tolist(), self.probs):
                imps[t].append([round(float(x), 4) for x in p])
        return [SegmentResult(words[per_text[t] : per_text[t + 1]], imps[t]) for t in range(len(self.texts))]


def tagger_pass(tagger, texts: Sequence[str], *, batch_size: int = 256) -> TaggerPass:
    """Run a character tagger once over ``texts``: one forward pass per clause, clauses of all
    texts batched and length-sorted (:func:`tagger_layout`, then
    :func:`nlptool.segment.tagger.join_probabilities_flat`)."""
    from .tagger import join_probabilities_flat

    layout = tagger_layout(texts, tagger.tokenizer)
    probs = join_probabilities_flat(tagger, layout.unit_ids, layout.clause_offsets, batch_size=batch_size)
    return TaggerPass(layout, probs)


def segment_with_tagger(tagger, texts: Sequence[str], *, batch_size: int = 256, progress=None,
                        lexicon: bool = True, impacts: bool = True) -> list[SegmentResult]:
    """Segment texts with a self-trained character tagger (:mod:`nlptool.segment.tagger`, e.g. the built-in
    ``zh-seg-mini``): :func:`tagger_pass`, then :meth:`TaggerPass.decode`. When the tagger carries a
    unigram word lexicon (and ``lexicon`` is True) each clause is decoded with it and the settings in
    the tagger's config (:func:`nlptool.segment.lexicon.decode_settings`); otherwise neighbours are joined
    when ``p(join) >= 0.5``. ``impacts`` holds the probabilities ``p(join)`` (when ``impacts`` is True).

    Returns one :class:`SegmentResult` per text; ``"".join(r.words) == text`` always holds.
    """
    from .lexicon import decode_settings

    tp = tagger_pass(tagger, texts, batch_size=batch_size)
    if progress is not None:
        progress(len(texts))
    lex = getattr(tagger, "lexicon", None) if lexicon else None
    settings = decode_settings(tagger.config) if lex is not None else {}
    return tp.decode(lex, impacts=impacts, **settings)


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


class _CharMap(dict):
    """``ord(c) -> c converted alone`` for :meth:`str.translate`, filled on first sight of each
    character: OpenCC's conversion of the one character, or the character itself when OpenCC gives
    anything but one character or when it lies below the CJK blocks (nothing there changes script)."""

    def __init__(self, config: str):
        super().__init__()
        self.config = config

    def __missing__(self, o: int) -> str:
        c = chr(o)
        m = c
        if o >= 0x2E80:
            m = _opencc(self.config).convert(c)
            if len(m) != 1:
                m = c
        if len(self) < 200_000:
            self[o] = m
        return m


class _ScriptVote(dict):
    """``ord(c) -> "T"`` when only t2s changes ``c``, ``"S"`` when only s2t does, None (dropped)
    otherwise: :func:`looks_traditional` counts the votes of a text with one :meth:`str.translate`."""

    def __missing__(self, o: int) -> str | None:
        c = chr(o)
        vote = (_CHAR_MAPS["t2s"][o] != c) - (_CHAR_MAPS["s2t"][o] != c)
        v = "T" if vote > 0 else "S" if vote < 0 else None
        if len(self) < 200_000:
            self[o] = v
        return v


_CHAR_MAPS: dict[str, _CharMap] = {"t2s": _CharMap("t2s"), "s2t": _CharMap("s2t")}
_SCRIPT_VOTE = _ScriptVote()


def convert_chars(text: str, config: str = "t2s") -> str:
    """Character-aligned script conversion with OpenCC (``t2s``: traditional -> simplified,
    ``s2t``: the reverse): every character is converted on its own and kept when OpenCC maps it
    to anything other than exactly one character, so ``len(out) == len(text)`` and offsets agree.
    (Phrase-level conversion is not used: it can change the length.) One :meth:`str.translate`
    with a per-character table filled on first sight.

    Raises:
        NlptoolError: the ``opencc`` package is not installed.
    """
    return text.translate(_CHAR_MAPS[config])


def looks_traditional(text: str) -> bool:
    """Auto-detection: True when more characters change under t2s than under s2t (simplified text
    is nearly a fixed point of t2s, traditional text of s2t). False when OpenCC is not installed."""
    if not text or max(text) < "\u2e80":
        return False
    try:
        import opencc  # noqa: F401
    except ImportError:  # without OpenCC, auto means no conversion (t2s says how to get it)
        return False
    votes = text.translate(_SCRIPT_VOTE)
    return votes.count("T") > votes.count("S")


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


# ------------------------------------------------------------------------ windows of long texts

#: A text longer than this many characters is segmented window by window (:func:`text_windows`),
#: so the memory of the model's pass grows with the window, not with the text (a line of millions
#: of characters with no line break: the clauses of the whole line at once took ~650 bytes per
#: character). Shorter texts are segmented whole, as before.
SEGMENT_WINDOW = 1 << 16


def _masking_max_tokens(loaded, max_clause: int = MAX_CLAUSE) -> int:
    """Most tokens in one clause of :func:`segment_texts` (the model's window less [CLS] and [SEP])."""
    return min(loaded.max_length - 2, 4 * max_clause)


def _is_separator(ch: str) -> bool:
    """True for the punctuation that :data:`ALNUM_RUN` keeps between two letters/digits (``3.14``)."""
    return ALNUM_RUN.fullmatch("0" + ch + "0") is not None


def _unit_class(ch: str) -> str:
    """``A`` a letter/digit of :data:`ALNUM_RUN`, ``M`` a combining mark, ``P`` a character that is
    a piece of its own (``char``), ``-`` whitespace or punctuation."""
    if is_punct_or_space(ch):
        return "-"
    if ALNUM_RUN.fullmatch(ch):
        return "A"
    if unicodedata.category(ch) in ("Mn", "Me", "Mc"):
        return "M"
    return "P"


def _clean_cut(s: str, b: int, units: bool) -> bool:
    """True when ``b`` (0 < b < len(s)) is a piece edge of ``s`` (:func:`split_pieces`) that the
    characters ``s[b - 1]`` and ``s[b]`` alone decide, so that ``s[:b]`` and ``s[b:]`` cut into the
    same pieces as ``s`` does. ``units=False``: the piece before ``b`` is whitespace or punctuation
    (not an ALNUM_RUN separator), so a new clause starts at ``b``. ``units=True``: both sides are
    units (a character or a letter/digit run, not two letters/digits)."""
    c, d = s[b - 1], s[b]
    if not units:
        if c.isspace():
            return not d.isspace()
        return is_punct_or_space(c) and d != c and not _is_separator(c)
    left, right = _unit_class(c), _unit_class(d)
    return right in "PA" and left in "PMA" and not (left == "A" and right == "A")


def _straddles(text: str, b: int, user_dict: UserDict | None) -> bool:
    """True when a word of ``user_dict`` occurs in ``text`` across position ``b``."""
    if not user_dict or not user_dict.words:
        return False
    for L in user_dict.lengths:
        for s in range(max(0, b - L + 1), b):
            if s + L <= len(text) and text[s: s + L] in user_dict.words:
                return True
    return False


def text_windows(text: str, size: int | None = None, *, original: str | None = None, clause_starts=None,
                 user_dict: UserDict | None = None):
    """Cut ``text`` (what the model sees) into windows ``(start, end)`` that tile it, each at least
    ``size`` characters (default :data:`SEGMENT_WINDOW`) but the last, such that segmenting the
    windows one by one gives exactly the words of segmenting ``text`` whole: every cut is where a
    clause starts and no unit, piece or clause crosses it.

    A cut goes after the first whitespace or punctuation piece at or after ``start + size``
    (:func:`_clean_cut`); in a stretch without one (a line with no punctuation), at the start of
    a clause that ``clause_starts(s)`` (``s`` a prefix of the rest of the text; returns the
    ``(start, end)`` of each clause's first unit, e.g. from :func:`tagger_clauses`) reports
    between two units, looking twice as far each time none is found. Cuts are also clean in
    ``original`` (the input's own characters, same length) and never inside an occurrence of a
    word of ``user_dict`` (so :func:`apply_user_dict` gives the same words window by window).
    Memory: O(size) besides the text, in the usual case where such a cut occurs every few ``size``.
    """
    size = SEGMENT_WINDOW if size is None else size
    n = len(text)
    orig = text if original is None else original

    def ok(b: int, units: bool) -> bool:
        return (_clean_cut(text, b, units) and (orig is text or _clean_cut(orig, b, units))
                and not _straddles(orig, b, user_dict))

    a = 0
    while n - a > size:
        cut, searched, span = None, a + size, 2 * size
        while cut is None:
            end = min(n, a + span)
            cut = next((b for b in range(searched, end) if ok(b, False)), None)
            searched = end
            if cut is None and clause_starts is not None:
                sub = text[a:end]
                cut = next((a + s for s, e in clause_starts(sub)
                            if s >= size and (e + 2 <= len(sub) or end == n) and a + s < n and ok(a + s, True)), None)
            if end == n:
                break
            span *= 2
        if cut is None:
            break
        yield a, cut
        a = cut
    yield a, n


def _segment_windows(texts, given_words, windowed: dict, options: dict) -> list:
    """:func:`segment_or_parse` when some texts are cut into windows (``windowed``: record index ->
    ``(convert, windows)``): the other records together, as before; each long text window by
    window (its words concatenated, then parsed as given words when ``parse`` asks)."""
    n = len(texts)
    results: list = [None] * n
    rest = [i for i in range(n) if i not in windowed]
    if rest:
        done = segment_or_parse([texts[i] for i in rest], **options,
                                given_words=[given_words[i] for i in rest] if given_words else None)
        for i, r in zip(rest, done):
            results[i] = r
    for i, (convert, windows) in windowed.items():
        text = texts[i]
        words: list[str] = []
        for a, b in windows:
            (r,) = segment_or_parse([text[a:b]], **{**options, "convert": convert, "parse": "none"})
            words.extend(r["words"])
        if options["parse"] != "none":
            (results[i],) = segment_or_parse([None], **options, given_words=[words])
        else:
            results[i] = {"words": words}
    return results


def _long_texts(texts, given_words, segmenter, method: str, convert: str, user_dict) -> dict:
    """Record index -> ``(convert, windows)`` of each text that :func:`text_windows` cuts in two
    or more (the ``auto`` script decision is taken on the whole text, as for a short one)."""
    out = {}
    for i, text in enumerate(texts):
        if text is None or len(text) <= SEGMENT_WINDOW or (given_words and given_words[i] is not None):
            continue
        seen = model_text(text, convert)
        conv = "t2s" if convert == "t2s" or seen != text else "none"
        if method == "tagger":
            def starts(s):
                return [c.spans[0] for c in tagger_clauses(s, 0, segmenter.tokenizer)[1]]
        elif method == "masking":
            encode = UnitEncoder(segmenter.tokenizer)

            def starts(s, encode=encode):
                return [c.spans[0] for c in clauses_of(s, 0, encode, _masking_max_tokens(segmenter))[1]]
        else:
            return {}  # segment_or_parse refuses the method
        windows = list(text_windows(seen, original=text, clause_starts=starts, user_dict=user_dict))
        if len(windows) > 1:
            out[i] = (conv, windows)
    return out


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
    layer: int | None = None,
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
        layer: hidden layer of the BERT; ``None``: the last for ``masking`` and constituency,
            :data:`DEPENDENCY_LAYER` for dependency parsing.
        user_dict: words never split (:func:`read_user_dict`).
        convert: ``auto``/``t2s``/``none``: traditional -> simplified before the model
            (:func:`model_text`); output words are always the input's own characters.
        fallback: the two-unit-clause threshold for ``masking`` (see :func:`auto_fallback`).

    Returns:
        per record a dict ``{"words": [...]}`` (plus ``"tree"`` or ``"heads"``), or a
        ``ValueError`` for a record whose given words are not a list of strings. A text longer
        than :data:`SEGMENT_WINDOW` characters is segmented window by window
        (:func:`text_windows`): the same words in memory that grows with the window.
    """
    windowed = _long_texts(texts, given_words, segmenter, method, convert, user_dict)
    if windowed:
        options = dict(segmenter=segmenter, method=method, parser=parser, parse=parse, threshold=threshold,
                       layer=layer, batch_size=batch_size, user_dict=user_dict, convert=convert, fallback=fallback)
        return _segment_windows(texts, given_words, windowed, options)
    n = len(texts)
    given_words = given_words or [None] * n
    results: list = [None] * n
    word_lists: list = [None] * n
    seg_idx = [i for i in range(n) if given_words[i] is None]
    originals = [texts[i] or "" for i in seg_idx]
    seen = [model_text(t, convert) for t in originals]
    if seg_idx:
        if method == "tagger":
            segs = segment_with_tagger(segmenter, seen, batch_size=batch_size, impacts=False)
        elif method == "masking":
            segs = segment_texts(segmenter, seen, threshold=threshold, layer=-1 if layer is None else layer,
                                 batch_size=batch_size, fallback=fallback)
        else:
            raise UsageError(f"method must be tagger or masking, not {method!r}")
        for i, orig, model_seen, s in zip(seg_idx, originals, seen, segs):
            words = s.words
            if model_seen is not orig:  # back to the original characters (same offsets)
                words, k = [], 0
                for w in s.words:
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
        if isinstance(parser, LoadedParser):  # the self-trained student (--parse-method student)
            if parse != "dependency":
                raise UsageError("the biaffine parser gives dependency trees only (--parse dependency)")
            parsed = parse_student_words(parser, lists, seen_words)
        else:
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

"""Unigram-LM tokenization: exact Viterbi sampling, Viterbi decoding and the biased 2023 rule.

A unigram language model gives every piece ``w`` a log-probability ``log p(w)`` (nats); a
segmentation ``seg = (w_1, ..., w_m)`` of a text has ``log P(seg) = sum_i log p(w_i)``. The
segmentations of a text are the paths of a *lattice* (positions ``0..n``, an edge ``i -> j`` for
every piece equal to ``text[i:j]``).

* **Viterbi sampling** (:meth:`UnigramModel.sample`, ``method="ffbs"``) draws a segmentation with
  probability exactly ``P(seg)**alpha / Z(alpha)``, ``Z(alpha) = sum over all paths``. It is
  forward-filtering backward-sampling (FFBS), run here as backward filtering (``beta[i]`` = sum of
  ``P**alpha`` over the paths from ``i`` to the end) then forward sampling (from position ``i``
  take edge ``i -> j`` with probability ``p(w)**alpha * beta[j] / beta[i]``). This is the
  corrected rule of Su, "随机分词再探: 从Viterbi Sampling到完美采样算法" (kexue.fm, 2023-10-16),
  which is equivalent to SentencePiece's ``Lattice::Sample`` (``nbest_size=-1``) and to BytePiece.
  ``alpha = 0`` is uniform over all segmentations, ``alpha -> inf`` is the best path.
* **Viterbi decoding** (:meth:`UnigramModel.decode`, ``alpha = inf``): the best path, computed with
  the same arithmetic and tie-breaking as the reference implementation of the model's source, so
  the jieba dictionary reproduces ``jieba.cut(text, HMM=False)`` and a SentencePiece model
  reproduces ``SentencePieceProcessor.encode(text, out_type=str)``.
* **su2023** (``method="su2023"``): the first rule of Su, "随机分词浅探: 从Viterbi Decoding到Viterbi
  Sampling" (kexue.fm, 2023-09-16): run Viterbi forward, but at each end position replace the
  kept predecessor by a new candidate with probability ``sigmoid(alpha * (score_new - score_kept))``
  (the kept score is the chosen candidate's score, not a sum). It is **biased**: the result does
  not follow ``P**alpha / Z`` (see the tests and the README, section tokenize-sample). Kept only so users can
  reproduce the post.

Models (:func:`load_unigram_model`): jieba's ``dict.txt`` (default) or any file in its format, a
SentencePiece UNIGRAM ``.model``, a BytePiece JSON model (byte-level; tokens are ``bytes``).
"""

from __future__ import annotations

import base64
import json
import math
import operator
import os
import random as _random
import re
import unicodedata
from array import array
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Iterator, Sequence, Union

from ..errors import InputDataError, ModelError, UsageError

Piece = Union[str, bytes]
INF = float("inf")

# jieba 0.42.1 pre-split (jieba/__init__.py: re_han_default, re_skip_default, re_eng): blocks of
# these characters go through the lattice, everything else is split on whitespace and then into
# single characters; in a Han block consecutive single ASCII letters/digits (re_eng) are glued.
_JIEBA_RE_HAN = re.compile("([\u4E00-\u9FD5a-zA-Z0-9+#&\\._%\\-]+)", re.U)
_JIEBA_RE_SKIP = re.compile("(\r\n|\\s)", re.U)
# BytePiece's normalize(): NFC, then lines (with their trailing newlines) are tokenized separately.
_BYTEPIECE_RE_LINES = re.compile(".*\n+|.+")

SP_UNK_PENALTY = 10.0  # sentencepiece kUnkPenalty: unknown character score = min_score - 10
#: the largest K of ``-k/--num-samples`` and ``--nbest`` (:func:`check_k`)
MAX_K = 1_000_000
#: the most units (characters; bytes for BytePiece) of the normalized text that the K
#: segmentations of one line may hold in all: K x line length, K counted as written (fewer when the
#: line has fewer segmentations, for n-best and sampling without replacement); :func:`tokenize`
#: refuses a longer line, whose output alone (about 90 bytes of memory per unit, a JSON line of
#: 10 MB per 3 million units) would not fit
MAX_OUTPUT_UNITS = 10_000_000


def piece_to_str(piece: Piece) -> str:
    """A token as text: ``str`` unchanged; ``bytes`` decoded as UTF-8, each byte that is not part
    of a complete UTF-8 character written as ``<0xNN>`` (SentencePiece's byte-piece notation)."""
    if not isinstance(piece, bytes):
        return piece
    out, rest = [], piece
    while rest:
        try:
            out.append(rest.decode("utf-8"))
            break
        except UnicodeDecodeError as exc:
            out.append(rest[:exc.start].decode("utf-8"))
            out.extend(f"<0x{b:02X}>" for b in rest[exc.start:exc.end])
            rest = rest[exc.end:]
    return "".join(out)


@dataclass
class Segmentation:
    """One segmentation of a text.

    Attributes:
        tokens: the pieces, in order (``str``; ``bytes`` for a byte-level model).
        logp: ``log P(seg)`` in nats under the unigram LM: the sum of the log-probabilities of the
            lattice pieces (unknown characters get the model's unknown score; text outside the
            lattice, e.g. jieba's non-Han characters, contributes 0).
    """

    tokens: list
    logp: float


# ---------------------------------------------------------------------------------------------
# A generic lattice: reference algorithms (log domain), brute force, the su2023 rule
# ---------------------------------------------------------------------------------------------


def _logsumexp(xs: Sequence[float]) -> float:
    m = max(xs)
    if m == -INF:
        return -INF
    return m + math.log(math.fsum(math.exp(x - m) for x in xs))


@dataclass
class Lattice:
    """Positions ``0..n``; ``edges[i]`` lists ``(j, score)`` for the pieces ``text[i:j]`` (``i < j <= n``).

    ``score`` is a log-probability (or any real score). Every position must have an edge and every
    edge must end at ``<= n`` so that every prefix path can be completed.
    """

    n: int
    edges: list = field(default_factory=list)

    @classmethod
    def from_scores(cls, text: str, scores: dict) -> "Lattice":
        """The lattice of ``text`` with an edge for each substring that is a key of ``scores``."""
        n = len(text)
        edges = [[(j, scores[text[i:j]]) for j in range(i + 1, n + 1) if text[i:j] in scores] for i in range(n)]
        return cls(n, edges)

    def paths(self) -> Iterator[tuple]:
        """Every path from 0 to n as a tuple of ``(i, j)`` edges (brute force; small lattices only)."""

        def rec(i):
            if i == self.n:
                yield ()
                return
            for j, _ in self.edges[i]:
                for rest in rec(j):
                    yield ((i, j),) + rest

        yield from rec(0)

    def path_score(self, path) -> float:
        """Sum of the edge scores of ``path``."""
        lookup = {(i, j): s for i in range(self.n) for j, s in self.edges[i]}
        return sum(lookup[e] for e in path)

    def log_beta(self, alpha: float) -> list:
        """``beta[i] = log sum over paths i -> n of exp(alpha * score)``; ``beta[0] = log Z(alpha)``."""
        beta = [0.0] * (self.n + 1)
        for i in range(self.n - 1, -1, -1):
            beta[i] = _logsumexp([alpha * s + beta[j] for j, s in self.edges[i]])
        return beta

    def sample(self, alpha: float, rng: _random.Random, num_samples: int = 1) -> list:
        """Exact FFBS in the log domain: paths drawn with probability ``exp(alpha*score)/Z(alpha)``."""
        beta = self.log_beta(alpha)
        out = []
        for _ in range(num_samples):
            i, path = 0, []
            while i < self.n:
                cands = self.edges[i]
                u = rng.random()
                acc = 0.0
                j = cands[-1][0]
                for jj, s in cands:
                    acc += math.exp(alpha * s + beta[jj] - beta[i])
                    if u < acc:
                        j = jj
                        break
                path.append((i, j))
                i = j
            out.append(tuple(path))
        return out

    def sample_su2023(self, alpha: float, rng: _random.Random) -> tuple:
        """Su's first (biased) Viterbi-sampling rule, 2023-09-16.

        Forward over end positions ``e = 1..n``; the candidates ``i -> e`` are visited longest
        first (``i`` increasing); a candidate with path score ``score[i] + s`` replaces the kept one
        with probability ``sigmoid(alpha * (new - kept))`` (the first always), and ``score[e]``
        becomes the score of the kept candidate. Does NOT sample from ``P**alpha / Z``.
        """
        by_end = [[] for _ in range(self.n + 1)]
        for i in range(self.n):
            for j, s in self.edges[i]:
                by_end[j].append((i, s))
        score = [0.0] + [-INF] * self.n
        route = [0] * (self.n + 1)
        for e in range(1, self.n + 1):
            for i, s in sorted(by_end[e]):
                new = score[i] + s
                if score[e] == -INF or rng.random() < _sigmoid(alpha * (new - score[e])):
                    score[e], route[e] = new, i
        path, e = [], self.n
        while e > 0:
            path.append((route[e], e))
            e = route[e]
        return tuple(reversed(path))


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


# ---------------------------------------------------------------------------------------------
# Unigram models
# ---------------------------------------------------------------------------------------------


def build_prefix_dict(logp: dict, prefixes=()) -> dict:
    """``{piece: log p}`` plus every proper prefix of a piece (and every prefix of ``prefixes``,
    including itself) mapped to ``None``: a lattice walk from position ``k`` stops at the first
    substring that is not a key (jieba's ``gen_pfdict`` idea)."""
    pfx: dict = {}
    for w in logp:
        for k in range(1, len(w)):
            pfx.setdefault(w[:k], None)
    for w in prefixes:
        for k in range(1, len(w) + 1):
            pfx.setdefault(w[:k], None)
    pfx.update(logp)
    return pfx


class UnigramModel:
    """A unigram LM over pieces with a prefix dictionary for fast lattice construction.

    Args:
        logp: ``{piece: log p(piece)}`` (nats). Pieces are ``str`` (character level) or ``bytes``.
        kind: ``"jieba"``, ``"sentencepiece"``, ``"bytepiece"`` (their pre-split, normalization,
            decoding tie-breaks and output rules) or ``"plain"`` (the whole text is one lattice,
            tokens are the lattice pieces; decoding as jieba with ``unk_rule="if_empty"``, else as
            SentencePiece without float32 rounding).
        unk_logp: score of an unknown single character (byte).
        unk_rule: ``"if_empty"`` (jieba: a single character is added only when no piece starts
            there) or ``"if_no_single"`` (sentencepiece: when no one-character piece starts there).
        prefixes: extra keys that only continue a prefix walk (e.g. sentencepiece unused pieces).
        name: shown in messages.
        sp: the ``sentencepiece.SentencePieceProcessor`` of a ``.model`` file (kind ``"sentencepiece"``).
        byte_fallback: the SentencePiece model writes unknown characters as ``<0xNN>`` byte pieces.
        sp_native: sample and n-best decode with the ``sentencepiece`` library itself (same
            distribution, C++ speed); set by :func:`load_sentencepiece` when the model has no
            user-defined pieces.
        cache_size: lattices kept per (block, alpha) for repeated texts (0 disables).
        pfx, nats_per_char: precomputed :func:`build_prefix_dict` and constant ``c`` (a load cache).

    The per-alpha edge weights are ``exp(alpha * (log p(w) + c * len(w)))``; the constant
    ``c`` (nats per character of a typical piece) multiplies every full path by the same
    ``exp(alpha * c * n)``, so the sampling distribution is unchanged while the linear-domain
    sums stay far from under/overflow. A block whose sums still leave ``[1e-280, 1e280]``, and
    every block when ``alpha`` is so large that a weight would leave ``exp([-700, 700])`` (about
    alpha > 10 for jieba's dictionary), is sampled in the log domain (:class:`Lattice`; exact,
    slower).
    """

    def __init__(self, logp: dict, *, kind: str, unk_logp: float, unk_rule: str, prefixes=(),
                 name: str = "", cache_size: int = 1024, sp=None, byte_fallback: bool = False,
                 sp_native: bool = False, pfx: dict | None = None,
                 nats_per_char: float | None = None):
        if unk_rule not in ("if_empty", "if_no_single"):
            raise ValueError(unk_rule)
        self.kind = kind
        self.name = name
        self.logp = logp
        self.unk_logp = float(unk_logp)
        self.unk_rule = unk_rule
        self.sp = sp
        self.byte_fallback = byte_fallback
        self.sp_native = bool(sp_native and sp is not None)
        if pfx is None:
            pfx = build_prefix_dict(logp, prefixes)
        self._pfx = pfx
        self.nats_per_char = self._typical_nats_per_char() if nats_per_char is None else nats_per_char
        self._max_abs_cache: float | None = None
        self._weights: dict = {}
        self.cache_size = cache_size
        self._cache: OrderedDict = OrderedDict()

    def __len__(self) -> int:
        return len(self.logp)

    def _typical_nats_per_char(self) -> float:
        num = den = 0.0
        for w, lp in self.logp.items():
            p = math.exp(lp)
            num -= p * lp
            den += p * len(w)
        return num / den if den > 0 else 0.0

    # -- pre-split -------------------------------------------------------------------------

    def blocks(self, text: str) -> list:
        """``[(segment, in_lattice)]`` covering the (normalized) text; segments not in the lattice
        are emitted as they are (one token each)."""
        if self.kind == "jieba":
            out = []
            for blk in _JIEBA_RE_HAN.split(text):
                if not blk:
                    continue
                if _JIEBA_RE_HAN.match(blk):
                    out.append((blk, True))
                else:
                    for x in _JIEBA_RE_SKIP.split(blk):
                        if not x:
                            continue
                        if _JIEBA_RE_SKIP.match(x):
                            out.append((x, False))
                        else:
                            out.extend((ch, False) for ch in x)
            return out
        if self.kind == "sentencepiece":
            norm = self.sp.normalize(text)
            return [(norm, True)] if norm else []
        if self.kind == "bytepiece":
            text = unicodedata.normalize("NFC", text)
            return [(t.encode("utf-8"), True) for t in _BYTEPIECE_RE_LINES.findall(text)]
        if self.kind == "plain":
            return [(text, True)] if text else []
        raise ValueError(self.kind)

    def normalize(self, text: str):
        """What the tokens concatenate to: the text itself (jieba), the SentencePiece-normalized
        text (``▁`` for spaces), or the NFC UTF-8 bytes (BytePiece)."""
        if self.kind == "sentencepiece":
            return self.sp.normalize(text)
        if self.kind == "bytepiece":
            return unicodedata.normalize("NFC", text).encode("utf-8")
        return text

    # -- lattices ----------------------------------------------------------------------------

    def _edges(self, blk) -> list:
        """``edges[i] = [(j, log p)]`` for the block (unknown characters included)."""
        pfx, n = self._pfx, len(blk)
        edges = []
        for k in range(n):
            lst = []
            e = k + 1
            lp = pfx.get(blk[k:e], False)
            while lp is not False:
                if lp is not None:
                    lst.append((e, lp))
                if e >= n:
                    break
                e += 1
                lp = pfx.get(blk[k:e], False)
            if self.unk_rule == "if_empty":
                if not lst:
                    lst.append((k + 1, self.unk_logp))
            elif not lst or lst[0][0] != k + 1:
                lst.insert(0, (k + 1, self.unk_logp))
            edges.append(lst)
        return edges

    def lattice(self, blk) -> Lattice:
        """The :class:`Lattice` of one block (for tests, the su2023 rule and the log-domain path)."""
        return Lattice(len(blk), self._edges(blk))

    def _weights_for(self, alpha: float):
        """``(weights, unk_weight)`` for ``alpha``: ``weights`` maps a piece to
        ``exp(alpha * (log p + c * len))`` and is filled on demand (:meth:`_filter`), so a short
        run never pays for the whole dictionary (the last four alphas are kept). ``None`` when the
        unknown weight's exponent leaves [-700, 700] (large alpha): every block then goes through
        the exact log-domain path; a piece whose exponent leaves that range does the same for
        its block."""
        if alpha in self._weights:
            return self._weights[alpha]
        unk_x = alpha * (self.unk_logp + self.nats_per_char)
        got = None if not -700 <= unk_x <= 700 else ({}, math.exp(unk_x))
        if len(self._weights) >= 4:
            self._weights.pop(next(iter(self._weights)))
        self._weights[alpha] = got
        return got

    def _filter(self, blk, alpha: float):
        """Backward filtering over one block: ``(ends, probs, beta)`` with ``probs[k][t]`` =
        weight of edge ``k -> ends[k][t]`` times ``beta[ends[k][t]]``; ``None`` when the linear
        sums leave the safe range."""
        got = self._weights_for(alpha)
        if got is None:
            return None
        W, unk_w = got
        pfx, c, exp = self._pfx, self.nats_per_char, math.exp
        n = len(blk)
        beta = [0.0] * (n + 1)
        beta[n] = 1.0
        E = [None] * n
        P = [None] * n
        if_empty = self.unk_rule == "if_empty"
        get = W.get
        for k in range(n - 1, -1, -1):
            e = k + 1
            piece = blk[k:e]
            w = get(piece)
            if w is None:
                lp = pfx.get(piece, False)
                if lp is not False:
                    if lp is None:
                        w = 0.0
                    else:
                        x = alpha * (lp + c * e - c * k)
                        if not -700 <= x <= 700:
                            return None
                        w = exp(x)
                    W[piece] = w
            ends = []
            ps = []
            while w is not None:
                if w:
                    ends.append(e)
                    ps.append(w * beta[e])
                if e == n:
                    break
                e += 1
                piece = blk[k:e]
                w = get(piece)
                if w is None:
                    lp = pfx.get(piece, False)
                    if lp is not False:
                        if lp is None:
                            w = 0.0
                        else:
                            x = alpha * (lp + c * (e - k))
                            if not -700 <= x <= 700:
                                return None
                            w = exp(x)
                        W[piece] = w
            if if_empty:
                if not ends:
                    ends.append(k + 1)
                    ps.append(unk_w * beta[k + 1])
            elif not ends or ends[0] != k + 1:
                ends.insert(0, k + 1)
                ps.insert(0, unk_w * beta[k + 1])
            E[k] = ends
            P[k] = ps
            beta[k] = sum(ps)
        if n and not (1e-280 < min(beta) and max(beta) < 1e280):
            return None
        return E, P, beta

    def _sample_block(self, blk, alpha: float, rng: _random.Random, num_samples: int) -> list:
        key = (blk, alpha)
        filt = self._cache.get(key) if self.cache_size else None
        if filt is None:
            filt = self._filter(blk, alpha)
            if filt is None:  # far outside the linear range: exact log-domain FFBS
                lat = self.lattice(blk)
                return [[blk[i:j] for i, j in path] for path in lat.sample(alpha, rng, num_samples)]
            if self.cache_size:
                self._cache[key] = filt
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        E, P, beta = filt
        n = len(blk)
        rnd = rng.random
        memo = {} if num_samples > 1 else None  # K samples share one str object per distinct token
        out = []
        for _ in range(num_samples):
            k = 0
            toks = []
            while k < n:
                ends = E[k]
                if len(ends) == 1:
                    e = ends[0]
                else:
                    t = bisect_right(list(accumulate(P[k])), rnd() * beta[k])
                    e = ends[t] if t < len(ends) else ends[-1]
                tok = blk[k:e]
                toks.append(tok if memo is None else memo.setdefault(tok, tok))
                k = e
            out.append(toks)
        return out

    # -- decoding ----------------------------------------------------------------------------

    def _decode_block(self, blk) -> list:
        if self.kind in ("jieba", "plain") and self.unk_rule == "if_empty":
            return self._decode_jieba(blk)
        return self._decode_forward(blk, float32=self.kind == "sentencepiece")

    def _decode_jieba(self, blk) -> list:
        """jieba's ``calc``: backward, ``max((log f - log total + route[x+1], x))`` (ties: longer)."""
        pfx, n, unk = self._pfx, len(blk), self.unk_logp
        score = [0.0] * (n + 1)
        nxt = [0] * (n + 1)
        for k in range(n - 1, -1, -1):
            e = k + 1
            lp = pfx.get(blk[k:e], False)
            best, arg = -INF, -1
            while lp is not False:
                if lp is not None:
                    s = lp + score[e]
                    if s >= best:
                        best, arg = s, e
                if e == n:
                    break
                e += 1
                lp = pfx.get(blk[k:e], False)
            if arg < 0:
                best, arg = unk + score[k + 1], k + 1
            score[k], nxt[k] = best, arg
        toks, k = [], 0
        while k < n:
            toks.append(blk[k:nxt[k]])
            k = nxt[k]
        return toks

    def _decode_forward(self, blk, float32: bool) -> list:
        """SentencePiece's ``Model::EncodeOptimized``: forward over start positions, best path score
        per end position kept in float32, a candidate replaces only a strictly better one (ties:
        the earlier start); an unknown character is a candidate when no one-character piece
        matches. User-defined pieces score ``len_utf8 * max_score - 0.1``."""
        pfx, n, unk = self._pfx, len(blk), self.unk_logp
        best = array("f" if float32 else "d", [0.0]) * (n + 1)
        tmp = array("f" if float32 else "d", [0.0])
        start = [-1] * (n + 1)
        for s in range(n):
            base = best[s]
            e = s + 1
            lp = pfx.get(blk[s:e], False)
            single = False
            while lp is not False:
                if lp is not None:
                    tmp[0] = lp + base
                    c = tmp[0]
                    if start[e] == -1 or c > best[e]:
                        best[e], start[e] = c, s
                    if e == s + 1:
                        single = True
                if e == n:
                    break
                e += 1
                lp = pfx.get(blk[s:e], False)
            if not single:
                tmp[0] = unk + base
                c = tmp[0]
                if start[s + 1] == -1 or c > best[s + 1]:
                    best[s + 1], start[s + 1] = c, s
        toks, e = [], n
        while e > 0:
            toks.append(blk[start[e]:e])
            e = start[e]
        toks.reverse()
        return toks

    # -- public API --------------------------------------------------------------------------

    def _finish(self, parts: list) -> Segmentation:
        """Join per-block token lists (``(tokens, in_lattice)``) into one Segmentation."""
        tokens: list = []
        logp = 0.0
        for toks, in_lattice in parts:
            if not in_lattice:
                tokens.extend(toks)
                continue
            lp, unk = self.logp.get, self.unk_logp
            logp += sum([lp(t, unk) for t in toks])
            if self.kind == "jieba":
                tokens.extend(_jieba_merge_eng(toks))
            elif self.kind == "sentencepiece":
                tokens.extend(self._sp_post(toks))
            else:
                tokens.extend(toks)
        return Segmentation(tokens, logp)

    def _sp_post(self, toks: list) -> list:
        """SentencePiece output rules: consecutive unknown pieces are merged, or, with byte
        fallback, an unknown piece becomes its UTF-8 bytes as ``<0xNN>`` pieces."""
        out: list = []
        prev_unk = False
        for t in toks:
            unk = t not in self.logp
            if unk and self.byte_fallback:
                out.extend(f"<0x{b:02X}>" for b in t.encode("utf-8"))
            elif unk and prev_unk:
                out[-1] += t
            else:
                out.append(t)
            prev_unk = unk
        return out

    def decode(self, text: str) -> Segmentation:
        """The best segmentation (``alpha = inf``), with the source implementation's tie-breaking.

        A SentencePiece model without user-defined pieces is decoded by the library itself
        (``encode``; our lattice gives the same pieces, see the tests)."""
        if self.sp_native:
            toks = self.sp.encode(text, out_type=str)
            return Segmentation(toks, self._sp_logp(toks))
        return self._finish([(self._decode_block(b) if lat else [b], lat) for b, lat in self.blocks(text)])

    @property
    def _max_abs(self) -> float:
        """``max |log p|`` over the pieces and the unknown score (computed once, on first use)."""
        if self._max_abs_cache is None:
            self._max_abs_cache = max([abs(self.unk_logp)] + [abs(v) for v in self.logp.values()])
        return self._max_abs_cache

    def _overflows(self, alpha: float, n: int) -> bool:
        """True when ``alpha * log p`` summed over a path of ``n`` units could overflow a float:
        such a finite alpha is treated exactly as ``alpha = inf`` (the best path)."""
        if alpha == INF:
            return True
        return alpha > 0 and not alpha * self._max_abs * (n + 2) < 1e300

    def sample(self, text: str, alpha: float = 0.1, *, num_samples: int = 1, rng: _random.Random | None = None,
               method: str = "ffbs") -> list:
        """``num_samples`` segmentations of ``text``, independently drawn.

        Args:
            alpha: temperature on log-probabilities, ``>= 0``: ``P(seg) ∝ P_LM(seg)**alpha``
                (0: uniform over all segmentations; ``inf``, or any finite alpha so large that
                ``alpha * log P`` overflows a float: :meth:`decode`).
            num_samples: K >= 1; the lattice is filtered once and sampled K times.
            rng: a ``random.Random`` (``--seed``); default: a fresh unseeded one.
            method: ``"ffbs"`` (exact) or ``"su2023"`` (the biased rule of the 2023-09-16 post).

        Every model, SentencePiece included, is sampled on nlptool's own lattice: the
        ``sentencepiece`` library's sampler draws from the same law but cannot be seeded
        reproducibly across processes, and ``--seed`` must give the same output every run.

        Returns:
            list of :class:`Segmentation` (length ``num_samples``).

        Raises:
            UsageError: negative or NaN alpha, unknown method, ``num_samples < 1``.
        """
        alpha = check_alpha(alpha)
        if num_samples < 1:
            raise UsageError(f"number of samples {num_samples}: must be at least 1")
        if method not in ("ffbs", "su2023"):
            raise UsageError(f"sampling method {method!r}: expected ffbs or su2023")
        if alpha == INF:
            seg = self.decode(text)
            return [Segmentation(list(seg.tokens), seg.logp) for _ in range(num_samples)]
        rng = rng or _random.Random()
        blocks = self.blocks(text)
        per_block = []
        for blk, lat in blocks:
            if not lat:
                per_block.append(None)
            elif self._overflows(alpha, len(blk)):
                per_block.append([self._decode_block(blk)] * num_samples)
            elif method == "ffbs":
                per_block.append(self._sample_block(blk, alpha, rng, num_samples))
            else:
                la = self.lattice(blk)
                per_block.append([[blk[i:j] for i, j in la.sample_su2023(alpha, rng)] for _ in range(num_samples)])
        out = []
        for s in range(num_samples):
            parts = [([blk], False) if pb is None else (pb[s], True) for (blk, _), pb in zip(blocks, per_block)]
            out.append(self._finish(parts))
        return out

    # -- SentencePiece's own C++ sampler and n-best ------------------------------------------

    def _sp_logp(self, pieces: list) -> float:
        """``log P`` of SentencePiece output pieces: merged unknown pieces count one unknown score
        per character, ``<0xNN>`` byte-fallback pieces one per UTF-8 character they spell."""
        get, unk = self.logp.get, self.unk_logp
        total = 0.0
        for p in pieces:
            lp = get(p)
            if lp is not None:
                total += lp
            elif self.byte_fallback and len(p) == 6 and p.startswith("<0x") and p.endswith(">"):
                b = int(p[3:5], 16)
                if not 0x80 <= b <= 0xBF:  # a UTF-8 lead byte starts one unknown character
                    total += unk
            else:
                total += unk * len(p)
        return total

    def token_ids(self, tokens: list) -> list:
        """SentencePiece ids of output pieces (a merged unknown piece gets the unknown id).

        Raises:
            UsageError: the model is not a SentencePiece model.
        """
        if self.sp is None:
            raise UsageError("token ids need a SentencePiece model")
        return self.sp.piece_to_id(list(tokens)) if tokens else []

    # -- one lattice over the whole text: n-best, sampling without replacement, entropy, marginals

    def text_lattice(self, text: str) -> "TextLattice":
        """The whole (normalized) text as one lattice: each pre-split block's lattice, and a text
        span outside the lattice (jieba's non-Han characters) as one forced edge of score 0."""
        blocks = self.blocks(text)
        edges: list = []
        spans = []
        off = 0
        for blk, lat in blocks:
            n = len(blk)
            if lat:
                edges.extend([(off + j, s) for j, s in lst] for lst in self._edges(blk))
            else:
                edges.append([(off + n, 0.0)])
                edges.extend([] for _ in range(n - 1))
            spans.append((off, off + n, lat))
            off += n
        seq = (b"" if self.kind == "bytepiece" else "").join(b for b, _ in blocks)
        if not blocks and self.kind == "bytepiece":
            seq = b""
        return TextLattice(self, seq, off, edges, spans)

    def nbest(self, text: str, k: int) -> list:
        """The ``k`` most probable segmentations, best first (fewer when the text has fewer).

        k-best Viterbi over the lattice (each position keeps its ``k`` best prefixes); exact, ties
        in any order. The ranking does not depend on alpha. A SentencePiece model without
        user-defined pieces uses the library's ``nbest_encode`` (A* search in C++) for ``k <= 1024``.

        Returns:
            list of :class:`Segmentation` with ``logp = log P_LM(seg)`` (nats), decreasing.

        Raises:
            UsageError: ``k < 1``.
        """
        if k < 1:
            raise UsageError(f"n-best size {k}: must be at least 1")
        if self.sp_native and k <= 1024:
            segs = [Segmentation(t, self._sp_logp(t)) for t in self.sp.nbest_encode(text, nbest_size=k, out_type=str)]
            segs.sort(key=lambda s: -s.logp)
            return segs
        lat = self.text_lattice(text)
        return [lat.segmentation(p) for p in lat.kbest(k)]

    def sample_without_replacement(self, text: str, alpha: float, k: int, rng: _random.Random | None = None) -> list:
        """``k`` distinct segmentations drawn by sequential sampling without replacement.

        The first draw follows ``P(seg)**alpha / Z`` exactly; each next draw follows the same
        distribution restricted to the segmentations not drawn yet (renormalized). This is the law
        of the Gumbel-top-k trick (Kool, van Hoof & Welling, "Stochastic Beams and Where to Find
        Them", ICML 2019), which SentencePiece's ``SampleEncodeAndScore(wor=True)`` also targets.
        Each draw is a forward walk whose edge weights subtract the mass of the already drawn
        paths through that edge. When the text has fewer than ``k`` segmentations, all of them are
        returned. ``alpha = inf`` (or an overflowing finite alpha) gives :meth:`nbest`; when the
        drawn paths hold all but ``1e-12`` of the mass, the rest are taken best first.

        Returns:
            list of distinct :class:`Segmentation` (length ``min(k, number of segmentations)``).

        Raises:
            UsageError: ``k < 1``, negative or NaN alpha.
        """
        alpha = check_alpha(alpha)
        if k < 1:
            raise UsageError(f"number of samples {k}: must be at least 1")
        lat = self.text_lattice(text)
        if self._overflows(alpha, lat.n):
            return [lat.segmentation(p) for p in lat.kbest(k)]
        return [lat.segmentation(p) for p in lat.sample_wor(alpha, k, rng or _random.Random())]

    def entropy(self, text: str, alpha: float) -> float:
        """Exact entropy (nats) of ``P(seg)**alpha / Z`` over the segmentations of ``text``.

        ``H = log Z - alpha * E[log P_LM(seg)]``, the expectation computed by the forward algorithm
        in the expectation semiring (Eisner 2002, "Parameter estimation for probabilistic
        finite-state transducers"; SentencePiece's ``Lattice::CalculateEntropy``). ``alpha = 0``
        gives ``log(number of segmentations)``; ``alpha = inf`` (one best path) gives 0.

        Raises:
            UsageError: negative or NaN alpha.
        """
        alpha = check_alpha(alpha)
        lat = self.text_lattice(text)
        if self._overflows(alpha, lat.n):
            return 0.0
        return lat.entropy(alpha)

    def marginals(self, text: str, alpha: float) -> list:
        """Exact probability that a token boundary falls after each unit of the normalized text.

        ``m[c-1] = P(boundary at c) = exp(fwd[c] + bwd[c] - log Z)`` for ``c = 1..n-1`` (forward x
        backward / Z), ``n`` units of :meth:`normalize` (characters; ``▁``-normalized characters
        for SentencePiece; UTF-8 bytes for BytePiece). Values in ``[0, 1]``; their sum is the
        expected number of tokens minus one. ``alpha = inf`` gives the 0/1 boundaries of
        :meth:`decode`'s lattice path.

        Raises:
            UsageError: negative or NaN alpha.
        """
        alpha = check_alpha(alpha)
        lat = self.text_lattice(text)
        if self._overflows(alpha, lat.n):
            cuts = set()
            for lo, hi, inl in lat.spans:
                e = lo
                for t in (self._decode_block(lat.seq[lo:hi]) if inl else [lat.seq[lo:hi]]):
                    e += len(t)
                    cuts.add(e)
            return [1.0 if c in cuts else 0.0 for c in range(1, lat.n)]
        return lat.marginals(alpha)


@dataclass
class TextLattice:
    """One lattice over a whole normalized text (:meth:`UnigramModel.text_lattice`).

    ``edges[i]`` lists ``(j, log p)`` (an empty list at a position inside a forced span);
    ``spans`` lists ``(start, end, in_lattice)`` of the model's pre-split blocks. Algorithms run
    in the log domain (exact for any finite alpha that does not overflow).
    """

    model: UnigramModel
    seq: Union[str, bytes]
    n: int
    edges: list
    spans: list
    #: one object per distinct token, shared by every segmentation read from this lattice
    tokens: dict = field(default_factory=dict, repr=False, compare=False)

    def segmentation(self, path) -> Segmentation:
        """The :class:`Segmentation` of a path given as its node positions ``(0, e_1, ..., n)``."""
        parts = []
        nodes = list(path)
        seq, memo = self.seq, self.tokens
        t = 0
        for lo, hi, inl in self.spans:
            toks = []
            while t + 1 < len(nodes) and nodes[t + 1] <= hi:
                tok = seq[nodes[t]:nodes[t + 1]]
                toks.append(memo.setdefault(tok, tok))
                t += 1
            parts.append((toks, inl))
        return self.model._finish(parts)

    def _into(self) -> list:
        into = [[] for _ in range(self.n + 1)]
        for i, lst in enumerate(self.edges):
            for j, s in lst:
                into[j].append((i, s))
        return into

    def forward(self, alpha: float) -> list:
        """``fwd[j] = log sum over paths 0 -> j of exp(alpha * score)`` (``-inf``: unreachable)."""
        fwd = [-INF] * (self.n + 1)
        fwd[0] = 0.0
        for j, lst in enumerate(self._into()):
            if j:
                xs = [fwd[i] + alpha * s for i, s in lst if fwd[i] > -INF]
                fwd[j] = _logsumexp(xs) if xs else -INF
        return fwd

    def backward(self, alpha: float) -> list:
        """``bwd[i] = log sum over paths i -> n of exp(alpha * score)``; ``bwd[0] = log Z``."""
        bwd = [-INF] * (self.n + 1)
        bwd[self.n] = 0.0
        for i in range(self.n - 1, -1, -1):
            xs = [alpha * s + bwd[j] for j, s in self.edges[i] if bwd[j] > -INF]
            bwd[i] = _logsumexp(xs) if xs else -INF
        return bwd

    def marginals(self, alpha: float) -> list:
        """Boundary probabilities after units ``1..n-1`` (forward x backward / Z)."""
        fwd, bwd = self.forward(alpha), self.backward(alpha)
        z = bwd[0]
        return [min(1.0, math.exp(fwd[c] + bwd[c] - z)) if fwd[c] > -INF and bwd[c] > -INF else 0.0
                for c in range(1, self.n)]

    def entropy(self, alpha: float) -> float:
        """``log Z - alpha * E[score]``: forward in the expectation semiring, kept normalized
        (``E[j]`` is the expected prefix score of the paths into ``j``)."""
        if self.n == 0:
            return 0.0
        fwd = [-INF] * (self.n + 1)
        exp_score = [0.0] * (self.n + 1)
        fwd[0] = 0.0
        for j, lst in enumerate(self._into()):
            if not j:
                continue
            xs = [(fwd[i] + alpha * s, i, s) for i, s in lst if fwd[i] > -INF]
            if not xs:
                continue
            z = _logsumexp([x for x, _, _ in xs])
            fwd[j] = z
            exp_score[j] = math.fsum(math.exp(x - z) * (exp_score[i] + s) for x, i, s in xs)
        return max(0.0, fwd[self.n] - alpha * exp_score[self.n])

    def count(self, cap: int | None = None) -> int:
        """The number of paths (exact integer); with ``cap``, ``min(cap, number of paths)`` (each
        partial count is capped too, so the integers stay small on a long text)."""
        c = [0] * (self.n + 1)
        c[self.n] = 1
        for i in range(self.n - 1, -1, -1):
            c[i] = sum([c[j] for j, _ in self.edges[i]])
            if cap is not None and c[i] > cap:
                c[i] = cap
        return c[0]

    def kbest(self, k: int) -> list:
        """The ``k`` best paths by summed score (node tuples), best first.

        Lazy k-best over the lattice DAG (Huang & Chiang 2005, "Better k-best parsing",
        Algorithm 3, for a graph): ``D[j]`` holds the best prefix derivations into position ``j``
        found so far, each ``(score, i, r)`` = edge ``i -> j`` after the ``r``-th best prefix into
        ``i``; a heap per position holds its frontier. A Viterbi pass finds ``D[j][0]`` for
        every ``j``; the next derivation of ``j`` pops its heap and pushes the successor
        ``(i, r + 1)`` of the last one popped, asking ``i`` for its ``(r + 1)``-th derivation only
        then. Order: score decreasing, then ``i`` increasing, then ``r`` increasing (the same
        total order, with the same float sums, as the k-best Viterbi this replaced, which kept
        ``k`` prefixes at every position: ``O(m k log k)`` time and ``O(n k)`` memory). Here
        time is ``O(m + d log(deg))`` and memory ``O(m + d)`` for ``d <= n k`` derivations
        computed (in practice a few per output path), plus ``O(k L)`` to read the paths back.
        """
        import heapq

        heappop, heappush = heapq.heappop, heapq.heappush
        n = self.n
        into = self._into()
        D: list = [[] for _ in range(n + 1)]  # D[j] = [(score, i, r)], decreasing
        D[0].append((0.0, -1, -1))
        heaps: list = [None] * (n + 1)  # frontier of j: (-score, i, r, s)
        last: list = [None] * (n + 1)  # (i, r, s) of D[j][-1] while its successor is not pushed
        done = [True] * (n + 1)  # D[j] holds every prefix derivation into j
        for j in range(1, n + 1):  # Viterbi: the best derivation of every position
            h = [(-(D[i][0][0] + s), i, 0, s) for i, s in into[j] if D[i]]
            if h:
                heapq.heapify(h)
                negsc, i, r, s = heappop(h)
                D[j].append((-negsc, i, r))
                last[j] = (i, r, s)
                done[j] = False
            heaps[j] = h

        def extend(j0: int) -> None:
            """Append the next derivation to ``D[j0]``, or mark it done (iterative: the requests
            run back along the lattice, as deep as the text is long)."""
            stack = [j0]
            while stack:
                j = stack[-1]
                pend = last[j]
                if pend is not None:
                    i, r, s = pend
                    di = D[i]
                    if len(di) <= r + 1 and not done[i]:
                        stack.append(i)  # i's next derivation first
                        continue
                    if len(di) > r + 1:
                        heappush(heaps[j], (-(di[r + 1][0] + s), i, r + 1, s))
                    last[j] = None
                h = heaps[j]
                if h:
                    negsc, i, r, s = heappop(h)
                    D[j].append((-negsc, i, r))
                    last[j] = (i, r, s)
                else:
                    done[j] = True
                stack.pop()

        final = D[n]
        while len(final) < k and not done[n]:
            extend(n)
        out = []
        for r in range(min(k, len(final))):
            nodes, j = [n], n
            while j > 0:
                _, i, r = D[j][r]
                nodes.append(i)
                j = i
            out.append(tuple(reversed(nodes)))
        return out

    def path_score(self, nodes) -> float:
        lookup = {(i, j): s for i, lst in enumerate(self.edges) for j, s in lst}
        return math.fsum(lookup[(a, b)] for a, b in zip(nodes, nodes[1:]))

    def sample_wor(self, alpha: float, k: int, rng: _random.Random) -> list:
        """Sequential sampling without replacement (node tuples), see
        :meth:`UnigramModel.sample_without_replacement`.

        Each draw walks forward from 0; at position ``i`` (prefix ``π``) edge ``i -> j`` has the
        weight ``exp(alpha*s + bwd[j] - bwd[i])`` minus ``excl``, the same quantity summed over the
        drawn paths that begin with ``π`` then ``j`` (``exp(alpha*s + alpha*score(rest) - bwd[i])``).
        The drawn paths are kept in a trie (a path's part below its last branching point is
        stored once, as the path itself) whose edges carry ``excl`` as an exact running sum
        (Shewchuk's partials; ``math.fsum`` of them is the correctly rounded sum of the terms, in
        any order), so a draw costs ``O(L deg)`` whatever the number of paths already drawn, and
        ``K`` draws ``O(m + K L deg)`` time and ``O(m + K L)`` memory. (Before, each step summed
        over every drawn path sharing the prefix: ``O(K^2 L)``.)
        """
        exp, fsum = math.exp, math.fsum
        n = self.n
        bwd = self.backward(alpha)
        logz = bwd[0]
        total = min(k, self.count(cap=k))
        # the full weight of each edge relative to bwd[i] (the same for every draw)
        wts = [[(j, s, exp(alpha * s + bwd[j] - bwd[i]) if bwd[j] != -INF else 0.0) for j, s in lst]
               for i, lst in enumerate(self.edges)]
        paths: list = []  # drawn paths (node tuples), in order
        terms: list = []  # terms[q][t]: path q's excl term on its edge t
        drawn: list = []
        seen: set = set()
        mass: list = []  # partials of sum over drawn paths of P**alpha / Z
        # trie: {j: [partials of excl, value, child]} with child a dict (a trie node) or the index of
        # the one drawn path through that edge
        root: dict = {}
        retries = 0
        while len(drawn) < total:
            left = 1.0 - fsum(mass)  # mass not drawn yet, relative to Z
            if left < 1e-12 or retries > 100:
                for p in self.kbest(total + len(drawn)):
                    if p not in seen and len(drawn) < total:
                        drawn.append(p)
                        seen.add(p)
                break
            nodes = [0]
            scores = []
            node = root or None  # trie node of the prefix walked so far (None: no drawn path shares it)
            tail = -1  # or: the one drawn path sharing the prefix
            i = t = 0
            stuck = False
            while i < n:
                cands = wts[i]
                if tail >= 0:
                    pj, pterm = paths[tail][t + 1], terms[tail][t]
                    ws = [max(0.0, w - pterm) if j == pj else w for j, _, w in cands]
                elif node is not None:
                    get = node.get
                    ws = []
                    for j, _, w in cands:
                        ch = get(j)
                        ws.append(w if ch is None else max(0.0, w - ch[1]))
                else:
                    ws = [w for _, _, w in cands]
                tot = fsum(ws)
                u = rng.random() * tot
                acc = 0.0
                pick = None
                for (j, s, _), w in zip(cands, ws):
                    acc += w
                    if w > 0 and u < acc:
                        pick, ps = j, s
                        break
                if pick is None:
                    pick, ps = next(((j, s) for (j, s, _), w in zip(reversed(cands), reversed(ws)) if w > 0),
                                    (None, None))
                    if pick is None:  # rounding left no mass at this prefix: draw again
                        stuck = True
                        break
                nodes.append(pick)
                scores.append(ps)
                if tail >= 0:
                    if pick != pj:
                        tail = -1
                elif node is not None:
                    ch = node.get(pick)
                    if ch is None:
                        node = None
                    elif isinstance(ch[2], dict):
                        node = ch[2]
                    else:
                        node, tail = None, ch[2]
                i = pick
                t += 1
            p = tuple(nodes)
            if stuck or p in seen:  # rounding put mass on a drawn path: draw again (rare; bounded)
                retries += 1
                continue
            seen.add(p)
            drawn.append(p)
            # alpha * score of the path from its t-th node to the end, then its excl terms
            ln = len(nodes)
            suf = [0.0] * ln
            for t in range(ln - 2, -1, -1):
                suf[t] = suf[t + 1] + alpha * scores[t]
            q = len(paths)
            qterms = array("d", [exp(alpha * scores[t] + suf[t + 1] - bwd[nodes[t]]) for t in range(ln - 1)])
            paths.append(p)
            terms.append(qterms)
            _msum_add(mass, exp(suf[0] - logz))
            if ln > 1:
                _trie_insert(root, q, p, qterms, paths, terms)
        return drawn


def _msum_add(partials: list, x: float) -> None:
    """Add ``x`` to an exact sum kept as non-overlapping partials (Shewchuk 1997; the
    ``msum`` recipe that ``math.fsum`` implements): ``math.fsum(partials)`` is then the correctly
    rounded sum of every ``x`` added."""
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x]


def _trie_insert(root: dict, q: int, p: tuple, qterms, paths: list, terms: list) -> None:
    """Insert drawn path ``q`` (nodes ``p``, excl terms ``qterms``) into the trie of
    :meth:`TextLattice.sample_wor`: each edge entry ``[partials, value, child]`` on its way gets
    ``qterms[t]`` added; where it meets the path ``o`` stored below an entry, the common part of
    ``o`` and ``q`` becomes trie nodes and both continue as paths."""
    node, t, last = root, 0, len(p) - 1
    while True:
        j = p[t + 1]
        ch = node.get(j)
        if ch is None:
            node[j] = [[qterms[t]], qterms[t], q]
            return
        _msum_add(ch[0], qterms[t])
        ch[1] = math.fsum(ch[0])
        sub = ch[2]
        t += 1
        if isinstance(sub, dict):
            node = sub
            continue
        o, oterms = paths[sub], terms[sub]  # split: o and q share p[:t + 1]
        new: dict = {}
        ch[2] = new
        node = new
        while t < last:
            oj, qj = o[t + 1], p[t + 1]
            if oj != qj:
                node[oj] = [[oterms[t]], oterms[t], sub]
                node[qj] = [[qterms[t]], qterms[t], q]
                return
            parts = [oterms[t]]
            _msum_add(parts, qterms[t])
            nxt: dict = {}
            node[oj] = [parts, math.fsum(parts), nxt]
            node = nxt
            t += 1
        raise AssertionError("a drawn path inserted twice")  # pragma: no cover - p not in seen


_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def _jieba_merge_eng(toks: list) -> list:
    """jieba's ``__cut_DAG_NO_HMM`` output rule: consecutive one-character ASCII letters/digits
    (``re_eng``) are glued into one token."""
    out: list = []
    buf = ""
    for w in toks:
        if w in _ASCII_ALNUM:
            buf += w
        else:
            if buf:
                out.append(buf)
                buf = ""
            out.append(w)
    if buf:
        out.append(buf)
    return out


def check_k(k, what: str = "-k/--num-samples") -> int:
    """``k`` as an int in ``[1, MAX_K]``; ``what`` names the option in the message.

    Raises:
        UsageError: not an int, below 1 or above :data:`MAX_K`.
    """
    try:
        k = operator.index(k)
    except TypeError:
        raise UsageError(f"{what} {k!r}: expected an integer from 1 to {MAX_K}") from None
    if k < 1:
        raise UsageError(f"{what} {k}: must be at least 1")
    if k > MAX_K:
        raise UsageError(f"{what} {k}: at most {MAX_K} (one line's K segmentations are capped at "
                         f"{MAX_OUTPUT_UNITS} characters in all)")
    return k


def check_output_size(model: UnigramModel, text: str, k: int, distinct: bool, what: str) -> None:
    """Refuse a line whose ``k`` segmentations would hold more than :data:`MAX_OUTPUT_UNITS` units
    in all (each segmentation spells the whole normalized text). With ``distinct`` (n-best,
    sampling without replacement) ``k`` is first lowered to the number of segmentations.

    Raises:
        InputDataError: the line is too long for this K (an error record for that line).
    """
    n = len(model.normalize(text))
    if k * n <= MAX_OUTPUT_UNITS:
        return
    if distinct:
        k = min(k, model.text_lattice(text).count(cap=k))
        if k * n <= MAX_OUTPUT_UNITS:
            return
    raise InputDataError(f"line too long for {what} {k}: {k} segmentations x {n} characters = {k * n} > "
                         f"{MAX_OUTPUT_UNITS}, the output cap per line; lower {what} to "
                         f"{max(1, MAX_OUTPUT_UNITS // n)} or split the line")


def check_alpha(alpha) -> float:
    """``alpha`` as a float in ``[0, inf]``; accepts ``"inf"``.

    Raises:
        UsageError: negative, NaN or not a number.
    """
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise UsageError(f"alpha {alpha!r}: expected a number >= 0 or 'inf'") from None
    if math.isnan(a) or a < 0:
        raise UsageError(f"alpha {alpha!r}: expected a number >= 0 or 'inf'")
    return a


def tokenize(model: UnigramModel, text: str, alpha: float = 0.1, *, num_samples: int = 1,
             rng: _random.Random | None = None, method: str = "ffbs", nbest: int | None = None,
             without_replacement: bool = False, entropy: bool = False, marginals: bool = False,
             ids: bool = False) -> dict:
    """The fields ``nlptool tokenize-sample`` writes for one text (the one entry point of the command).

    Returns:
        ``{"tokens": [...], "logp": float}`` for one sample (``num_samples == 1``), or
        ``{"samples": [[...], ...], "logp": [...]}`` for K samples (distinct ones with
        ``without_replacement``), or ``{"nbest": [{"tokens": [...], "logp": ...}, ...]}`` (best
        first) with ``nbest``; plus ``"ids"`` (SentencePiece ids, same nesting as the tokens; in
        each n-best entry), ``"entropy"`` (nats) and ``"marginals"`` (``n - 1`` boundary
        probabilities) when asked. Tokens are strings (:func:`piece_to_str`); logp in nats,
        rounded to 1e-6.

    Raises:
        UsageError: an invalid alpha, K (:func:`check_k`: 1 to :data:`MAX_K`), method, or a
            combination that does not apply (n-best with sampling options, ids without a
            SentencePiece model).
        InputDataError: the K segmentations of ``text`` would hold more than
            :data:`MAX_OUTPUT_UNITS` characters (:func:`check_output_size`).
    """
    a = check_alpha(alpha)
    if nbest is not None:
        check_k(nbest, "--nbest")
    check_k(num_samples)
    if ids and model.sp is None:
        raise UsageError("token ids are only defined for a SentencePiece model")
    if nbest is not None and (num_samples != 1 or without_replacement or method != "ffbs"):
        raise UsageError("n-best decoding does not sample: do not combine it with a number of samples, "
                         "sampling without replacement or a sampling method")
    if without_replacement and method != "ffbs":
        raise UsageError("sampling without replacement is exact; it has no su2023 variant")
    if nbest is not None:
        check_output_size(model, text, nbest, True, "--nbest")
    elif num_samples > 1:
        check_output_size(model, text, num_samples, without_replacement, "-k/--num-samples")
    memo: dict = {}  # one str object per distinct token: K segmentations share them

    def as_str(t):
        s = memo.get(t)
        if s is None:
            s = memo[t] = piece_to_str(t)
        return s

    out: dict = {}
    if nbest is not None:
        entries = []
        for s in model.nbest(text, nbest):
            e = {"tokens": [as_str(t) for t in s.tokens], "logp": round(s.logp, 6)}
            if ids:
                e["ids"] = model.token_ids(e["tokens"])
            entries.append(e)
        out["nbest"] = entries
    else:
        if without_replacement:
            segs = model.sample_without_replacement(text, a, num_samples, rng)
        else:
            segs = model.sample(text, a, num_samples=num_samples, rng=rng, method=method)
        toks = [[as_str(t) for t in s.tokens] for s in segs]
        logps = [round(s.logp, 6) for s in segs]
        del segs  # the token lists above share their strings; these do not
        if num_samples == 1:
            out["tokens"], out["logp"] = toks[0], logps[0]
            if ids:
                out["ids"] = model.token_ids(toks[0])
        else:
            out["samples"], out["logp"] = toks, logps
            if ids:
                out["ids"] = [model.token_ids(t) for t in toks]
    if entropy:
        out["entropy"] = round(model.entropy(text, a), 6)
    if marginals:
        out["marginals"] = [round(x, 6) for x in model.marginals(text, a)]
    return out


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def jieba_dict_path() -> str:
    """Path of jieba's bundled ``dict.txt`` (found without importing jieba).

    Raises:
        ModelError: jieba is not installed.
    """
    import importlib.util

    spec = importlib.util.find_spec("jieba")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("jieba is not installed (pip install jieba), and it provides the default dictionary; "
                         "or give --dict FILE")
    return os.path.join(list(spec.submodule_search_locations)[0], "dict.txt")


def _check_file(path: str, what: str) -> None:
    """Raises UsageError (exit 2, a bad path like a missing input) for a missing file or a directory."""
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory, expected a {what} file")
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such {what} file")


def load_jieba_dict(path: str | None = None, **kw) -> UnigramModel:
    """A unigram LM from a jieba dictionary (``word count [tag]`` per line, UTF-8).

    ``log p(w) = log(count) - log(total)`` with ``total`` the sum of all counts (as jieba's
    ``gen_pfdict``: a repeated word keeps its last count but every count adds to the total; a
    word with count 0 is only a prefix). Unknown characters score ``log(1) - log(total)`` and
    are lattice edges only where no word starts (jieba's ``get_DAG``).

    Raises:
        UsageError: missing file or a directory.
        ModelError: a line that is not ``word count``.
    """
    path = os.path.abspath(path or jieba_dict_path())
    _check_file(path, "dictionary")
    cached = _cache_read(path)
    if cached is not None:
        logp, prefix_only, unk, c = cached
        pfx = dict.fromkeys(prefix_only)  # built in C: a fast start-up
        pfx.update(logp)
        return UnigramModel(logp, kind="jieba", unk_logp=unk, unk_rule="if_empty", name=path, pfx=pfx,
                            nats_per_char=c, **kw)
    freq: dict = {}
    total = 0
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.strip().decode("utf-8")
                if not line:
                    continue
                word, f = line.split(" ")[:2]
                f = int(f)
            except (ValueError, UnicodeDecodeError):
                raise ModelError(f"{path}:{lineno}: invalid dictionary entry {raw[:60]!r} "
                                 "(expected 'word count [tag]')") from None
            freq[word] = f
            total += f
    if total <= 0:
        raise ModelError(f"{path}: no word has a positive count")
    logtotal = math.log(total)
    logp = {w: math.log(f) - logtotal for w, f in freq.items() if f > 0}
    zero = [w for w, f in freq.items() if f <= 0]
    model = UnigramModel(logp, kind="jieba", unk_logp=math.log(1) - logtotal, unk_rule="if_empty",
                         prefixes=zero, name=path, **kw)
    _cache_write(path, (logp, [w for w, v in model._pfx.items() if v is None], model.unk_logp, model.nats_per_char))
    return model


def _cache_file(path: str) -> str | None:
    import hashlib

    try:
        st = os.stat(path)
    except OSError:
        return None
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    key = hashlib.md5(f"v2|{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    return os.path.join(root, "nlptool", f"unigram-{key}.marshal")


def _cache_read(path: str):
    """The marshalled model of a jieba-format file (like jieba's own cache): ``(logp, prefix-only
    keys, unknown score, nats per char)``, or None."""
    import marshal

    f = _cache_file(path)
    if not f or not os.path.isfile(f):
        return None
    try:
        with open(f, "rb") as fh:
            logp, prefix_only, unk, c = marshal.load(fh)
        if not isinstance(logp, dict) or not isinstance(prefix_only, list):
            return None
        return logp, prefix_only, unk, c
    except (OSError, EOFError, ValueError, TypeError):
        return None


def _cache_write(path: str, obj) -> None:
    import marshal
    import tempfile

    f = _cache_file(path)
    if not f:
        return
    try:
        os.makedirs(os.path.dirname(f), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(f))
        with os.fdopen(fd, "wb") as fh:
            marshal.dump(obj, fh)
        os.replace(tmp, f)
    except OSError:  # a read-only home only costs the next load a few seconds
        pass


def load_sentencepiece(path: str, **kw) -> UnigramModel:
    """A SentencePiece UNIGRAM ``.model`` (read with the ``sentencepiece`` package).

    Normal pieces score their stored log-probability, user-defined pieces
    ``len_utf8 * max_score - 0.1``, unused pieces are skipped, an unknown character scores
    ``min_score - 10`` (sentencepiece's ``unigram_model.cc``).

    Raises:
        UsageError: missing file or a directory.
        ModelError: package missing, unreadable file, or not a UNIGRAM model.
    """
    try:
        import sentencepiece as spm
    except ImportError:
        raise ModelError("--sp-model needs the sentencepiece package: pip install sentencepiece") from None
    _check_file(path, "SentencePiece model")
    try:
        sp = spm.SentencePieceProcessor(model_file=path)
    except Exception as exc:  # sentencepiece raises RuntimeError/OSError with its own text
        raise ModelError(f"{path}: not a SentencePiece model ({exc})") from None
    try:
        from sentencepiece import sentencepiece_model_pb2 as pb

        proto = pb.ModelProto()
        proto.ParseFromString(sp.serialized_model_proto())
        if proto.trainer_spec.model_type != pb.TrainerSpec.UNIGRAM:
            raise ModelError(f"{path}: a {pb.TrainerSpec.ModelType.Name(proto.trainer_spec.model_type)} model; "
                             "--sp-model needs a UNIGRAM model")
        byte_fallback = bool(proto.trainer_spec.byte_fallback)
        user_ids = {i for i, p in enumerate(proto.pieces) if p.type == pb.ModelProto.SentencePiece.USER_DEFINED}
    except ImportError:  # pragma: no cover - protobuf absent
        byte_fallback = sp.piece_to_id("<0x00>") != sp.unk_id() and sp.is_byte(sp.piece_to_id("<0x00>"))
        user_ids = set()
    normal = {}
    unused = []
    for i in range(sp.get_piece_size()):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i):
            continue
        if sp.is_unused(i):
            unused.append(sp.id_to_piece(i))
            continue
        normal[i] = (sp.id_to_piece(i), sp.get_score(i))
    plain = [s for i, (_, s) in normal.items() if i not in user_ids]
    min_score = min(plain) if plain else 0.0
    max_score = max(plain) if plain else 0.0
    logp = {}
    for i, (p, s) in normal.items():
        if i in user_ids:
            s = len(p.encode("utf-8")) * max_score - 0.1
        logp[p] = s
    unk = float(array("f", [min_score - SP_UNK_PENALTY])[0])
    return UnigramModel(logp, kind="sentencepiece", unk_logp=unk, unk_rule="if_no_single", prefixes=unused,
                        name=path, sp=sp, byte_fallback=byte_fallback,
                        sp_native=not user_ids, **kw)


def load_bytepiece(path: str, **kw) -> UnigramModel:
    """A BytePiece model: JSON ``{base64(piece): [id, piece, count]}`` (bojone/bytepiece).

    Byte-level: ``log p(w) = log(count) - log(total)``; tokens are ``bytes``. Text is NFC-normalized
    and split into lines as BytePiece's ``normalize()``. A byte no piece covers scores
    ``min log p - 10``.

    Raises:
        UsageError: missing file or a directory.
        ModelError: not that JSON shape (or nested too deeply).
    """
    _check_file(path, "BytePiece model")
    try:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
        counts = {base64.b64decode(k): int(v[-1]) for k, v in raw.items()}
    except RecursionError:
        raise ModelError(f"{path}: not a BytePiece model (JSON nested too deeply)") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ModelError(f"{path}: not a BytePiece model (expected JSON {{base64(piece): [id, piece, count]}}; {exc})") \
            from None
    total = sum(c for c in counts.values() if c > 0)
    if total <= 0:
        raise ModelError(f"{path}: no piece has a positive count")
    logtotal = math.log(total)
    logp = {p: math.log(c) - logtotal for p, c in counts.items() if c > 0 and p}
    return UnigramModel(logp, kind="bytepiece", unk_logp=min(logp.values()) - SP_UNK_PENALTY,
                        unk_rule="if_no_single", name=path, **kw)


def load_unigram_model(dict_path: str | None = None, sp_model: str | None = None, bytepiece_model: str | None = None,
               **kw) -> UnigramModel:
    """One of: ``--dict`` (jieba format; default jieba's own ``dict.txt``), ``--sp-model``, ``--bytepiece-model``.

    The last few models loaded are kept for the process (keyed by path, size and mtime), so a
    second call with the same file returns the same object.

    Raises:
        UsageError: more than one source given.
        ModelError: the file cannot be read as that kind of model.
    """
    given = [x for x in (dict_path, sp_model, bytepiece_model) if x]
    if len(given) > 1:
        raise UsageError("give at most one of --dict, --sp-model, --bytepiece-model")
    kind, loader = ("sp", load_sentencepiece) if sp_model else ("bp", load_bytepiece) if bytepiece_model \
        else ("jieba", load_jieba_dict)
    path = os.path.abspath(given[0] if given else jieba_dict_path())
    try:
        st = os.stat(path)
        key = (kind, path, st.st_size, st.st_mtime_ns, tuple(sorted(kw.items())))
    except OSError:
        key = None
    if key is not None and key in _LOADED:
        return _LOADED[key]
    model = loader(path, **kw)
    if key is not None:
        if len(_LOADED) >= 4:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = model
    return model


#: models loaded in this process, by (kind, path, size, mtime, options): a second load is free
_LOADED: dict = {}

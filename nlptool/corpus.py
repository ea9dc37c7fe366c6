"""Building the MLM training corpus: Chinese prose from Debian packages, cleaned and decontaminated.

The pieces are plain functions used by ``scripts/build_corpus.py``:

* markup stripping for the three formats the packages ship: roff man pages (:func:`strip_roff`),
  HTML (:func:`html_to_text`) and reStructuredText (:func:`strip_rst`);
* a line filter (:func:`keep_line`) that drops lines that are mostly ASCII (code, commands,
  options) and lines too short to carry a sentence;
* exact de-duplication of lines (:func:`dedupe`);
* an overlap check against evaluation data (:class:`OverlapIndex`): a corpus line is dropped when it
  contains an evaluation piece or is contained in an evaluation text (after NFKC normalisation and
  whitespace removal), the usual n-gram decontamination of pre-training data (Brown et al. 2020,
  "Language Models are Few-Shot Learners", appendix C, with exact containment instead of 13-grams);
* readers for the evaluation data under the shared data directory (:func:`evaluation_texts`) and
  for Debian package metadata (:func:`deb_version`, :func:`copyright_licenses`).

No third-party imports; ``dpkg-deb`` is needed only by :func:`deb_extract` / :func:`deb_version`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import subprocess
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator
from html.parser import HTMLParser
from pathlib import Path

from .errors import InputDataError, NlptoolError

# CJK Unified Ideographs, extension A and compatibility ideographs.
_IDEOGRAPH = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Ideographs plus CJK punctuation (U+3000-U+303F) and full-width forms (U+FF00-U+FFEF).
_CJK_LIKE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
_SPACE = re.compile(r"\s+")


def cjk_count(text: str) -> int:
    """Number of CJK ideographs (U+3400-U+4DBF, U+4E00-U+9FFF, U+F900-U+FAFF) in ``text``."""
    return len(_IDEOGRAPH.findall(text))


def cjk_ratio(text: str) -> float:
    """Share in [0, 1] of the non-space characters that are CJK ideographs, CJK punctuation or
    full-width forms; 0.0 for a text with no non-space character."""
    chars = _SPACE.sub("", text)
    if not chars:
        return 0.0
    return len(_CJK_LIKE.findall(chars)) / len(chars)


def keep_line(line: str, min_cjk: int = 5, min_ratio: float = 0.5) -> bool:
    """True when ``line`` has at least ``min_cjk`` ideographs and at least ``min_ratio`` of its
    non-space characters are CJK (:func:`cjk_ratio`): drops code, commands and option lists."""
    return cjk_count(line) >= min_cjk and cjk_ratio(line) >= min_ratio


def normalize_line(line: str) -> str:
    """Collapse runs of whitespace to one space and strip the ends."""
    return _SPACE.sub(" ", line).strip()


def dedupe(lines: Iterable[str], seen: set[str] | None = None) -> Iterator[str]:
    """Yield each distinct line once, in first-seen order. Pass ``seen`` to dedupe across calls."""
    seen = set() if seen is None else seen
    for line in lines:
        if line not in seen:
            seen.add(line)
            yield line


from .text import split_sentences  # noqa: E402,F401  (re-exported: the corpus API used it from here)


# --------------------------------------------------------------------------- markup

_ROFF_TEXT_MACROS = {"SH", "SS", "B", "I", "BR", "BI", "IB", "IR", "RB", "RI", "SM", "SB", "IP", "TP", "TH"}
_ROFF_ESCAPES = [
    (re.compile(r"\\f(?:\[[^\]]*\]|\(..|.)"), ""),  # font changes \fB \fI \fP \f(CW \f[B]
    (re.compile(r"\\s[+-]?\d+"), ""),  # size changes
    (re.compile(r"\\\*(?:\[[^\]]*\]|\(..|.)"), ""),  # strings \*(lq
    (re.compile(r"\\\((?:em|en)"), "—"),
    (re.compile(r"\\\((?:lq|rq|dq)"), '"'),
    (re.compile(r"\\\(..|\\\[[^\]]*\]"), ""),  # other special characters
    (re.compile(r"\\[&,/|^:%]"), ""),  # zero-width escapes
    (re.compile(r"\\[ ~0]"), " "),
    (re.compile(r"\\-"), "-"),
    (re.compile(r"\\e"), "\\"),
    (re.compile(r"\\\"[^\n]*"), ""),  # trailing comment
]


def strip_roff(text: str) -> str:
    """Plain text of a roff/man page: comments and layout requests removed, the arguments of
    heading and font macros (``.SH``, ``.B``, ``.BR`` ...) kept as text, inline escapes
    (``\\fB``, ``\\-``, ``\\(em``, ``\\&`` ...) resolved or removed. One output line per text line.
    """
    out = []
    for line in text.splitlines():
        if line.startswith((".\\\"", "'\\\"", '\\"')):
            continue
        macro = line.startswith((".", "'"))
        if macro:
            out.append("")  # a request breaks the paragraph (fill mode)
            parts = line[1:].strip().split(None, 1)
            if not parts or parts[0] not in _ROFF_TEXT_MACROS or len(parts) == 1:
                continue
            if parts[0] == "TH":
                continue
            line = parts[1].replace('"', " ")
        for pattern, repl in _ROFF_ESCAPES:
            line = pattern.sub(lambda _m, r=repl: r, line)
        line = line.replace("\\\\", "\\")
        out.append(line)
        if macro:
            out.append("")
    return "\n".join(out)


class _TextExtractor(HTMLParser):
    _BLOCK = {
        "p", "div", "br", "li", "ul", "ol", "dt", "dd", "dl", "tr", "td", "th", "table", "title",
        "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "section", "article", "header",
        "footer", "nav", "caption", "figcaption", "hr", "body", "head",
    }
    _SKIP = {"script", "style", "code", "pre", "kbd", "samp", "tt"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in self._SKIP:
            self.skip += 1
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self._SKIP and self.skip:
            self.skip -= 1
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_to_text(text: str) -> str:
    """Visible text of an HTML document, one block element (p, li, td, h1 ...) per line; script,
    style and code elements (``pre``, ``code``, ``kbd``, ``samp``, ``tt``) are dropped and
    character references decoded. Inline elements join their text without a break."""
    parser = _TextExtractor()
    parser.feed(text)
    parser.close()
    lines = (normalize_line(x) for x in "".join(parts for parts in parser.parts).split("\n"))
    return "\n".join(x for x in lines if x)


_RST_ROLE = re.compile(r":[\w:+-]+:`([^`<]*?)\s*(?:<[^>]*>)?`")
_RST_LINK = re.compile(r"`([^`<]*?)\s*(?:<[^>]*>)?`_{1,2}")
_RST_LITERAL = re.compile(r"``([^`]*)``")
_RST_EMPH = re.compile(r"\*{1,2}([^*\s][^*]*?)\*{1,2}")
_RST_INTERP = re.compile(r"`([^`]*)`")
_RST_ADORN = re.compile(r"^\s*([=\-~^\"'`#*+:.<>_])\1{2,}\s*$")
_RST_DIRECTIVE = re.compile(r"^\s*\.\.(\s|$)")
_RST_FIELD = re.compile(r"^\s*:[\w -]+:(\s|$)")


def strip_rst(text: str) -> str:
    """Plain text of a reStructuredText document: directives (``.. note::``, comments, link
    targets) and their indented bodies' option lines, section adornments and field lists removed;
    roles (``:ref:`text <target>```), links, literals and emphasis reduced to their text.
    Literal blocks are left in place (they are mostly ASCII and :func:`keep_line` drops them)."""
    out = []
    in_directive = False
    for line in text.splitlines():
        if _RST_DIRECTIVE.match(line):
            in_directive = True
            out.append("")
            continue
        if in_directive:
            if not line.strip():
                out.append("")
                continue
            if line[:1].isspace() and _RST_FIELD.match(line):
                out.append("")
                continue
            in_directive = False
        if _RST_ADORN.match(line) or _RST_FIELD.match(line):
            out.append("")
            continue
        line = _RST_ROLE.sub(r"\1", line)
        line = _RST_LINK.sub(r"\1", line)
        line = _RST_LITERAL.sub(r"\1", line)
        line = _RST_EMPH.sub(r"\1", line)
        line = _RST_INTERP.sub(r"\1", line)
        out.append(line)
    return "\n".join(out)


# --------------------------------------------------------------------------- overlap check


def overlap_key(text: str) -> str:
    """The form compared by the overlap check: NFKC-normalised (full-width ASCII folded, so
    ``，`` and ``,`` match) with all whitespace removed."""
    return _SPACE.sub("", unicodedata.normalize("NFKC", text))


class OverlapIndex:
    """Exact-containment index over evaluation text.

    ``contains_piece(line)`` is true when the line contains any indexed *piece* (a sentence or line
    of evaluation data, at least ``min_len`` characters); ``inside_text(line)`` is true when a line of
    at least ``min_len`` characters occurs inside any indexed *text*. Both compare
    :func:`overlap_key` forms. Pieces are indexed by their first ``min_len`` characters, so a line of
    n characters costs n dictionary look-ups plus a containment test per candidate; texts are
    indexed by the set of their ``min_len``-grams (a line must have its first, middle and last
    n-gram in the set before the substring search over the joined texts).

    Args:
        pieces: evaluation strings that must not occur inside a corpus line.
        texts: evaluation strings inside which no corpus line may occur (usually the whole lines
            or passages the pieces came from).
        min_len: pieces and lines shorter than this (after normalisation) are not checked (>= 1).
    """

    def __init__(self, pieces: Iterable[str], texts: Iterable[str], min_len: int = 8):
        if min_len < 1:
            raise NlptoolError(f"min_len must be >= 1, got {min_len}")
        self.min_len = n = min_len
        self.by_prefix: dict[str, list[str]] = {}
        for piece in pieces:
            key = overlap_key(piece)
            if len(key) >= n:
                bucket = self.by_prefix.setdefault(key[:n], [])
                if key not in bucket:
                    bucket.append(key)
        keys = [overlap_key(t) for t in texts]
        self.joined = "\n".join(keys)
        self.grams: set[str] = set()
        for key in keys:
            for i in range(len(key) - n + 1):
                self.grams.add(key[i : i + n])

    def contains_piece(self, line: str) -> bool:
        """True when ``line`` contains an indexed evaluation piece."""
        key = overlap_key(line)
        n, index = self.min_len, self.by_prefix
        for i in range(len(key) - n + 1):
            bucket = index.get(key[i : i + n])
            if bucket is not None:
                for piece in bucket:
                    if key.startswith(piece, i):
                        return True
        return False

    def inside_text(self, line: str) -> bool:
        """True when ``line`` (at least ``min_len`` characters) occurs inside an indexed text."""
        key = overlap_key(line)
        n = self.min_len
        if len(key) < n:
            return False
        mid = (len(key) - n) // 2
        grams = self.grams
        if key[:n] not in grams or key[-n:] not in grams or key[mid : mid + n] not in grams:
            return False
        return key in self.joined

    def overlaps(self, line: str) -> bool:
        """True when ``line`` contains an evaluation piece or lies inside an evaluation text."""
        return self.contains_piece(line) or self.inside_text(line)


def _conllu_texts(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [line.split("=", 1)[1].strip() for line in fh if line.startswith("# text =")]


def evaluation_texts(shared: str | os.PathLike) -> dict[str, tuple[list[str], list[str]]]:
    """The evaluation data that training text must not overlap, per source.

    Returns ``{source: (pieces, texts)}`` for :class:`OverlapIndex`: ``sighan2005`` (PKU test gold
    with the word spaces removed, and the raw test text), ``ud`` (``# text =`` lines of every
    ``.conllu``), ``sts`` (each sentence of both files), ``cmrc2018`` (passages split into sentences
    as pieces, whole passages as texts, and questions), ``chnsenticorp`` (hotel reviews),
    ``shift`` (online-shopping reviews from the zip). For the line-shaped sources pieces and texts
    are the same list.

    Raises:
        InputDataError: ``shared`` or one of the expected files is missing (names the file).
    """
    root = Path(shared)
    need = {
        "sighan2005": [root / "sighan2005" / "pku_test_gold.utf8", root / "sighan2005" / "pku_test.utf8"],
        "ud": sorted((root / "ud").glob("zh*.conllu")),
        "sts": [root / "sts" / "STS-B.train.data", root / "sts" / "STS-B.valid.data"],
        "cmrc2018": sorted((root / "qa").glob("cmrc2018*.json")),
        "chnsenticorp": [root / "sentiment" / "ChnSentiCorp_htl_all.csv"],
        "shift": [root / "shift" / "online_shopping_10_cats.zip"],
    }
    for source, paths in need.items():
        if not paths:
            raise InputDataError(f"no evaluation files for {source} under {root}")
        for p in paths:
            if not p.is_file():
                raise InputDataError(f"missing evaluation file {p}")
    out: dict[str, tuple[list[str], list[str]]] = {}

    lines = []
    for p in need["sighan2005"]:
        with open(p, encoding="utf-8") as fh:
            lines += [_SPACE.sub("", x) for x in fh if x.strip()]
    out["sighan2005"] = (lines, lines)

    lines = [t for p in need["ud"] for t in _conllu_texts(p)]
    out["ud"] = (lines, lines)

    lines = []
    for p in need["sts"]:
        with open(p, encoding="utf-8") as fh:
            for row in fh:
                cols = row.rstrip("\n").split("\t")
                lines += [c for c in cols[:2] if c.strip()]
    out["sts"] = (lines, lines)

    pieces, texts = [], []
    for p in need["cmrc2018"]:
        with open(p, encoding="utf-8") as fh:
            data = json.load(fh)
        for article in data["data"]:
            for para in article["paragraphs"]:
                texts.append(para["context"])
                pieces += split_sentences(para["context"])
                for qa in para["qas"]:
                    pieces.append(qa["question"])
                    texts.append(qa["question"])
    out["cmrc2018"] = (pieces, texts)

    with open(need["chnsenticorp"][0], encoding="utf-8-sig", newline="") as fh:
        lines = [row["review"] for row in csv.DictReader(fh) if row.get("review")]
    out["chnsenticorp"] = (lines, lines)

    with zipfile.ZipFile(need["shift"][0]) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".csv"))
        with zf.open(name) as raw:
            reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))
            lines = [row["review"] for row in reader if row.get("review")]
    out["shift"] = (lines, lines)
    return out


# --------------------------------------------------------------------------- Debian packages


def deb_extract(deb: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Unpack a ``.deb`` with ``dpkg-deb -x`` into ``dest`` (created); returns ``dest``.

    Raises:
        NlptoolError: dpkg-deb is missing or fails.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise NlptoolError(f"cannot unpack {deb}: {exc}") from exc
    return dest


def deb_version(deb: str | os.PathLike) -> str:
    """The ``Version`` control field of a ``.deb`` (``dpkg-deb -f``)."""
    try:
        res = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise NlptoolError(f"cannot read the version of {deb}: {exc}") from exc
    return res.stdout.strip()


def copyright_licenses(text: str) -> dict:
    """Licences named in a Debian ``copyright`` file (machine-readable format 1.0).

    Returns ``{"main": licence of the "Files: *" paragraph or None, "all": sorted distinct
    "License:" short names}``.
    """
    main = None
    names: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        files = re.search(r"^Files:\s*(.*)$", para, re.M)
        lic = re.search(r"^License:\s*(\S.*)$", para, re.M)
        if not lic:
            continue
        name = lic.group(1).strip()
        if name not in names:
            names.append(name)
        if files and files.group(1).strip() == "*" and main is None:
            main = name
    return {"main": main, "all": sorted(names)}


def read_text_file(path: str | os.PathLike) -> str:
    """Read a UTF-8 file, transparently gunzipping ``.gz``; undecodable bytes are replaced."""
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as fh:
            data = fh.read()
    else:
        data = path.read_bytes()
    return data.decode("utf-8", errors="replace")


def document_lines(path: str | os.PathLike) -> list[str]:
    """Plain-text lines of one documentation file, the markup chosen by its name: ``.html``/``.htm``
    (:func:`html_to_text`), ``.rst``/``.txt`` (:func:`strip_rst`), man pages ``*.[1-9]`` (roff,
    :func:`strip_roff`); a ``.gz`` suffix is looked through. Lines are whitespace-normalised,
    empty ones dropped; not yet filtered by :func:`keep_line`."""
    name = Path(path).name
    if name.endswith(".gz"):
        name = name[:-3]
    text = read_text_file(path)
    if name.endswith((".html", ".htm", ".xhtml")):
        text = html_to_text(text)
    elif name.endswith((".rst", ".txt")):
        text = strip_rst(text)
    elif re.search(r"\.\d\w*$", name):
        text = strip_roff(text)
    lines = [normalize_line(x) for x in text.splitlines()]
    if not name.endswith((".html", ".htm", ".xhtml")):
        lines = join_wrapped(lines)
    return [x for x in lines if x]


_WRAP_END = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff，、：；（“‘《「]$")
_WRAP_START = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff，、。：；！？）”’》」]")


def join_wrapped(lines: list[str]) -> list[str]:
    """Re-join Chinese sentences that a source file wrapped over several lines (roff and rst
    fill their paragraphs, so authors break lines anywhere): a line ending in an ideograph or
    non-final CJK punctuation is joined, without a space, to a following line that starts with an
    ideograph or CJK punctuation. Empty lines (paragraph breaks) are never joined across."""
    out: list[str] = []
    for line in lines:
        if out and line and out[-1] and _WRAP_END.search(out[-1]) and _WRAP_START.match(line):
            out[-1] += line
        else:
            out.append(line)
    return out

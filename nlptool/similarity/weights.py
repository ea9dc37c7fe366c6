"""Token weights and vector transforms read from files: IDF tables (or corpora) and
BERT-whitening."""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable

import numpy as np

from typing import Any

from ..errors import InputDataError, UsageError

#: The largest magnitude a weights file (IDF table, whitening) may give: sums of weights times
#: vector norms, and whitened vectors, must stay finite in float64. Real values are far below
#: (an IDF ``log(N / df)`` is below 50 for any corpus; whitening scales are ``1/sqrt(eigenvalue)``).
VALUE_MAX = 1e100

class Whitening:
    """BERT-whitening (Su et al. 2021, "Whitening Sentence Representations for Better Semantics
    and Faster Retrieval"; kexue.fm 2021-01-11): ``x -> (x - mu) W`` with ``W = U diag(s)^-1/2``
    from the SVD ``U diag(s) U^T`` of the covariance of ``fit`` vectors, so the transformed vectors
    have zero mean and identity covariance (isotropic, where cosine is meaningful).

    Args:
        mu: ``(dim,)`` mean; w: ``(dim, k)`` transform (``k <= dim`` keeps the top components).
    """

    def __init__(self, mu: np.ndarray, w: np.ndarray):
        self.mu = np.asarray(mu, dtype=np.float64).reshape(-1)
        self.w = np.asarray(w, dtype=np.float64)

    @classmethod
    def fit(cls, vectors: np.ndarray, dim: int | None = None, eps: float = 1e-8) -> "Whitening":
        """Fit on ``(n, dim)`` vectors (token vectors of a corpus); ``dim`` keeps that many components."""
        x = np.asarray(vectors, dtype=np.float64)
        mu = x.mean(0)
        cov = np.cov((x - mu).T)
        u, sv, _ = np.linalg.svd(cov)
        w = u / np.sqrt(sv + eps)[None, :]
        return cls(mu, w[:, :dim] if dim else w)

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        return (np.asarray(vectors, dtype=np.float64) - self.mu) @ self.w

    def save(self, path) -> None:
        np.savez(path, mu=self.mu, w=self.w)

    @classmethod
    def load(cls, path) -> "Whitening":
        """Read a ``.npz`` written by :meth:`save` (arrays ``mu`` ``(dim,)`` and ``w`` ``(dim, k)``).
        Pickled objects are never loaded (``allow_pickle=False``).

        Raises:
            InputDataError: the file is not such an archive (not a zip, pickled objects, missing
                or misshapen arrays, NaN or infinite values), naming the file.
        """
        import zipfile

        path = str(path)
        what = "give a .npz saved by Whitening.save (arrays mu and w), or a text file to fit the whitening on"
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise InputDataError(f"not a .npz archive; {what}", path)
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in ("mu", "w") if k not in z.files]
                if missing:
                    raise InputDataError(f"the archive has no array {missing[0]!r} (it holds "
                                         f"{', '.join(z.files) or 'nothing'}); {what}", path)
                mu, w = z["mu"], z["w"]
        except ValueError as exc:
            if "pickle" in str(exc):
                raise InputDataError("the archive holds pickled Python objects, which nlptool never loads; "
                                     "save plain arrays with Whitening.save", path) from None
            raise InputDataError(f"cannot read the archive ({exc}); {what}", path) from None
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise InputDataError(f"cannot read the archive ({exc}); {what}", path) from None
        for name, a, ndim in (("mu", mu, 1), ("w", w, 2)):
            if a.dtype.kind not in "fiu" or a.ndim != ndim:
                raise InputDataError(f"array {name!r} is {a.dtype} with shape {a.shape}, expected "
                                     f"{'(dim,)' if ndim == 1 else '(dim, k)'} real numbers; {what}", path)
            if not (np.isfinite(a).all() and np.abs(a).max(initial=0.0) <= VALUE_MAX):
                raise InputDataError(f"array {name!r} holds NaN, infinite or huge values (|x| > {VALUE_MAX:g}: the "
                                     "whitened vectors would overflow)", path)
        if w.shape[0] != mu.shape[0] or w.shape[1] < 1:
            raise InputDataError(f"arrays mu {mu.shape} and w {w.shape} do not fit (expected (dim,) and (dim, k))",
                                 path)
        return cls(mu, w)


# --------------------------------------------------------------------------------------------
# IDF


def idf_from_corpus(token_lists, *, smooth: bool = True) -> tuple[dict[str, float], float]:
    """Inverse document frequency ``log((1 + N) / (1 + df)) + 1`` (natural log; sklearn's smooth
    IDF, always >= 1). Returns ``(table, default)`` where ``default`` is the IDF of an unseen token
    (``df = 0``)."""
    df: Counter = Counter()
    n = 0
    for toks in token_lists:
        n += 1
        df.update(set(toks))
    table = {t: math.log((1 + n) / (1 + c)) + 1.0 for t, c in df.items()}
    return table, math.log(1 + n) + 1.0


#: IDF tables shipped for built-in models: character IDF over the built-in model's training corpus.
#: A model directory may instead carry its own table as ``idf.tsv`` (zh-sim-mini does: the table of
#: the zh-bert-mini it was fine-tuned from, whose tokenizer it shares).
BUILTIN_IDF = {"zh-bert-mini": "zh-bert-mini.idf.tsv"}


def builtin_idf_path(model: str) -> str | None:
    """The default IDF table of ``model``: ``idf.tsv`` inside its directory (a built-in name's or a
    local one), else the table shipped for a built-in name in ``nlptool/data/similarity``, else ``None``."""
    from importlib.resources import files

    text = str(model)
    model_dir = None
    if text.startswith("zh-") and os.path.isdir(str(files("nlptool") / "data" / "models" / text)):
        model_dir = str(files("nlptool") / "data" / "models" / text)
    elif os.path.isdir(text):
        model_dir = text
    if model_dir and os.path.isfile(os.path.join(model_dir, "idf.tsv")):
        return os.path.join(model_dir, "idf.tsv")
    name = BUILTIN_IDF.get(text)
    if name is None:
        return None
    path = str(files("nlptool") / "data" / "similarity" / name)
    return path if os.path.isfile(path) else None


def load_whitening(spec: str | os.PathLike, embedder: Any, max_lines: int = 5000) -> "Whitening":
    """A :class:`Whitening` from ``spec`` (``embedder``: a :class:`~nlptool.similarity.embedders.ContextualEmbedder`): a ``.npz`` written by :meth:`Whitening.save`, or a text
    file whose first ``max_lines`` non-empty lines are embedded with ``embedder`` (same model and
    layers) to fit it.

    Raises:
        UsageError: the file does not exist, holds no text, or the ``.npz`` does not match the
            model's hidden size.
        InputDataError: not a whitening ``.npz`` (:meth:`Whitening.load`), a ``.npy`` or pickle,
            or a text file that is not UTF-8 (binary data), naming the file (and line).
    """
    spec = str(spec)
    if not os.path.isfile(spec):
        raise UsageError(f"whitening {spec}: no such file (give a .npz or a text file, one sentence per line)")
    with open(spec, "rb") as fh:
        head = fh.read(6)
    if spec.endswith(".npz") or head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        white = Whitening.load(spec)
    elif head.startswith((b"\x93NUMPY", b"\x80")):  # a .npy array or a pickle: never unpickled
        raise InputDataError("a .npy array or a pickle, not a whitening: give a .npz saved by Whitening.save "
                             "(arrays mu and w), or a text file (one sentence per line) to fit it on", spec)
    else:
        lines = []
        with open(spec, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                try:
                    ln = raw.decode("utf-8").strip()
                except UnicodeDecodeError:
                    raise InputDataError("not UTF-8 text: give a .npz saved by Whitening.save, or a text file "
                                         "(one sentence per line) to fit the whitening on", spec, lineno) from None
                if ln:
                    lines.append(ln)
                if len(lines) >= max_lines:
                    break
        old, embedder.whitening = embedder.whitening, None
        try:
            vecs = [d.vectors for d in embedder.embed(lines) if len(d)]
        finally:
            embedder.whitening = old
        if not vecs:
            raise UsageError(f"whitening {spec}: no text to fit the whitening on")
        white = Whitening.fit(np.concatenate(vecs))
    hidden = int(getattr(embedder.model.config, "hidden_size", white.mu.shape[0]) or white.mu.shape[0])
    if white.mu.shape[0] != hidden:
        raise UsageError(f"whitening {spec}: fitted for {white.mu.shape[0]} dimensions, the model has {hidden}")
    return white


#: The largest IDF weight a table may give (:data:`VALUE_MAX`). IDF weights are transport masses
#: and averaging weights: finite and >= 0 (a weight of ``1e308`` made every weight 0 after
#: normalisation, and different texts got similarity 1.0).
IDF_MAX = VALUE_MAX


def load_idf(path: str | os.PathLike, split: Callable[[str], list[str]]) -> tuple[dict[str, float], float]:
    """IDF weights from ``path``: either a table (every non-empty line ``token<TAB>idf``; unseen
    tokens get the table's largest value) or a corpus (one document per line, tokenised with
    ``split``, see :func:`idf_from_corpus`).

    Raises:
        UsageError: the file does not exist or is empty.
        InputDataError: a table weight that is not a finite number in ``[0, IDF_MAX]`` (``nan``,
            ``inf``, ``-1``, ``1e308``), naming the file and line.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise UsageError(f"IDF file {path}: no such file (give a corpus, one document per line, or a token<TAB>idf table)")
    with open(path, encoding="utf-8", errors="replace") as fh:
        numbered = [(i, ln.rstrip("\r\n")) for i, ln in enumerate(fh, start=1)]
    numbered = [(i, ln) for i, ln in numbered if ln.strip()]
    if not numbered:
        raise UsageError(f"IDF file {path}: the file is empty")
    table: dict[str, float] = {}
    is_table = True
    for _, ln in numbered:
        parts = ln.split("\t")
        if len(parts) != 2:
            is_table = False
            break
        try:
            table[parts[0]] = float(parts[1])
        except ValueError:
            is_table = False
            break
    if is_table:
        for i, ln in numbered:
            token, value = ln.split("\t")
            if not (math.isfinite(float(value)) and 0.0 <= float(value) <= IDF_MAX):
                raise InputDataError(f"the IDF weight of {token!r} is {value.strip()!r}; IDF weights must be "
                                     f"finite numbers from 0 to {IDF_MAX:g}", path, i)
        return table, max(table.values())
    return idf_from_corpus(split(ln) for _, ln in numbered)

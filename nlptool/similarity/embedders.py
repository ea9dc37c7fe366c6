"""Token vectors for the transport: a Hugging Face encoder's hidden states
(:class:`ContextualEmbedder`) or static word2vec vectors (:class:`StaticEmbedder`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np


from ..errors import UsageError
from .transport import MAX_SUPPORT, Doc, StreamQuantizer
from .weights import Whitening

#: A text longer than this many characters is tokenised piece by piece (pieces cut after
#: whitespace or punctuation), so no single text is ever held as one token list.
STREAM_CHARS = 20_000

#: A long text's windows are encoded at most this many tokens at a time (32 windows of 512),
#: whatever ``batch_size`` says: full windows are what a batch of a long text is made of.
STREAM_BATCH_TOKENS = 16_384


def text_pieces(text: str, size: int = STREAM_CHARS):
    """Consecutive pieces of ``text`` of at most ``size`` characters that join back to ``text``,
    each cut after the last whitespace or punctuation character of its second half (a hard cut
    only where there is none), so a tokenizer that splits at whitespace and punctuation (BERT's,
    jieba's) gives the same tokens piece by piece as for the whole text."""
    from ..text import is_punct_or_space

    start = 0
    while len(text) - start > size:
        end = start + size
        cut = next((i + 1 for i in range(end - 1, start + size // 2 - 1, -1) if is_punct_or_space(text[i])), end)
        yield text[start:cut]
        start = cut
    if start < len(text) or not text:
        yield text[start:]

# --------------------------------------------------------------------------------------------
# token vectors


def parse_layers(spec: str | int | Sequence[int]) -> tuple[int, ...]:
    """``"-1"`` -> ``(-1,)``; ``"1,-1"`` -> ``(1, -1)`` (averaged). Index 0 is the embedding
    output, ``L`` (or ``-1``) the last of ``L`` layers.

    Raises:
        UsageError: not a comma-separated list of integers.
    """
    if isinstance(spec, int):
        return (spec,)
    if not isinstance(spec, str):
        return tuple(int(x) for x in spec)
    try:
        layers = tuple(int(x) for x in spec.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"layers {spec!r}: expected an integer or a comma-separated list (e.g. -1 or 1,-1)") from None
    if not layers:
        raise UsageError("give at least one layer index")
    return layers


class ContextualEmbedder:
    """Token vectors of a Hugging Face encoder (hidden states of chosen layers, averaged).

    Texts are tokenised without special tokens; a text longer than the model's window is cut into
    consecutive windows of ``max_length - 2`` tokens, each wrapped in ``[CLS] ... [SEP]`` and encoded
    on its own, so every token gets a vector and nothing crashes (tokens near a window edge see
    less context). Sequences are sorted by length and run in batches under
    :func:`torch.inference_mode`; the special tokens' vectors are excluded.

    Long texts in bounded memory: a text of more than :data:`MAX_SUPPORT` tokens (or of more than
    :data:`STREAM_CHARS` characters) is streamed: tokenised in :func:`text_pieces`, its windows
    encoded ``batch_size`` (at most :data:`STREAM_BATCH_TOKENS` tokens) at a time, and each
    window's token vectors added to one :class:`StreamQuantizer` per metric, which keeps at most
    ``2 * MAX_SUPPORT`` weighted points. Its :class:`Doc` carries the two reduced measures
    (``Doc.measures``) and, as its one row, the exact weighted mean vector, so memory does not
    grow with the text and no transport problem exceeds ``MAX_SUPPORT`` points a side. Shorter
    texts keep one row per token, exactly as before.

    Args:
        loaded: a :class:`nlptool.models.LoadedModel` (``kind="encoder"``, or a masked-LM whose
            base model is used).
        layers: hidden-state indices averaged (see :func:`parse_layers`).
        batch_size: sequences per forward pass.
        idf: optional ``token -> idf``; tokens missing from it get ``idf_default``.
    """

    def __init__(self, loaded, layers: Sequence[int] = (-1,), batch_size: int = 64,
                 idf: dict[str, float] | None = None, idf_default: float = 1.0,
                 drop_punct: bool = False, whitening: "Whitening | None" = None):
        self.loaded = loaded
        self.model = getattr(loaded.model, "base_model", loaded.model)
        n_layers = int(getattr(self.model.config, "num_hidden_layers", 0) or 0)
        for layer in layers:
            if n_layers and not -(n_layers + 1) <= layer <= n_layers:
                raise UsageError(f"layer {layer}: the model has layers 0..{n_layers} (0 = embeddings, -1 = last)")
        self.layers = tuple(layers)
        self.batch_size = max(1, int(batch_size))
        self.idf = idf
        self.idf_default = idf_default
        self.drop_punct = drop_punct
        self.whitening = whitening
        tok = loaded.tokenizer
        self.tokenizer = tok
        self.prefix = [tok.cls_token_id] if tok.cls_token_id is not None else (
            [tok.bos_token_id] if tok.bos_token_id is not None else [])
        self.suffix = [tok.sep_token_id] if tok.sep_token_id is not None else (
            [tok.eos_token_id] if tok.eos_token_id is not None else [])
        self.window = max(1, loaded.max_length - len(self.prefix) - len(self.suffix))
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens."""
        if not texts:
            return []
        return [list(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def encode_ids(self, ids_list: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """``(n_tokens, hidden)`` float64 arrays, one per id list (windows joined back)."""
        import torch

        pieces: list[tuple[int, list[int]]] = []  # (text index, window ids)
        for t, ids in enumerate(ids_list):
            for s in range(0, len(ids), self.window):
                pieces.append((t, list(ids[s:s + self.window])))
        from ..batching import length_order

        order = length_order([len(p[1]) for p in pieces], descending=True)
        piece_vecs: list[np.ndarray | None] = [None] * len(pieces)
        dev = self.loaded.device
        n_pre = len(self.prefix)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch = order[start:start + self.batch_size]
                seqs = [self.prefix + pieces[p][1] + self.suffix for p in batch]
                width = max(len(s) for s in seqs)
                input_ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(seqs), width), dtype=torch.long)
                for r, s in enumerate(seqs):
                    input_ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
                    mask[r, : len(s)] = 1
                out = self.model(input_ids=input_ids.to(dev), attention_mask=mask.to(dev), output_hidden_states=True)
                hs = out.hidden_states
                h = hs[self.layers[0]].float()
                for layer in self.layers[1:]:
                    h = h + hs[layer].float()
                h = (h / len(self.layers)).cpu().numpy().astype(np.float64)
                for r, p in enumerate(batch):
                    n = len(pieces[p][1])
                    piece_vecs[p] = h[r, n_pre:n_pre + n]
        out_vecs: list[list[np.ndarray]] = [[] for _ in ids_list]
        for (t, _), v in zip(pieces, piece_vecs):
            out_vecs[t].append(v)
        hidden = int(getattr(self.model.config, "hidden_size", 0) or 0)
        return [np.concatenate(v) if v else np.zeros((0, hidden)) for v in out_vecs]

    def embed(self, texts: Sequence[str]) -> list[Doc]:
        """One :class:`Doc` per text (identical texts are encoded once); a text of more than
        :data:`MAX_SUPPORT` tokens gives a reduced :class:`Doc` (see the class)."""
        uniq = list(dict.fromkeys(texts))
        docs = {}
        short = [t for t in uniq if len(t) <= STREAM_CHARS]
        for text in uniq:
            if len(text) > STREAM_CHARS:
                docs[text] = self._streamed_doc(self.tokenize([p])[0] for p in text_pieces(text))
        ids = self.tokenize(short)
        for text, i in zip(short, ids):
            if len(i) > MAX_SUPPORT:
                docs[text] = self._streamed_doc(iter([i]))
        plain = [(t, i) for t, i in zip(short, ids) if t not in docs]
        uniq, ids = [t for t, _ in plain], [i for _, i in plain]
        vecs = self.encode_ids(ids)
        for text, i, v in zip(uniq, ids, vecs):
            toks, v, idf = self._token_rows(i, v)
            # key: the whole sequence, so texts differing only in punctuation are not identical
            docs[text] = Doc(tokens=toks, vectors=v, idf=idf, key=tuple(i))
        return [docs[t] for t in texts]

    def _token_rows(self, ids: Sequence[int], v: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray | None]:
        """``(tokens, vectors, idf)`` of one encoded id sequence (``v``: ``(len(ids), hidden)``) as
        the transport sees them: punctuation dropped with ``drop_punct``, then whitened, and each
        token's IDF weight (``None`` without an IDF table). The one place both the whole-text and
        the streamed path turn token vectors into rows."""
        toks = self.tokenizer.convert_ids_to_tokens(list(ids)) if len(ids) else []
        if self.drop_punct and toks:
            keep = [k for k, t in enumerate(toks) if not _is_punct_token(t)]
            toks, v = [toks[k] for k in keep], v[keep]
        if self.whitening is not None and len(toks):
            v = self.whitening.apply(v)
        idf = np.array([self.idf.get(t, self.idf_default) for t in toks]) if self.idf is not None else None
        return list(toks), v, idf

    def _streamed_doc(self, id_pieces) -> Doc:
        """The reduced :class:`Doc` of one long text given as consecutive lists of token ids:
        windows of the id stream (the same windows :meth:`encode_ids` cuts) are encoded
        ``batch_size`` at a time (at most :data:`STREAM_BATCH_TOKENS` tokens); each token vector,
        after ``drop_punct`` and whitening, goes to the WMD stream (point ``x``, mass ``idf``) and
        the WRD stream (point ``x / ||x||``, mass ``idf * ||x||``; zero vectors left out), each a
        :class:`StreamQuantizer` of :data:`MAX_SUPPORT` points. Memory: one batch of windows plus ``4 * MAX_SUPPORT`` points.
        The key is a SHA-256 of the whole id sequence (equal for identical texts). The Doc's one
        row is the exact IDF-weighted mean vector (for ``--pool mean``)."""
        import hashlib

        hidden = int(getattr(self.model.config, "hidden_size", 0) or 0)
        streams = {"wmd": StreamQuantizer(MAX_SUPPORT, "wmd"), "wrd": StreamQuantizer(MAX_SUPPORT, "wrd")}
        digest = hashlib.sha256()
        n_ids = 0
        n_kept = 0
        total = np.zeros(hidden)
        weight = 0.0

        def add(windows: list[list[int]]) -> None:
            nonlocal n_kept, total, weight
            for w, v in zip(windows, self.encode_ids(windows)):
                toks, v, idf = self._token_rows(w, v)
                if not toks:
                    continue
                if idf is None:
                    idf = np.ones(len(toks))
                n_kept += len(toks)
                total = total + idf @ v
                weight += float(idf.sum())
                streams["wmd"].add(idf, v)
                norms = np.linalg.norm(v, axis=1)
                nz = norms > 0
                streams["wrd"].add((idf * norms)[nz], v[nz] / norms[nz, None])

        per_batch = max(1, min(self.batch_size, STREAM_BATCH_TOKENS // self.window))
        pending: list[int] = []
        batch: list[list[int]] = []
        for piece in id_pieces:
            digest.update(np.asarray(piece, dtype=np.int64).tobytes())
            n_ids += len(piece)
            pending.extend(piece)
            while len(pending) >= self.window:
                batch.append(pending[: self.window])
                pending = pending[self.window:]
                if len(batch) == per_batch:
                    add(batch)
                    batch = []
        if pending:
            batch.append(pending)
        if batch:
            add(batch)
        key = ("sha256", digest.hexdigest(), n_ids)
        wmd = streams["wmd"].result()
        if not n_kept:
            return Doc(tokens=[], vectors=np.zeros((0, hidden)), key=key)
        measures = {"wmd": wmd, "wrd": streams["wrd"].result() if wmd is not None else None}
        mean = total / weight if weight > 0 else np.zeros(hidden)
        return Doc(tokens=[""], vectors=mean[None, :], counts=np.ones(1) if weight > 0 else np.zeros(1), key=key,
                   measures=measures)

    def split(self, text: str) -> list[str]:
        """The tokens IDF is counted over (the tokenizer's, without special tokens)."""
        return self.tokenizer.tokenize(text)


def _is_punct_token(token: str) -> bool:
    from ..text import is_punct_or_space

    t = token[2:] if token.startswith("##") else token
    return bool(t) and all(is_punct_or_space(ch) for ch in t)


class StaticEmbedder:
    """Word vectors from a word2vec file: words by :func:`nlptool.similarity.vectors.split_words`, repeated
    words merged into one row with its count (nBOW), OOV words recorded in :attr:`Doc.oov`.
    A text longer than :data:`STREAM_CHARS` characters is split into words piece by piece
    (:func:`text_pieces`) and identified by a SHA-256 of its words, so no whole word list is held."""

    def __init__(self, wv, idf: dict[str, float] | None = None, idf_default: float = 1.0):
        self.wv = wv
        self.idf = idf
        self.idf_default = idf_default

    def split(self, text: str) -> list[str]:
        from .vectors import split_words

        return split_words(text)

    def embed(self, texts: Sequence[str]) -> list[Doc]:
        import hashlib

        docs = []
        for text in texts:
            long = len(text) > STREAM_CHARS
            counts: Counter = Counter()
            rows: dict[str, int] = {}
            oov: list[str] = []
            seen_oov: dict[str, str] = {}
            known: list[str] = []
            digest = hashlib.sha256()
            for piece in (text_pieces(text) if long else [text]):
                for w in self.split(piece):
                    r = self.wv.lookup(w)
                    if r is None:
                        oov.append(seen_oov.setdefault(w, w))  # one string object per distinct word
                        continue
                    counts[w] += 1
                    rows[w] = r
                    if long:
                        digest.update(w.encode("utf-8", "surrogatepass") + b"\0")
                    else:
                        known.append(w)
            toks = list(counts)
            vecs = self.wv.vectors[[rows[w] for w in toks]] if toks else np.zeros((0, self.wv.dim))
            idf = None
            if self.idf is not None:
                idf = np.array([self.idf.get(w, self.idf_default) for w in toks])
            key = ("sha256", digest.hexdigest()) if long else tuple(known)
            docs.append(Doc(tokens=toks, vectors=vecs, counts=np.array([counts[w] for w in toks], dtype=float),
                            idf=idf, key=key, oov=oov))
        return docs

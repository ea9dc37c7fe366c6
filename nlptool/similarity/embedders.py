"""Token vectors for the transport: a Hugging Face encoder's hidden states
(:class:`ContextualEmbedder`) or static word2vec vectors (:class:`StaticEmbedder`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from ..errors import UsageError
from .transport import Doc

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
        """One :class:`Doc` per text (identical texts are encoded once)."""
        uniq = list(dict.fromkeys(texts))
        ids = self.tokenize(uniq)
        vecs = self.encode_ids(ids)
        docs = {}
        for text, i, v in zip(uniq, ids, vecs):
            toks = self.tokenizer.convert_ids_to_tokens(i) if i else []
            key = tuple(i)  # the whole sequence: texts differing only in punctuation are not identical
            if self.drop_punct and toks:
                keep = [k for k, t in enumerate(toks) if not _is_punct_token(t)]
                toks, v, i = [toks[k] for k in keep], v[keep], [i[k] for k in keep]
            if self.whitening is not None and len(toks):
                v = self.whitening.apply(v)
            idf = None
            if self.idf is not None:
                idf = np.array([self.idf.get(t, self.idf_default) for t in toks])
            docs[text] = Doc(tokens=list(toks), vectors=v, idf=idf, key=key)
        return [docs[t] for t in texts]

    def split(self, text: str) -> list[str]:
        """The tokens IDF is counted over (the tokenizer's, without special tokens)."""
        return self.tokenizer.tokenize(text)


def _is_punct_token(token: str) -> bool:
    from ..text import is_punct_or_space

    t = token[2:] if token.startswith("##") else token
    return bool(t) and all(is_punct_or_space(ch) for ch in t)


class StaticEmbedder:
    """Word vectors from a word2vec file: words by :func:`nlptool.vectors.split_words`, repeated
    words merged into one row with its count (nBOW), OOV words recorded in :attr:`Doc.oov`."""

    def __init__(self, wv, idf: dict[str, float] | None = None, idf_default: float = 1.0):
        self.wv = wv
        self.idf = idf
        self.idf_default = idf_default

    def split(self, text: str) -> list[str]:
        from ..vectors import split_words

        return split_words(text)

    def embed(self, texts: Sequence[str]) -> list[Doc]:
        docs = []
        for text in texts:
            words = self.split(text)
            counts: Counter = Counter()
            rows: dict[str, int] = {}
            oov = []
            for w in words:
                r = self.wv.lookup(w)
                if r is None:
                    oov.append(w)
                    continue
                counts[w] += 1
                rows[w] = r
            toks = list(counts)
            vecs = self.wv.vectors[[rows[w] for w in toks]] if toks else np.zeros((0, self.wv.dim))
            idf = None
            if self.idf is not None:
                idf = np.array([self.idf.get(w, self.idf_default) for w in toks])
            docs.append(Doc(tokens=toks, vectors=vecs, counts=np.array([counts[w] for w in toks], dtype=float),
                            idf=idf, key=tuple(w for w in words if w in rows), oov=oov))
        return docs

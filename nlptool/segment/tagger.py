"""The character tagger of ``segment --method tagger`` (zh-seg-mini): model, saved format, inference.

Between every two neighbouring units of a clause (units and clauses as in :mod:`nlptool.segment.api.api`:
a Chinese character, or a whole Latin/digit run) it predicts ``p(join)``, the probability that the
two belong to the same word. Model: character embeddings (initialised from the teacher BERT's input
embeddings) -> dropout -> one bidirectional LSTM layer -> for each neighbour pair ``(i-1, i)`` a
linear layer on ``[h_{i-1}; h_i]`` giving the join logit. About 0.9 M parameters, 3.5 MB in fp16.

The saved format is nlptool's own (no transformers needed at inference): ``config.json``
(``model_type: "nlptool-char-tagger"``), ``model.safetensors`` (fp16), ``vocab.txt`` (one unit
per line, line number = id), ``lexicon.tsv`` and a ``README.md`` model card. Training:
:mod:`nlptool.segment.api.train`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..text import latin_digit_run
from .lexicon import LEXICON_FILE, Lexicon


MODEL_TYPE = "nlptool-char-tagger"
#: Specials of the tagger vocabulary appended after the teacher's vocabulary.
NUM, ENG = "[NUM]", "[ENG]"
#: Longest clause (units) the tagger sees at once; longer runs are cut into windows.
TAGGER_MAX_UNITS = 256


def is_tagger_dir(path: str | os.PathLike) -> bool:
    """True when ``path/config.json`` says ``model_type: nlptool-char-tagger``."""
    try:
        with open(Path(path) / "config.json", encoding="utf-8") as fh:
            return json.load(fh).get("model_type") == MODEL_TYPE
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------------------- model


def _build_module(vocab_size: int, emb_dim: int, hidden: int, dropout: float):
    import torch
    from torch import nn

    class CharTagger(nn.Module):
        """Embedding -> BiLSTM -> join logit per neighbour pair. Input ``ids`` (batch, n) with
        0 = padding; output logits (batch, n - 1), logit > 0 means join."""

        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab_size, emb_dim, padding_idx=0)
            self.drop = nn.Dropout(dropout)
            self.lstm = nn.LSTM(emb_dim, hidden, num_layers=1, batch_first=True, bidirectional=True)
            self.head = nn.Linear(4 * hidden, 1)

        def forward(self, ids, lengths=None):
            x = self.drop(self.embed(ids))
            if lengths is not None:
                packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
                h, _ = self.lstm(packed)
                h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=ids.shape[1])
            else:
                h, _ = self.lstm(x)
            h = self.drop(h)
            pair = torch.cat([h[:, :-1], h[:, 1:]], dim=-1)
            return self.head(pair).squeeze(-1)

    return CharTagger()


@dataclass
class TaggerVocab:
    """Unit string -> id. Id 0 is padding, 1 unknown; Latin/digit runs map to ``[NUM]``/``[ENG]``."""

    units: list[str]
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        if not self.index:
            self.index = {u: i for i, u in enumerate(self.units)}
        self.unk = self.index.get("[UNK]", 1)
        self.num = self.index.get(NUM, self.unk)
        self.eng = self.index.get(ENG, self.unk)

    def __len__(self) -> int:
        return len(self.units)

    def id_of(self, unit: str) -> int:
        """Id of one unit (its model form: NFKC single characters, traditional already converted)."""
        i = self.index.get(unit)
        if i is not None:
            return i
        run = latin_digit_run(unit)
        return self.unk if run is None else self.num if run == "num" else self.eng




@dataclass
class LoadedTagger:
    """A tagger on a device, shaped like :class:`nlptool.models.LoadedModel` (``name``, ``path``,
    ``tokenizer`` = the vocabulary, ``model``, ``device``) so the CLI treats both alike.
    ``config`` is the saved config.json (teacher name, fallback threshold, training record,
    ``lexicon_weight``/``lexicon_bonus``); ``lexicon`` the unigram word LM decoded with the tagger
    (:func:`lexicon_decode`), None for a tagger saved without one (plain ``p(join) >= 0.5``)."""

    name: str
    path: str
    tokenizer: TaggerVocab
    model: object
    device: object
    config: dict
    lexicon: "Lexicon | None" = None

    @property
    def max_length(self) -> int:
        return TAGGER_MAX_UNITS


def new_tagger(vocab: TaggerVocab, *, emb_dim: int = 256, hidden: int = 128, dropout: float = 0.2, init=None):
    """A fresh :class:`CharTagger` torch module; ``init`` (``(len(vocab), emb_dim)`` array) sets
    the embedding rows (the teacher's input embeddings)."""
    import torch

    net = _build_module(len(vocab), emb_dim, hidden, dropout)
    if init is not None:
        with torch.no_grad():
            net.embed.weight.copy_(torch.as_tensor(np.asarray(init), dtype=torch.float32))
            net.embed.weight[0].zero_()
    return net


def save_tagger(net, vocab: TaggerVocab, out: str | os.PathLike, config: dict, lexicon: "Lexicon | None" = None) -> None:
    """Write ``config.json``, ``model.safetensors`` (fp16), ``vocab.txt`` and, given a lexicon,
    ``lexicon.tsv`` into ``out``."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = {"model_type": MODEL_TYPE, **config, "vocab_size": len(vocab)}
    state = {k: v.detach().to("cpu").half().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(out / "model.safetensors"))
    (out / "vocab.txt").write_text("".join(u.replace("\n", " ") + "\n" for u in vocab.units), encoding="utf-8")
    (out / "config.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    if lexicon is not None:
        lexicon.save(out / LEXICON_FILE)


def load_tagger(path: str | os.PathLike, *, name: str | None = None, device=None) -> LoadedTagger:
    """Load a tagger saved by :func:`save_tagger` (plain torch + safetensors: no transformers).

    Raises:
        ModelError: the directory is not a tagger or its files are unreadable.
    """
    import torch
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"{path}: a segmenter is a local directory written by `nlptool train segmenter` or the "
                         "built-in zh-seg-mini (hub ids are not supported for the tagger)")
    if not is_tagger_dir(path):
        raise ModelError(f"{path}: not a segmenter model (config.json model_type is not {MODEL_TYPE!r})")
    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
        units = (path / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
        state = load_file(str(path / "model.safetensors"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot load the segmenter: {exc}") from None
    vocab = TaggerVocab(units)
    net = _build_module(len(vocab), int(cfg["emb_dim"]), int(cfg["hidden"]), 0.0)
    try:
        net.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not match config.json: {str(exc)[:200]}") from None
    lexicon = Lexicon.load(path / LEXICON_FILE) if (path / LEXICON_FILE).is_file() else None
    dev = device if device is not None else torch.device("cpu")
    net = net.to(dev).eval()
    return LoadedTagger(name or str(path), str(path), vocab, net, dev, cfg, lexicon)


# ----------------------------------------------------------------------------------- inference


def join_probabilities(tagger: LoadedTagger, clauses: Sequence[Sequence[int]], *, batch_size: int = 256) -> list[np.ndarray]:
    """``p(join)`` between neighbours for clauses of unit ids; ``out[k]`` has shape ``(n_k - 1,)``.

    Clauses are sorted by length, padded per batch and run under ``torch.inference_mode()``.
    """
    import torch

    net = tagger.model
    out: list[np.ndarray | None] = [None] * len(clauses)
    from ..batching import length_order

    order = length_order([len(c) for c in clauses])
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            idx = [k for k in order[s : s + batch_size]]
            short = [k for k in idx if len(clauses[k]) < 2]
            for k in short:
                out[k] = np.zeros(0, dtype=np.float32)
            idx = [k for k in idx if len(clauses[k]) >= 2]
            if not idx:
                continue
            n = max(len(clauses[k]) for k in idx)
            ids = torch.zeros((len(idx), n), dtype=torch.long)
            for r, k in enumerate(idx):
                ids[r, : len(clauses[k])] = torch.as_tensor(clauses[k])
            # padding sits on the right and the forward direction never sees it; the backward
            # direction would, so lengths pack the batch when it is ragged
            lengths = torch.as_tensor([len(clauses[k]) for k in idx])
            ragged = bool((lengths != n).any())
            logits = net(ids.to(tagger.device), lengths if ragged else None).float()
            p = torch.sigmoid(logits).cpu().numpy()
            for r, k in enumerate(idx):
                out[k] = p[r, : len(clauses[k]) - 1]
    return out  # type: ignore[return-value]

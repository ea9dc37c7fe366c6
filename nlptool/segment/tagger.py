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
from ..models import OWN_FORMATS, read_model_config
from ..text import latin_digit_run
from .lexicon import LEXICON_FILE, Lexicon


MODEL_TYPE = OWN_FORMATS["char-tagger"][0]  # the registry of formats holds the name
#: Specials of the tagger vocabulary appended after the teacher's vocabulary.
NUM, ENG = "[NUM]", "[ENG]"
#: Longest clause (units) the tagger sees at once; longer runs are cut into windows.
TAGGER_MAX_UNITS = 256


def is_tagger_dir(path: str | os.PathLike) -> bool:
    """True when ``path/config.json`` says ``model_type: nlptool-char-tagger``."""
    return (read_model_config(path) or {}).get("model_type") == MODEL_TYPE


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

    Clauses are sorted by length and batched (:func:`join_probabilities_flat`).
    """
    lengths = np.fromiter((len(c) for c in clauses), dtype=np.int64, count=len(clauses))
    offsets = np.zeros(len(clauses) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.fromiter((i for c in clauses for i in c), dtype=np.int64, count=int(offsets[-1]))
    flat = join_probabilities_flat(tagger, ids, offsets, batch_size=batch_size)
    pairs = np.maximum(lengths - 1, 0)
    starts = np.cumsum(pairs) - pairs  # clause k's pairs: flat[starts[k] : starts[k] + pairs[k]]
    return [flat[a : a + n] for a, n in zip(starts.tolist(), pairs.tolist())]


def join_probabilities_flat(tagger: LoadedTagger, ids: np.ndarray, offsets: np.ndarray, *,
                            batch_size: int = 256) -> np.ndarray:
    """``p(join)`` of every neighbour pair of many clauses stored flat: ``ids`` (n_units,) unit ids,
    clause k is ``ids[offsets[k] : offsets[k + 1]]``. Returns float32 ``(sum of max(n_k - 1, 0),)``,
    the pairs of the clauses in order (``offsets[k] - k`` is where clause k's start when no clause is empty).

    Clauses are sorted by length (longest first) and run ``batch_size`` at a time under
    ``torch.inference_mode()``. On a CPU an evaluation-mode :class:`CharTagger` runs through
    :class:`_CpuBiLSTM` (the same function, fewer operations); elsewhere (CUDA, a module in training
    mode) the torch module itself runs on padded batches.
    """
    import torch

    ids = np.asarray(ids, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    pairs = np.maximum(lengths - 1, 0)
    pair_start = np.cumsum(pairs) - pairs
    out = np.zeros(int(pairs.sum()), dtype=np.float32)
    order = np.argsort(-lengths, kind="stable")
    order = order[lengths[order] >= 2]
    if not len(order):
        return out
    net = tagger.model
    runner = _cpu_runner(net) if getattr(tagger.device, "type", str(tagger.device)) == "cpu" else None
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            rows = order[s : s + batch_size]
            L = lengths[rows]
            T = int(L[0])
            # (T, B) ids, time-major; 0 (padding) after each clause's end
            t_idx = np.arange(T)[:, None]
            valid = t_idx < L[None, :]
            ids_tb = np.where(valid, ids[np.minimum(offsets[rows][None, :] + t_idx, len(ids) - 1)], 0)
            if runner is not None:
                p = runner(torch.from_numpy(ids_tb), L)  # (T - 1, B)
            else:
                x = torch.from_numpy(np.ascontiguousarray(ids_tb.T)).to(tagger.device)
                # padding sits on the right and the forward direction never sees it; the backward
                # direction would, so lengths pack the batch when it is ragged
                lens = torch.from_numpy(L)
                logits = net(x, lens if bool((L != T).any()) else None).float()
                p = torch.sigmoid(logits).cpu().numpy().T
            pairs = valid[1:]  # pair t-1 of a row exists when unit t does
            dest = (pair_start[rows][None, :] + t_idx[:-1])[pairs]
            out[dest] = p[pairs]
    return out


_RUNNERS = None  # net -> (weights key, _CpuBiLSTM), a weakref.WeakKeyDictionary once used


def _cpu_runner(net):
    """The cached :class:`_CpuBiLSTM` of ``net`` (rebuilt when a weight changed in place, as in
    training), or None when ``net`` is not an evaluation-mode one-layer bidirectional CharTagger."""
    global _RUNNERS
    import weakref

    lstm = getattr(net, "lstm", None)
    if (net.training or lstm is None or getattr(net, "embed", None) is None or getattr(net, "head", None) is None
            or lstm.num_layers != 1 or not lstm.bidirectional or not lstm.batch_first or lstm.proj_size
            or not lstm.bias):
        return None
    if _RUNNERS is None:
        _RUNNERS = weakref.WeakKeyDictionary()
    key = tuple((p.data_ptr(), p._version, p.dtype) for p in net.parameters())
    cached = _RUNNERS.get(net)
    if cached is None or cached[0] != key:
        cached = (key, _CpuBiLSTM(net))
        _RUNNERS[net] = cached
    return cached[1]


class _CpuBiLSTM:
    """CPU inference of :class:`CharTagger` (embedding -> BiLSTM -> pair head), equal to the module
    up to float rounding (|dp| ~ 1e-6), with less work per character:

    * the input half of every gate, ``W_ih e(x) + b_ih + b_hh``, depends on the unit id alone, so it
      is computed once per id (a row of a ``(vocab, 4H)`` table per direction, filled lazily: one
      line touches a few rows) and gathered, instead of a ``(chars, emb) x (emb, 4H)`` product per
      batch (2/3 of the LSTM's multiply-adds);
    * rows are sorted longest first, so the clauses still running at time t are a prefix of the
      batch: each step multiplies only those (no padding is computed, no packing needed; the
      backward direction starts each row at its own end with a zero state);
    * the four gates take one in-place sigmoid: the cell-input gate's weights are doubled (exact in
      floating point) and ``tanh(x) = 2 sigmoid(2x) - 1`` (torch's CPU tanh is several times slower
      than its sigmoid).

    The recurrent ``(m, H) x (H, 4H)`` products are then most of the time (Hochreiter &
    Schmidhuber 1997; gate order of ``torch.nn.LSTM``: i, f, g, o).
    """

    def __init__(self, net):
        import torch

        lstm = net.lstm
        H = lstm.hidden_size
        self.H = H
        with torch.no_grad():
            self.embed = net.embed.weight.detach().float()
            self.w_ih, self.bias, self.w_hh = [], [], []
            for sfx in ("", "_reverse"):
                def reorder(w):  # i, f, g, o -> i, f, o, 2g
                    i, f, g, o = w.float().chunk(4, 0)
                    return torch.cat([i, f, o, g * 2], 0)

                self.w_ih.append(reorder(getattr(lstm, "weight_ih_l0" + sfx)).t().contiguous())
                self.bias.append(reorder(getattr(lstm, "bias_ih_l0" + sfx) + getattr(lstm, "bias_hh_l0" + sfx)))
                self.w_hh.append(reorder(getattr(lstm, "weight_hh_l0" + sfx)).t().contiguous())
            w = net.head.weight.detach().float()[0]  # [h_f(i-1), h_b(i-1), h_f(i), h_b(i)]
            self.head = (torch.stack([w[:H], w[2 * H : 3 * H]], 1).contiguous(),
                         torch.stack([w[H : 2 * H], w[3 * H :]], 1).contiguous())  # (H, 2) each: prev, cur
            self.head_bias = net.head.bias.detach().float()[0]
        V = self.embed.shape[0]
        self.table = [torch.empty(V, 4 * H), torch.empty(V, 4 * H)]
        self.filled = np.zeros(V, dtype=bool)

    def _fill(self, ids_tb: np.ndarray) -> None:
        import torch

        u = np.unique(ids_tb)
        new = u[~self.filled[u]]
        if len(new):
            sel = torch.from_numpy(new)
            e = self.embed.index_select(0, sel)
            for d in range(2):
                self.table[d][sel] = torch.addmm(self.bias[d], e, self.w_ih[d])
            self.filled[new] = True

    def _direction(self, d: int, ids, active: list[int], T: int, B: int):
        """Run direction ``d`` (0 forward, 1 backward) over the batch; returns the head's two
        scores per unit, (T, B, 2): its part of the logit of the pair before and after the unit."""
        import torch

        H = self.H
        table, w_hh, head = self.table[d], self.w_hh[d], self.head[d]
        scores = torch.zeros(T, B, 2)
        hs = (torch.zeros(B, H), torch.zeros(B, H))  # h of the previous and of this step, alternating
        c = torch.zeros(B, H)
        first = True
        for step, t in enumerate(range(T) if d == 0 else range(T - 1, -1, -1)):
            m = active[t]
            g = table.index_select(0, ids[t, :m])  # (m, 4H): i, f, o, 2g
            if not first:  # (the backward direction's new rows read zeros: rows never written)
                g.addmm_(hs[(step + 1) % 2][:m], w_hh)
            first = False
            g.sigmoid_()
            i, f, o, g2 = g[:, :H], g[:, H : 2 * H], g[:, 2 * H : 3 * H], g[:, 3 * H :]
            g2.mul_(2).sub_(1)  # tanh of the cell input
            cm = c[:m]
            cm.mul_(f).addcmul_(i, g2)
            h = hs[step % 2][:m]
            torch.mul(cm, 2, out=h).sigmoid_().mul_(2).sub_(1).mul_(o)  # o * tanh(c)
            torch.mm(h, head, out=scores[t, :m])
        return scores

    def __call__(self, ids, lengths: np.ndarray):
        """``ids`` (T, B) long tensor, rows sorted by ``lengths`` (longest first, T = lengths[0]);
        returns ``p(join)`` (T - 1, B) as a float32 array (rows past their end are junk)."""
        import torch

        T, B = ids.shape
        self._fill(ids.numpy())
        # rows still running at time t (lengths > t): a prefix, the rows being sorted longest first
        active = (B - np.searchsorted(lengths[::-1], np.arange(T), side="right")).tolist()
        s = self._direction(0, ids, active, T, B).add_(self._direction(1, ids, active, T, B))  # (T, B, 2)
        logits = s[:-1, :, 0] + s[1:, :, 1] + self.head_bias
        return torch.sigmoid(logits).numpy()

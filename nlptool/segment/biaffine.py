"""The self-trained dependency parser of ``segment --parse dependency --parse-method student``.

A small biaffine parser (Dozat & Manning, "Deep Biaffine Attention for Neural Dependency Parsing",
ICLR 2017) trained without a treebank: its training trees are those of a label-free teacher
(Perturbed Masking's impact matrix decoded by Eisner, :func:`nlptool.segment.api.parse_words`) on
raw text segmented by the built-in tagger, and then its own trees, round after round (self-training,
as Li, Song, Su and Shao, Findings of ACL 2022 do for segmentation). Training:
:mod:`nlptool.segment.train_parser` (``nlptool train parser``).

Model: a word is the sum of its word embedding (the training corpus's frequent words; others share
``[UNK]``) and a projection of its characters (mean, first and last character embeddings) and of a
punctuation flag; a two-layer BiLSTM runs over ``[ROOT] w_1 .. w_n``; two MLPs give each position a
head and a dependent vector, and the arc score is ``s[h, d] = dep_d · W · head_h + b · head_h``.
Decoding is Eisner's projective algorithm on the arc log-probabilities, with punctuation never
heading a word (:func:`nlptool.segment.parsing.forbid_heads`).

Saved format (nlptool's own, no transformers): ``config.json`` (``model_type: "nlptool-biaffine-parser"``),
``model.safetensors`` (fp16), ``words.txt`` and ``chars.txt`` (one entry per line, line number = id).
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..models import OWN_FORMATS, read_model_config

MODEL_TYPE = OWN_FORMATS["dependency-parser"][0]  # the registry of formats holds the name
PAD, UNK, ROOT = "[PAD]", "[UNK]", "[ROOT]"
#: Longest sentence (words) the parser sees at once; longer ones are cut into windows.
PARSER_MAX_WORDS = 200


def is_parser_dir(path: str | os.PathLike) -> bool:
    """True when ``path/config.json`` says ``model_type: nlptool-biaffine-parser``."""
    return (read_model_config(path) or {}).get("model_type") == MODEL_TYPE


class Vocab:
    """String -> id; id 0 is padding, 1 unknown, 2 the root symbol."""

    def __init__(self, items: Sequence[str]):
        self.items = list(items)
        self.index = {w: i for i, w in enumerate(self.items)}

    def __len__(self) -> int:
        return len(self.items)

    def id_of(self, item: str) -> int:
        return self.index.get(item, 1)

    @classmethod
    def build(cls, counts: dict[str, int], min_count: int) -> "Vocab":
        kept = sorted((w for w, c in counts.items() if c >= min_count and w not in (PAD, UNK, ROOT)),
                      key=lambda w: (-counts[w], w))
        return cls([PAD, UNK, ROOT, *kept])


def word_form(word: str) -> str:
    """The form the parser looks words up by: NFKC, digits and Latin letters folded (``0`` / ``a``)."""
    w = unicodedata.normalize("NFKC", word.strip())
    out = []
    for c in w:
        if c.isdigit():
            out.append("0")
        elif c.isascii() and c.isalpha():
            out.append("a")
        else:
            out.append(c)
    return "".join(out)


def _build_module(n_words: int, n_chars: int, word_dim: int, char_dim: int, hidden: int, arc_dim: int,
                  dropout: float):
    import torch
    from torch import nn

    class BiaffineParser(nn.Module):
        """``forward(words (B, T), chars (B, T, C), punct (B, T), lengths (B,))`` -> arc scores
        ``(B, T, T)`` with ``[b, d, h]`` the score of head h for dependent d; position 0 is ``[ROOT]``."""

        def __init__(self):
            super().__init__()
            self.word = nn.Embedding(n_words, word_dim, padding_idx=0)
            self.char = nn.Embedding(n_chars, char_dim, padding_idx=0)
            self.proj = nn.Linear(3 * char_dim + 1, word_dim)
            self.drop = nn.Dropout(dropout)
            self.lstm = nn.LSTM(word_dim, hidden, num_layers=2, batch_first=True, bidirectional=True,
                                dropout=dropout)
            self.head_mlp = nn.Sequential(nn.Linear(2 * hidden, arc_dim), nn.LeakyReLU(0.1), nn.Dropout(dropout))
            self.dep_mlp = nn.Sequential(nn.Linear(2 * hidden, arc_dim), nn.LeakyReLU(0.1), nn.Dropout(dropout))
            self.W = nn.Parameter(torch.zeros(arc_dim, arc_dim))
            self.b = nn.Parameter(torch.zeros(arc_dim))

        def forward(self, words, chars, punct, lengths):
            cmask = (chars > 0).float()
            ce = self.char(chars)
            mean = (ce * cmask.unsqueeze(-1)).sum(2) / cmask.sum(2, keepdim=True).clamp(min=1.0)
            first = ce[:, :, 0]
            last_idx = (cmask.sum(2).long() - 1).clamp(min=0)
            last = ce.gather(2, last_idx[:, :, None, None].expand(-1, -1, 1, ce.shape[-1])).squeeze(2)
            x = self.word(words) + self.proj(torch.cat([mean, first, last, punct.unsqueeze(-1).float()], -1))
            x = self.drop(x)
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            h, _ = self.lstm(packed)
            h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=words.shape[1])
            h = self.drop(h)
            hd, dp = self.head_mlp(h), self.dep_mlp(h)
            scores = torch.einsum("bda,ac,bhc->bdh", dp, self.W, hd) + (hd @ self.b).unsqueeze(1)
            T = words.shape[1]
            valid = torch.arange(T, device=words.device)[None, :] < lengths[:, None]
            return scores.masked_fill(~valid[:, None, :], float("-inf"))

    return BiaffineParser()


@dataclass
class LoadedParser:
    """A parser on a device, shaped like :class:`nlptool.models.LoadedModel` (``name``, ``path``,
    ``model``, ``device``); ``words``/``chars`` are its vocabularies, ``config`` its config.json."""

    name: str
    path: str
    model: object
    device: object
    config: dict
    words: Vocab
    chars: Vocab

    @property
    def max_length(self) -> int:
        return PARSER_MAX_WORDS


def new_parser(words: Vocab, chars: Vocab, *, word_dim: int = 128, char_dim: int = 64, hidden: int = 160,
               arc_dim: int = 128, dropout: float = 0.33):
    """A fresh :class:`BiaffineParser` torch module for the given vocabularies."""
    return _build_module(len(words), len(chars), word_dim, char_dim, hidden, arc_dim, dropout)


def config_of(net) -> dict:
    """The sizes :func:`load_parser` needs to rebuild ``net``."""
    return {"word_dim": net.word.embedding_dim, "char_dim": net.char.embedding_dim,
            "hidden": net.lstm.hidden_size, "arc_dim": net.W.shape[0]}


def save_parser(net, words: Vocab, chars: Vocab, out: str | os.PathLike, config: dict) -> None:
    """Write ``config.json``, ``model.safetensors`` (fp16), ``words.txt`` and ``chars.txt`` into ``out``."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = {"model_type": MODEL_TYPE, **config_of(net), **config}
    state = {k: v.detach().to("cpu").half().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(out / "model.safetensors"))
    for name, vocab in (("words.txt", words), ("chars.txt", chars)):
        (out / name).write_text("".join(w.replace("\n", " ") + "\n" for w in vocab.items), encoding="utf-8")
    (out / "config.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def load_parser(path: str | os.PathLike, *, name: str | None = None, device=None) -> LoadedParser:
    """Load a parser saved by :func:`save_parser` (plain torch + safetensors).

    Raises:
        ModelError: the directory is not a parser or its files are unreadable.
    """
    import torch
    from safetensors.torch import load_file

    path = Path(path)
    cfg = read_model_config(path) or {}  # read once: the format check and the sizes
    if cfg.get("model_type") != MODEL_TYPE:
        raise ModelError(f"{path}: not a dependency parser (config.json model_type is not {MODEL_TYPE!r})")
    try:
        words = Vocab((path / "words.txt").read_text(encoding="utf-8").split("\n")[:-1])
        chars = Vocab((path / "chars.txt").read_text(encoding="utf-8").split("\n")[:-1])
        state = load_file(str(path / "model.safetensors"))
        net = _build_module(len(words), len(chars), int(cfg["word_dim"]), int(cfg["char_dim"]),
                            int(cfg["hidden"]), int(cfg["arc_dim"]), 0.0)
        net.load_state_dict({k: v.float() for k, v in state.items()})
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"{path}: cannot load the parser: {str(exc)[:200]}") from None
    dev = device if device is not None else torch.device("cpu")
    return LoadedParser(name or str(path), str(path), net.to(dev).eval(), dev, cfg, words, chars)


# ----------------------------------------------------------------------------------- batching


def encode_batch(word_lists: Sequence[Sequence[str]], words: Vocab, chars: Vocab, device=None):
    """Tensors of a batch of sentences, ``[ROOT]`` prepended: ``(words (B, T), chars (B, T, C),
    punct (B, T), lengths (B,))`` with ``T = 1 + max n``, ``C`` the longest word in characters (≤ 8)."""
    import torch

    from .parsing import punctuation_word

    B = len(word_lists)
    T = 1 + max((len(w) for w in word_lists), default=0)
    forms = [[word_form(w) for w in ws] for ws in word_lists]
    C = max(1, min(8, max((len(f) for fs in forms for f in fs), default=1)))
    W = np.zeros((B, T), dtype=np.int64)
    Ch = np.zeros((B, T, C), dtype=np.int64)
    P = np.zeros((B, T), dtype=np.int64)
    L = np.zeros(B, dtype=np.int64)
    root = words.index[ROOT]
    for b, (ws, fs) in enumerate(zip(word_lists, forms)):
        W[b, 0] = root
        Ch[b, 0, 0] = chars.index[ROOT]
        L[b] = len(ws) + 1
        for i, (w, f) in enumerate(zip(ws, fs), start=1):
            W[b, i] = words.id_of(f)
            cs = f[:C - 1] + f[-1] if len(f) > C else f
            if not cs:
                Ch[b, i, 0] = 1
            for j, c in enumerate(cs):
                Ch[b, i, j] = chars.id_of(c)
            P[b, i] = punctuation_word(w)
    t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
    return t(W), t(Ch), t(P), t(L)


def arc_log_probs(parser: LoadedParser, word_lists: Sequence[Sequence[str]], *, batch_size: int = 64) -> list[np.ndarray]:
    """Per sentence of n words, ``(n, n + 1)`` log-probabilities ``[d, h]`` of head h (0 = root) for word d."""
    import torch

    from ..batching import length_batches

    out: list[np.ndarray] = [np.zeros((0, 1))] * len(word_lists)  # an empty sentence keeps this
    with torch.inference_mode():
        for rows in length_batches([len(w) for w in word_lists], batch_size, descending=True):
            batch = [word_lists[i] for i in rows]
            if not len(batch[0]):  # longest first: the rest are empty too
                continue
            scores = parser.model(*encode_batch(batch, parser.words, parser.chars, parser.device))
            lp = torch.log_softmax(scores.float(), dim=-1).cpu().numpy()
            for b, i in enumerate(rows):
                n = len(word_lists[i])
                out[i] = lp[b, 1 : n + 1, : n + 1]
    return out


def decode_heads(logp: np.ndarray, words: Sequence[str], *, punctuation_heads: bool = False) -> list[int]:
    """Best projective tree (Eisner) of one sentence from :func:`arc_log_probs` output ``(n, n + 1)``;
    1-based heads, 0 = root. Punctuation words head nothing unless ``punctuation_heads``."""
    from .parsing import eisner, forbid_heads, punctuation_word

    n = len(words)
    if n == 0:
        return []
    scores = logp[:, 1:].T.astype(np.float64)  # [h, d]
    root = logp[:, 0].astype(np.float64)
    if not punctuation_heads:
        scores, root = forbid_heads(scores, root, [punctuation_word(w) for w in words])
    return eisner(scores, root)[0]


def parse_with_student(parser: LoadedParser, word_lists: Sequence[Sequence[str]], *, batch_size: int = 64,
                       punctuation_heads: bool = False) -> list[list[int]]:
    """1-based heads (0 = root) of each word list, by :func:`arc_log_probs` and :func:`decode_heads`.
    Sentences longer than :data:`PARSER_MAX_WORDS` are parsed in windows whose roots attach to the
    first window's root."""
    windows: list[list[str]] = []
    owners: list[tuple[int, int]] = []
    for s, ws in enumerate(word_lists):
        for a in range(0, max(len(ws), 1), PARSER_MAX_WORDS):
            windows.append(list(ws[a : a + PARSER_MAX_WORDS]))
            owners.append((s, a))
    lps = arc_log_probs(parser, windows, batch_size=batch_size)
    heads: list[list[int]] = [[] for _ in word_lists]
    first_root: dict[int, int] = {}
    for (s, a), w, lp in zip(owners, windows, lps):
        h = decode_heads(lp, w, punctuation_heads=punctuation_heads)
        for d, hh in enumerate(map(int, h)):
            if hh == 0:
                if s in first_root:
                    hh = first_root[s]
                else:
                    first_root[s] = a + d + 1
                    hh = 0
            else:
                hh = a + hh
            heads[s].append(hh)
    return heads


# ----------------------------------------------------------------------------------- training


def build_vocabs(word_lists: Sequence[Sequence[str]], *, min_word: int = 3, min_char: int = 2) -> tuple[Vocab, Vocab]:
    """Word and character vocabularies of a training corpus: forms (:func:`word_form`) seen at
    least ``min_word`` / ``min_char`` times."""
    from collections import Counter

    wc: Counter = Counter()
    cc: Counter = Counter()
    for ws in word_lists:
        for w in ws:
            f = word_form(w)
            wc[f] += 1
            cc.update(f)
    return Vocab.build(wc, min_word), Vocab.build(cc, min_char)


def train_student(net, words: Vocab, chars: Vocab, word_lists: Sequence[Sequence[str]], heads: Sequence[Sequence[int]],
                  *, epochs: float = 2.0, batch_size: int = 32, lr: float = 2e-3, seed: int = 0,
                  word_dropout: float = 0.1, log=None, progress=None, device=None) -> dict:
    """Fit ``net`` to the given trees (1-based heads, 0 = root) by the cross-entropy of each word's
    head (the biaffine parser's local loss; Dozat & Manning 2017). Adam, linear decay to 0.
    ``word_dropout``: share of word ids replaced by ``[UNK]`` in training, so rare words lean on
    their characters. ``progress(done, total)`` is called after every step. Returns ``{"steps": int, "loss": float}`` (mean loss of the last 10 %)."""
    import torch

    from ..batching import length_batches

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    n = len(word_lists)
    steps = max(1, int(round(epochs * n / batch_size)))
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.9))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / steps))
    net.train()
    losses = []
    # length-bucketed batches (nlptool.batching) within shuffled chunks of 50 batches, in random order
    todo: list[list[int]] = []
    step = 0
    while step < steps:
        if not todo:
            perm = rng.permutation(n)
            for i in range(0, n, 50 * batch_size):
                chunk = perm[i : i + 50 * batch_size]
                todo += [[int(chunk[j]) for j in b] for b in length_batches([len(word_lists[k]) for k in chunk], batch_size)]
            rng.shuffle(todo)
        rows = todo.pop()
        W, Ch, P, L = encode_batch([word_lists[i] for i in rows], words, chars, device)
        if word_dropout:
            drop = (torch.rand(W.shape, device=W.device) < word_dropout) & (W > 2)
            W = W.masked_fill(drop, 1)
        T = W.shape[1]
        gold = torch.full((len(rows), T), -100, dtype=torch.long)
        for b, i in enumerate(rows):
            gold[b, 1 : len(heads[i]) + 1] = torch.as_tensor(list(heads[i]))
        gold = gold.to(W.device)
        scores = net(W, Ch, P, L)
        scores = scores.masked_fill(torch.isinf(scores), -1e9)
        loss = torch.nn.functional.cross_entropy(scores.reshape(-1, T), gold.reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        step += 1
        if progress is not None:
            progress(step, steps)
        if log is not None and step % 200 == 0:
            log(f"step {step}/{steps} loss {np.mean(losses[-200:]):.3f}")
    net.eval()
    tail = losses[-max(1, len(losses) // 10):]
    return {"steps": steps, "loss": float(np.mean(tail))}

"""UniLM sequence-to-sequence on a BERT masked language model: mask, loss and cached decoding.

One BERT models p(target | source) when the input is ``[CLS] source [SEP] target...`` with
segment (token type) 0 on the source and 1 on the target, and self-attention restricted by the
**UniLM seq2seq attention mask** (Dong et al., "Unified Language Model Pre-training for Natural
Language Understanding and Generation", NeurIPS 2019, section 2.3; Su's bert4keras
``UniLM_Mask``): a source token attends to every source token and to nothing after it; a target
token attends to the whole source and to the target tokens up to itself. The MLM head then
predicts token t+1 from position t, and the loss covers the target tokens only.

Because no position ever attends to a later one outside the source, the keys and values of a
prefix never change when tokens are appended: decoding reuses them (``past_key_values``). The
source is encoded once per passage, its cache is repeated for the samples and beams, and each
decoding step runs one new position per row (:class:`DecodeState`, :func:`step`).

Everything here works on ``BertForMaskedLM``-like models (``model.bert`` + ``model.cls``, or any
``AutoModelForMaskedLM`` whose self-attention layers take an additive 4-D mask and a
``transformers`` cache, as BERT, RoBERTa and ELECTRA do in transformers 5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def unilm_allowed(token_type_ids, attention_mask=None, source_mask=None):
    """Boolean UniLM seq2seq mask: ``allowed[b, i, j]`` is True when query i may attend to key j.

    Args:
        token_type_ids: ``(batch, length)`` int tensor, 0 on the source, 1 on the target (the
            source must come first in each row).
        attention_mask: ``(batch, length)`` 1 for real tokens, 0 for padding (default: all real).
        source_mask: ``(batch, length)`` bool, True on the source (a prefix of each row). Default
            ``token_type_ids == 0``; given separately when segment ids carry another feature
            (e.g. the answer span marked with segment 1 inside the passage).

    Returns:
        ``(batch, length, length)`` bool tensor: key j is real and (j is a source token or
        j <= i). Source queries therefore see exactly the source; target queries see the source
        and the targets up to themselves (Dong et al. 2019, figure 1, seq2seq LM).
    """
    import torch

    src = (token_type_ids.long() == 0) if source_mask is None else source_mask.bool()
    n = src.shape[-1]
    idx = torch.arange(n, device=src.device)
    causal = idx[None, :] <= idx[:, None]  # (n, n): j <= i
    allowed = src[:, None, :] | causal[None]
    if attention_mask is not None:
        allowed = allowed & attention_mask.bool()[:, None, :]
    return allowed


def additive_mask(allowed, dtype):
    """``(batch, q, k)`` bool -> ``(batch, 1, q, k)`` additive float mask (0 or the dtype's minimum),
    the form both the eager and the SDPA attention of transformers add to the scores."""
    import torch

    out = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    out.masked_fill_(~allowed, torch.finfo(dtype).min)
    return out[:, None]


def _split_model(model):
    """(encoder, head) of a masked-LM model, or (None, None) when the head cannot be separated."""
    from ..models import encoder_of

    base = encoder_of(model)
    head = getattr(model, "cls", None) or getattr(model, "lm_head", None)
    return (base, head) if base is not model and head is not None else (None, None)


def hidden_states(model, input_ids, token_type_ids, attention_mask, position_ids=None, past_key_values=None, key_valid=None,
                  source_mask=None):
    """Last hidden layer ``(batch, length, hidden)`` under the UniLM mask.

    Without ``key_valid`` the whole sequence is encoded (and, when ``past_key_values`` is an empty
    cache, its keys/values are stored). With ``key_valid`` (``(batch, cached + length)`` bool) the
    new tokens attend to the valid cached keys and causally to each other. ``source_mask``: see
    :func:`unilm_allowed`."""
    import torch

    base, _ = _split_model(model)
    if base is None:
        raise TypeError(f"{type(model).__name__}: cannot find the encoder and MLM head (model.bert/model.cls)")
    dtype = next(model.parameters()).dtype
    if key_valid is None:  # a whole sequence (training, or filling an empty cache)
        mask = additive_mask(unilm_allowed(token_type_ids, attention_mask, source_mask), dtype)
    else:
        # new queries: attend to every valid cached key and causally to the new tokens
        n_new = input_ids.shape[1]
        n_old = key_valid.shape[1] - n_new
        causal = torch.ones(n_new, n_old + n_new, dtype=torch.bool, device=input_ids.device)
        causal[:, n_old:] = torch.tril(causal[:, n_old:])
        mask = additive_mask(causal[None] & key_valid.bool()[:, None, :], dtype)
    out = base(
        input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=mask, position_ids=position_ids,
        **{_cache_argument(base): past_key_values}, use_cache=False, return_dict=True,
    )
    return out.last_hidden_state


def _cache_argument(encoder) -> str:
    """The keyword an encoder's ``forward`` takes its key/value cache by: ``cache`` in newer
    transformers 5 releases (``past_key_values`` is deprecated there and warns), else
    ``past_key_values``."""
    import inspect

    cls = type(encoder)
    name = _CACHE_ARG.get(cls)
    if name is None:
        params = inspect.signature(cls.forward).parameters
        name = _CACHE_ARG[cls] = "cache" if "cache" in params else "past_key_values"
    return name


_CACHE_ARG: dict[type, str] = {}


def seq2seq_loss(model, input_ids, token_type_ids, attention_mask, source_mask=None, label_smoothing: float = 0.0):
    """Mean cross-entropy (nats per target token) of predicting each target token from the
    position before it, under the UniLM mask.

    Position t predicts token t+1, counted when token t+1 is a real target token (segment 1, or
    outside ``source_mask`` when given), so the source's closing ``[SEP]`` predicts the first
    target token and the target's ``[SEP]`` is predicted too (it ends generation). The MLM head
    runs on the counted positions only. ``label_smoothing`` in [0, 1) mixes the one-hot target
    with the uniform distribution (Szegedy et al. 2016, "Rethinking the Inception Architecture",
    section 7); 0 gives the plain negative log-likelihood.
    Shapes: all inputs ``(batch, length)``; returns a scalar tensor.
    """
    import torch.nn.functional as F

    _, head = _split_model(model)
    h = hidden_states(model, input_ids, token_type_ids, attention_mask, source_mask=source_mask)
    target = (token_type_ids[:, 1:] == 1) if source_mask is None else ~source_mask[:, 1:].bool()
    sel = target & attention_mask[:, 1:].bool()
    logits = head(h[:, :-1][sel])
    return F.cross_entropy(logits.float(), input_ids[:, 1:][sel], label_smoothing=label_smoothing)


@dataclass
class DecodeState:
    """Rows being decoded: the transformers cache of every row's keys/values, which cached
    columns are real (``key_valid``, ``(rows, cached)`` bool) and each row's next position id
    (``next_pos``, ``(rows,)``). Rows can be repeated (:meth:`repeat`) and selected/reordered
    (:meth:`select`) together with their cache."""

    cache: Any
    key_valid: Any
    next_pos: Any

    @property
    def rows(self) -> int:
        return int(self.key_valid.shape[0])

    def repeat(self, k: int) -> DecodeState:
        """Each row k times in a row (``r0 r0 r1 r1 ...``), sharing nothing afterwards."""
        self.cache.batch_repeat_interleave(k)
        return DecodeState(self.cache, self.key_valid.repeat_interleave(k, 0), self.next_pos.repeat_interleave(k, 0))

    def select(self, rows) -> DecodeState:
        """Keep (and reorder to) these row indices (a 1-D long tensor; repeats allowed)."""
        self.cache.batch_select_indices(rows)
        return DecodeState(self.cache, self.key_valid[rows], self.next_pos[rows])


def prefill(model, sequences: Sequence[tuple[Sequence[int], Sequence[int]]], device) -> tuple[Any, DecodeState]:
    """Encode prefixes once under the UniLM mask and cache their keys/values.

    Args:
        sequences: per row ``(token_ids, token_type_ids)``, e.g. ``[CLS] passage [SEP]`` with types
            all 0, or ``[CLS] passage [SEP] answer [SEP]`` with the answer part typed 1; or
            ``(token_ids, token_type_ids, n_source)`` where the first ``n_source`` tokens are the
            (bidirectional) source whatever their segment ids.
        device: torch device.

    Returns:
        ``(logits, state)``: ``logits`` ``(rows, vocab)`` at each row's last token (the distribution
        of the next token), ``state`` ready for :func:`step`. Rows are right-padded; the padding
        stays in the cache, masked out by ``state.key_valid``.
    """
    import torch
    from ..bert import KVCache

    _, head = _split_model(model)
    n = max(len(seq[0]) for seq in sequences)
    ids = torch.zeros(len(sequences), n, dtype=torch.long)
    types = torch.ones(len(sequences), n, dtype=torch.long)
    att = torch.zeros(len(sequences), n, dtype=torch.long)
    src = torch.zeros(len(sequences), n, dtype=torch.bool)
    explicit = False
    for r, seq in enumerate(sequences):
        t, s = seq[0], seq[1]
        ids[r, : len(t)] = torch.as_tensor(list(t))
        types[r, : len(s)] = torch.as_tensor(list(s))
        att[r, : len(t)] = 1
        if len(seq) > 2:
            explicit = True
            src[r, : seq[2]] = True
        else:
            src[r, : len(s)] = torch.as_tensor(list(s)) == 0
    ids, types, att, src = ids.to(device), types.to(device), att.to(device), src.to(device)
    pos = torch.arange(n, device=device)[None].expand(len(sequences), n)
    cache = KVCache()  # plain-torch and transformers BERTs alike
    h = hidden_states(model, ids, types, att, position_ids=pos, past_key_values=cache, source_mask=src if explicit else None)
    lengths = att.sum(1)
    last = h[torch.arange(len(sequences), device=device), lengths - 1]
    return head(last).float(), DecodeState(cache, att.bool(), lengths.clone())


def step(model, state: DecodeState, tokens, valid=None, token_type: int = 1):
    """Append one token per row and return the next-token logits ``(rows, vocab)`` (float32).

    Args:
        tokens: ``(rows,)`` token ids to append.
        valid: ``(rows,)`` bool; False marks a filler for a row that has already finished: it is
            cached but masked out of every later step and does not advance the row's position.
        token_type: segment id of the appended tokens (1 = target).

    The new position attends to the row's valid cached keys and to itself; the cost is one
    position per row, independent of the prefix length except for the attention itself.
    """
    import torch

    _, head = _split_model(model)
    rows = tokens.shape[0]
    if valid is None:
        valid = torch.ones(rows, dtype=torch.bool, device=tokens.device)
    key_valid = torch.cat([state.key_valid, valid[:, None]], dim=1)
    h = hidden_states(
        model, tokens[:, None], torch.full_like(tokens[:, None], token_type), None,
        position_ids=state.next_pos[:, None], past_key_values=state.cache, key_valid=key_valid,
    )
    state.key_valid = key_valid
    state.next_pos = state.next_pos + valid.long()
    return head(h[:, -1]).float()


def nucleus_sample(logits, top_p: float, uniforms):
    """Nucleus (top-p) sampling (Holtzman et al., "The Curious Case of Neural Text Degeneration",
    ICLR 2020): keep the smallest set of most probable tokens whose probability reaches ``top_p``,
    renormalise, draw one by inverse CDF.

    Args:
        logits: ``(rows, vocab)``; ``-inf`` entries are never drawn.
        top_p: in (0, 1]; 1 is plain sampling.
        uniforms: ``(rows,)`` draws in [0, 1) (the caller owns the random stream, so results do not
            depend on how rows are batched).

    Returns:
        ``(rows,)`` long token ids.
    """
    import torch

    probs = torch.softmax(logits.float(), dim=-1)
    p_sorted, order = probs.sort(dim=-1, descending=True)
    cum = p_sorted.cumsum(-1)
    keep = (cum - p_sorted) < top_p  # tokens before the one that reaches top_p, and that one
    keep[:, 0] = True
    p_kept = torch.where(keep, p_sorted, torch.zeros_like(p_sorted))
    cum_kept = p_kept.cumsum(-1)
    target = uniforms.to(cum_kept.device, cum_kept.dtype)[:, None] * cum_kept[:, -1:]
    pick = torch.searchsorted(cum_kept, target, right=True).clamp_max(p_kept.shape[1] - 1)
    # never land on a zero-probability tail entry through rounding
    n_kept = keep.sum(-1, keepdim=True) - 1
    pick = torch.minimum(pick, n_kept)
    return order.gather(1, pick).squeeze(1)


def beam_search(model, state: DecodeState, logits, *, beam_size: int, max_len: int, end_id: int,
                banned: Sequence[int] = (), min_len: int = 1, no_repeat_ngram: int = 0, length_penalty: float = 1.0):
    """Beam search from each row of ``state`` until ``end_id`` (e.g. ``[SEP]``), batched over rows
    and beams, reusing the rows' cache.

    Args:
        state: one row per search (consumed: its cache is repeated and reordered in place).
        logits: ``(rows, vocab)`` next-token logits of each row (from :func:`prefill`/:func:`step`).
        beam_size: hypotheses kept per row (>= 1; 1 is greedy search).
        max_len: most tokens generated per row, ``end_id`` included.
        banned: token ids never generated (e.g. ``[CLS]``, ``[PAD]``, ``[MASK]``).
        min_len: ``end_id`` is banned before this many tokens.
        no_repeat_ngram: when n >= 1, a token that would complete an n-gram already in the
            hypothesis is never chosen (n-gram blocking, Paulus et al. 2018, "A Deep Reinforced
            Model for Abstractive Summarization", section 2.5); 0 turns it off.
        length_penalty: finished hypotheses are ranked by ``sum_logprob / length ** alpha``
            (``end_id`` counted in the length; Wu et al. 2016, GNMT, section 7, in the simple form
            of fairseq/transformers): 1 is the mean log-probability per token, 0 the plain sum
            (favours short questions), above 1 favours longer ones.

    Returns:
        per row ``(tokens, sum_logprob)`` of the best finished hypothesis by the length-penalised
        score (``end_id`` excluded from ``tokens`` but counted in the sum and the length), or
        ``None`` when no hypothesis ended within ``max_len``. A row is finished once it holds
        ``beam_size`` ended hypotheses (the usual "early stopping" of beam search).
    """
    import torch

    rows = state.rows
    if rows == 0:
        return []
    device = logits.device
    k = beam_size
    state = state.repeat(k)
    logits = logits.repeat_interleave(k, 0)
    scores = torch.full((rows, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: expand from the first only
    seqs = torch.zeros(rows, k, 0, dtype=torch.long, device=device)
    finished: list[list[tuple[float, list[int], float]]] = [[] for _ in range(rows)]
    active = list(range(rows))  # original row ids of the rows still searching, in state order
    banned_t = torch.as_tensor(list(banned), dtype=torch.long, device=device)
    for t in range(max_len):
        logp = torch.log_softmax(logits, dim=-1)
        if len(banned_t):
            logp[:, banned_t] = float("-inf")
        if t < min_len:
            logp[:, end_id] = float("-inf")
        if no_repeat_ngram > 0 and t + 1 >= no_repeat_ngram:
            _block_repeated_ngrams(logp, seqs.reshape(len(active) * k, t).tolist(), no_repeat_ngram)
        vocab = logp.shape[1]
        n = len(active)
        cand = (scores.reshape(n * k, 1) + logp).reshape(n, k * vocab)
        top_s, top_i = cand.topk(min(2 * k, k * vocab), dim=1)
        origin = top_i // vocab
        token = top_i % vocab
        top_s_l, origin_l, token_l = top_s.tolist(), origin.tolist(), token.tolist()
        next_scores = torch.full((n, k), float("-inf"), device=device)
        next_origin = torch.zeros(n, k, dtype=torch.long)
        next_token = torch.full((n, k), end_id, dtype=torch.long)
        still = []
        for a, r in enumerate(active):
            filled = 0
            for rank, (s, o, tok) in enumerate(zip(top_s_l[a], origin_l[a], token_l[a])):
                if s == float("-inf"):
                    break
                if tok == end_id:
                    if rank < k:
                        finished[r].append((s / (t + 1) ** length_penalty, seqs[a, o].tolist(), s))
                    continue
                next_scores[a, filled] = s
                next_origin[a, filled] = o
                next_token[a, filled] = tok
                filled += 1
                if filled == k:
                    break
            if len(finished[r]) < k and filled > 0 and t + 1 < max_len:
                still.append(a)
        if not still:
            break
        keep = torch.as_tensor(still, dtype=torch.long)
        rows_idx = (keep[:, None] * k + next_origin[keep]).reshape(-1).to(device)
        seqs = torch.cat([seqs[keep[:, None], next_origin[keep]], next_token[keep].to(device)[..., None]], dim=2)
        scores = next_scores[keep.to(device)]
        active = [active[a] for a in still]
        state = state.select(rows_idx)
        logits = step(model, state, next_token[keep].reshape(-1).to(device))
    results = []
    for r in range(rows):
        if not finished[r]:
            results.append(None)
            continue
        best = max(finished[r], key=lambda x: x[0])
        results.append((best[1], best[2]))
    return results


def _block_repeated_ngrams(logp, seqs: list[list[int]], n: int) -> None:
    """Set ``logp[row, tok] = -inf`` where ``seqs[row] + [tok]`` would end with an n-gram that
    already occurs in ``seqs[row]`` (in place; ``logp`` is ``(rows, vocab)``)."""
    rows, cols = [], []
    for r, seq in enumerate(seqs):
        if len(seq) < n - 1:
            continue
        prefix = tuple(seq[len(seq) - n + 1:]) if n > 1 else ()
        for i in range(len(seq) - n + 1):
            if tuple(seq[i: i + n - 1]) == prefix:
                rows.append(r)
                cols.append(seq[i + n - 1])
    if rows:
        logp[rows, cols] = float("-inf")

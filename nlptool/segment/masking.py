"""Perturbed Masking: the impact of one unit on another, measured by masking (Wu et al., ACL 2020).

For a sequence of units x = (x_1..x_n) (characters, or words made of several subword tokens),
H(x∖S)_i is the representation of unit i (mean of its tokens' hidden vectors at a chosen layer)
when the units in S are replaced by ``[MASK]``. The impact of unit j on unit i is

    F(i, j) = ‖H(x∖{i})_i − H(x∖{i, j})_i‖₂

(Wu, Chen, Kao, Liu, "Perturbed Masking: Parameter-free Probing for Analyzing and Interpreting
BERT", ACL 2020, Eq. 1 with Euclidean distance; Su, "无监督分词和句法分析！原来BERT还可以这样用",
kexue.fm 2020-06-10, https://kexue.fm/archives/7476).

Every F(i, j) needs the n singly-masked inputs x∖{i} and the doubly-masked x∖{i, j}; since
x∖{i, j} = x∖{j, i} one forward pass gives both F(i, j) and F(j, i), so the full impact matrix
costs n + n(n−1)/2 forward passes instead of the n² of the reference implementation, and
segmentation (adjacent pairs only) costs 2n − 1.

The engine here packs the masked inputs of many sequences into batches sorted by length and runs
them under ``torch.inference_mode()``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: A unit is the list of token ids it is made of (one id for a Chinese character).
Unit = list[int]


@dataclass
class MaskedInput:
    """One masked copy of a sequence: ``seq`` indexes the sequences, ``masked`` the units masked."""

    seq: int
    masked: tuple[int, ...]


@dataclass
class EngineStats:
    """What the engine did: forward passes, tokens (padding included) and estimated FLOPs."""

    sequences: int = 0
    tokens: int = 0
    real_tokens: int = 0
    flops: float = 0.0
    batches: int = 0
    forward_seconds: float = 0.0  # wall time inside the encoder calls only


from ..models import encoder_of  # noqa: E402,F401  (re-exported: the one "encoder of this model")


def _flops_per_batch(config, batch: int, length: int, layers: int | None = None) -> float:
    """Forward FLOPs of a BERT encoder on ``batch × length`` tokens (2 per multiply-add).

    Dense layers: 2·tokens·(4h² + 2·h·i) per layer; attention scores and weighted sum:
    2·2·batch·length²·h per layer. Embeddings and layer norms are ignored.
    """
    h = config.hidden_size
    inter = getattr(config, "intermediate_size", 4 * h)
    layers = config.num_hidden_layers if layers is None else layers
    tokens = batch * length
    dense = 2 * tokens * (4 * h * h + 2 * h * inter)
    attn = 4 * batch * length * length * h
    return float(layers * (dense + attn))


def _bert_like(encoder) -> bool:
    """True when the encoder has BERT's module layout (embeddings, encoder.layer[i] with
    attention.self.query/key/value, attention.output, intermediate, output)."""
    try:
        lyr = encoder.encoder.layer[0]
        return all(hasattr(lyr.attention.self, n) for n in ("query", "key", "value")) and hasattr(
            lyr.attention, "output") and hasattr(lyr, "intermediate") and hasattr(lyr, "output") and hasattr(
            encoder, "embeddings")
    except (AttributeError, IndexError, TypeError):
        return False


def _encode_selected(encoder, ids, att, want: int, flat_positions: list[int]):
    """Hidden states of layer ``want`` (1-based; embeddings are 0) at ``flat_positions``
    (``batch_row * length + position``), shape ``(len(flat_positions), hidden)``.

    Layers ``1 .. want-1`` run in full; layer ``want`` computes keys and values for every token
    but queries, attention output and feed-forward only for the selected positions (what the
    impact matrix reads), which saves most of that layer. Returns ``(hidden, flops)``.
    """
    import torch

    b, n = ids.shape
    dtype = next(encoder.parameters()).dtype
    ext = torch.zeros((b, 1, 1, n), dtype=dtype, device=ids.device)
    ext.masked_fill_(att[:, None, None, :] == 0, torch.finfo(dtype).min)
    h = encoder.embeddings(input_ids=ids)
    for lyr in encoder.encoder.layer[: want - 1]:
        h = lyr(h, attention_mask=ext)
        if isinstance(h, tuple):
            h = h[0]
    lyr = encoder.encoder.layer[want - 1]
    sa = lyr.attention.self
    heads, dh = sa.num_attention_heads, sa.attention_head_size
    pos = torch.as_tensor(flat_positions, device=ids.device)
    rb, rp = pos // n, pos % n
    x = h[rb, rp]  # (S, hidden)
    q = sa.query(x).view(-1, heads, dh)  # (S, heads, dh)
    k = sa.key(h).view(b, n, heads, dh).transpose(1, 2)  # (b, heads, n, dh)
    v = sa.value(h).view(b, n, heads, dh).transpose(1, 2)
    scores = torch.einsum("shd,shnd->shn", q, k[rb]) * (dh**-0.5) + ext[rb, 0]
    ctx = torch.einsum("shn,shnd->shd", torch.softmax(scores, dim=-1), v[rb]).reshape(-1, heads * dh)
    attn = lyr.attention.output(ctx, x)
    out = lyr.output(lyr.intermediate(attn), attn)
    cfg = encoder.config
    hid = cfg.hidden_size
    inter = getattr(cfg, "intermediate_size", 4 * hid)
    s_ = len(flat_positions)
    flops = _flops_per_batch(cfg, b, n, layers=want - 1)
    flops += 2 * b * n * 2 * hid * hid  # keys and values for every token
    flops += 2 * s_ * (2 * hid * hid + 2 * hid * inter)  # query, output projection, feed-forward
    flops += 4 * s_ * n * hid  # scores and weighted sum
    return out, float(flops)


def masked_unit_vectors(
    loaded,
    sequences: Sequence[Sequence[Unit]],
    inputs: Sequence[MaskedInput],
    *,
    layer: int = -1,
    batch_size: int = 256,
    stats: EngineStats | None = None,
    progress=None,
) -> list[np.ndarray]:
    """Run every masked input and return the representations of its masked units.

    Args:
        loaded: a :class:`nlptool.models.LoadedModel` (any BERT-family encoder, with or without
            an MLM head; needs ``tokenizer.mask_token_id``, ``cls_token_id``, ``sep_token_id``).
        sequences: ``sequences[s]`` is a list of units, each a non-empty list of token ids;
            the total number of tokens of a sequence plus 2 must fit the model's window.
        inputs: which units to mask in which sequence.
        layer: hidden layer to read (``-1`` = last, ``0`` = embeddings; ``hidden_states`` index).
        batch_size: masked inputs per forward pass (bounds memory).
        stats: filled with counts and FLOPs when given.
        progress: called with the number of masked inputs done after each batch.

    Returns:
        ``out[k]`` of shape ``(len(inputs[k].masked), hidden)``, float32: for each masked unit
        of input k, the mean of its tokens' hidden vectors at ``layer``, in the order of
        ``inputs[k].masked``.

    Raises:
        ValueError: a sequence is longer than the model's window or a unit is empty.
    """
    import torch

    tok = loaded.tokenizer
    model = loaded.model
    device = loaded.device
    mask_id, cls_id, sep_id = tok.mask_token_id, tok.cls_token_id, tok.sep_token_id
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    if mask_id is None or cls_id is None or sep_id is None:
        raise ValueError(f"{loaded.name}: the tokenizer has no [MASK]/[CLS]/[SEP] token")
    window = loaded.max_length
    # token offsets of every unit: positions are 1-based because of [CLS]
    flat_ids: list[list[int]] = []
    offsets: list[list[tuple[int, int]]] = []
    for units in sequences:
        ids = [cls_id]
        offs = []
        for u in units:
            if not u:
                raise ValueError("empty unit")
            offs.append((len(ids), len(ids) + len(u)))
            ids.extend(u)
        ids.append(sep_id)
        if len(ids) > window:
            raise ValueError(f"sequence of {len(ids)} tokens exceeds the model window of {window}")
        flat_ids.append(ids)
        offsets.append(offs)

    from ..batching import length_order

    order = length_order([len(flat_ids[x.seq]) for x in inputs])
    encoder = encoder_of(model)
    n_layers = model.config.num_hidden_layers
    want = layer if layer >= 0 else n_layers + 1 + layer
    if not 0 <= want <= n_layers:
        raise ValueError(f"layer {layer} out of range for a {n_layers}-layer model")
    results: list[np.ndarray | None] = [None] * len(inputs)
    bert_like = _bert_like(encoder)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            length = max(len(flat_ids[inputs[k].seq]) for k in batch)
            ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
            att = torch.zeros((len(batch), length), dtype=torch.long)
            rows: list[int] = []  # output row -> (batch row, token positions)
            cols: list[int] = []
            owners: list[int] = []
            n_out = 0
            row_of: list[tuple[int, int]] = []
            real = 0
            for b, k in enumerate(batch):
                mi = inputs[k]
                seq_ids = flat_ids[mi.seq]
                offs = offsets[mi.seq]
                row = torch.tensor(seq_ids, dtype=torch.long)
                for u in mi.masked:
                    s, e = offs[u]
                    row[s:e] = mask_id
                ids[b, : len(seq_ids)] = row
                att[b, : len(seq_ids)] = 1
                real += len(seq_ids)
                row_of.append((n_out, len(mi.masked)))
                for u in mi.masked:
                    s, e = offs[u]
                    for p in range(s, e):
                        rows.append(n_out)
                        cols.append(b * length + p)
                    owners.append(e - s)
                    n_out += 1
            ids = ids.to(device)
            att = att.to(device)
            t_fwd = time.perf_counter()
            if want >= 1 and bert_like:
                # the wanted layer is needed at the masked positions only: run the layers below it
                # in full and that layer for the selected query rows (keys/values still for all)
                uniq = sorted(set(cols))
                selected, flops = _encode_selected(encoder, ids, att, want, uniq)
                flat = selected.float()
                col_of = {c: k for k, c in enumerate(uniq)}
                idx_cols = torch.tensor([col_of[c] for c in cols], device=flat.device)
            else:
                if want == n_layers:
                    hidden = encoder(input_ids=ids, attention_mask=att).last_hidden_state
                else:
                    hidden = encoder(input_ids=ids, attention_mask=att, output_hidden_states=True).hidden_states[want]
                flops = _flops_per_batch(model.config, len(batch), length, layers=want)
                flat = hidden.reshape(-1, hidden.shape[-1]).float()
                idx_cols = torch.tensor(cols, device=flat.device)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t_fwd = time.perf_counter() - t_fwd
            idx_rows = torch.tensor(rows, device=flat.device)
            pooled = torch.zeros((n_out, flat.shape[1]), device=flat.device).index_add_(0, idx_rows, flat[idx_cols])
            pooled /= torch.tensor(owners, device=flat.device, dtype=pooled.dtype).unsqueeze(1)
            pooled = pooled.cpu().numpy()
            for (first, count), k in zip(row_of, batch):
                results[k] = pooled[first : first + count]
            if stats is not None:
                stats.sequences += len(batch)
                stats.tokens += len(batch) * length
                stats.real_tokens += real
                stats.flops += flops
                stats.batches += 1
                stats.forward_seconds += t_fwd
            if progress is not None:
                progress(len(batch))
    return results  # type: ignore[return-value]


def adjacent_masks(n: int, seq: int) -> list[MaskedInput]:
    """The 2n − 1 masked inputs of segmentation: x∖{i} for every i and x∖{i, i+1}."""
    out = [MaskedInput(seq, (i,)) for i in range(n)]
    out += [MaskedInput(seq, (i, i + 1)) for i in range(n - 1)]
    return out


def adjacent_impacts(n: int, vectors: Sequence[np.ndarray]) -> np.ndarray:
    """Impact between neighbours from the outputs of :func:`adjacent_masks`.

    ``d[i] = (F(i, i+1) + F(i+1, i)) / 2`` for i in 0..n−2, shape ``(n − 1,)``, in the hidden
    space's Euclidean units (its scale depends on the model: about 5–15 for BERT-base).
    A large value means the two units depend on each other (same word).
    """
    single = vectors[:n]
    pair = vectors[n:]
    d = np.empty(max(n - 1, 0), dtype=np.float64)
    for i in range(n - 1):
        f_ij = np.linalg.norm(single[i][0] - pair[i][0])
        f_ji = np.linalg.norm(single[i + 1][0] - pair[i][1])
        d[i] = (f_ij + f_ji) / 2
    return d


def matrix_masks(n: int, seq: int) -> list[MaskedInput]:
    """The n + n(n−1)/2 masked inputs of the full impact matrix: x∖{i}, and x∖{i, j} for i < j."""
    out = [MaskedInput(seq, (i,)) for i in range(n)]
    out += [MaskedInput(seq, (i, j)) for i in range(n) for j in range(i + 1, n)]
    return out


def impact_matrix_from(n: int, vectors: Sequence[np.ndarray]) -> np.ndarray:
    """Assemble the impact matrix from the outputs of :func:`matrix_masks`.

    Returns ``F`` of shape ``(n, n)``, ``F[i, j] = ‖H(x∖{i})_i − H(x∖{i,j})_i‖``, zero diagonal.
    """
    F = np.zeros((n, n), dtype=np.float64)
    single = vectors[:n]
    k = n
    for i in range(n):
        for j in range(i + 1, n):
            v = vectors[k]
            F[i, j] = np.linalg.norm(single[i][0] - v[0])
            F[j, i] = np.linalg.norm(single[j][0] - v[1])
            k += 1
    return F


def impact_matrices(
    loaded, sequences: Sequence[Sequence[Unit]], *, layer: int = -1, batch_size: int = 256,
    stats: EngineStats | None = None, progress=None,
) -> list[np.ndarray]:
    """Impact matrices of many sequences in shared batches; ``out[s]`` has shape ``(n_s, n_s)``."""
    inputs: list[MaskedInput] = []
    spans = []
    for s, units in enumerate(sequences):
        m = matrix_masks(len(units), s)
        spans.append((len(inputs), len(m)))
        inputs += m
    vecs = masked_unit_vectors(loaded, sequences, inputs, layer=layer, batch_size=batch_size, stats=stats, progress=progress)
    return [impact_matrix_from(len(units), vecs[a : a + c]) for units, (a, c) in zip(sequences, spans)]


def neighbour_impacts(
    loaded, sequences: Sequence[Sequence[Unit]], *, layer: int = -1, batch_size: int = 256,
    stats: EngineStats | None = None, progress=None,
) -> list[np.ndarray]:
    """Adjacent impacts ``d`` (see :func:`adjacent_impacts`) of many sequences, ``out[s]`` of
    shape ``(n_s − 1,)``, with the masked inputs of all sequences packed into shared batches."""
    inputs: list[MaskedInput] = []
    spans = []
    for s, units in enumerate(sequences):
        if len(units) < 2:
            spans.append((len(inputs), 0))
            continue
        m = adjacent_masks(len(units), s)
        spans.append((len(inputs), len(m)))
        inputs += m
    vecs = masked_unit_vectors(loaded, sequences, inputs, layer=layer, batch_size=batch_size, stats=stats, progress=progress)
    out = []
    for units, (a, c) in zip(sequences, spans):
        out.append(adjacent_impacts(len(units), vecs[a : a + c]) if c else np.zeros(0))
    return out

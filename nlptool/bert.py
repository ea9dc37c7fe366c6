"""BERT in plain torch: loads nlptool's built-in models without importing ``transformers``.

``import transformers`` costs about 3 s, more than any command spends on a small model. This module
re-implements the BERT encoder (Devlin et al., "BERT: Pre-training of Deep Bidirectional
Transformers for Language Understanding", NAACL 2019; post-LN Transformer blocks of Vaswani et
al. 2017, "Attention Is All You Need", section 3) with the heads nlptool uses, under the module
and parameter names of ``transformers`` 5 (``BertModel``, ``BertForMaskedLM``,
``BertForSequenceClassification``, ``BertForQuestionAnswering``), so that

* a Hugging Face checkpoint (``config.json`` + ``model.safetensors``) loads by name, and
* code written against the transformers models runs unchanged: ``model.bert``, ``model.cls``,
  ``model.classifier``, ``model.qa_outputs``, ``model.config``, ``encoder.embeddings``,
  ``encoder.encoder.layer[i].attention.self.query``, ``layer(h, attention_mask=ext)``,
  ``get_input_embeddings()``, outputs with ``.logits``, ``.last_hidden_state``,
  ``.hidden_states``, ``.attentions``, ``.start_logits``/``.end_logits``, ``.pooler_output``.

Attention masks take the forms transformers takes: ``(batch, keys)`` with 1 (or True, or any
non-zero) for a key to attend to, or an already prepared 4-D ``(batch, 1 | heads, queries,
keys)`` mask, additive when floating (0 or a large negative number, e.g. the dtype's minimum)
and "True = attend" when boolean; a 3-D ``(batch, queries, keys)`` 0/1 or boolean mask is accepted
as well. A key/value cache (:class:`KVCache`, or any object with transformers' ``update(key,
value, layer_idx)`` and ``get_seq_length()``, e.g. ``transformers.DynamicCache``) is filled in
place when passed as ``cache=`` or ``past_key_values=`` (as nlptool's UniLM decoding,
``unilm.py``, does: ``prefill`` then one ``step`` per generated token).

Only what the built-in models need is supported (:func:`can_load_plain` says whether a model
directory is one): absolute position embeddings, exact-erf GELU, no decoder/cross-attention.
"""

from __future__ import annotations

import json
import os
import threading

import safetensors.torch
import torch
from torch import nn
from torch.nn import functional as F

from .errors import ModelError

#: ``load_bert`` heads (the ``kind`` names of :func:`nlptool.models.load_model`) -> the
#: transformers architecture name saved in ``config.json``.
HEADS = {
    "encoder": "BertModel",
    "masked-lm": "BertForMaskedLM",
    "sequence-classification": "BertForSequenceClassification",
    "question-answering": "BertForQuestionAnswering",
}
_HEAD_OF_ARCH = {arch: head for head, arch in HEADS.items()}

#: Checkpoint key prefixes of every head; a model without that head ignores them, as
#: transformers does when it loads a base model from a checkpoint saved with a head.
_HEAD_PREFIXES = ("cls.", "classifier.", "qa_outputs.", "lm_head.")
#: Buffers older transformers versions saved with the weights (recomputed here).
_IGNORED_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")


class BertConfig:
    """The fields of a transformers ``BertConfig`` (``config.json``) that this module and nlptool read.

    Every key of the JSON becomes an attribute (so ``getattr(config, name, default)`` works as with
    transformers); missing ones get BERT's defaults. ``id2label`` has int keys and ``label2id``
    int values, as in transformers; without labels a config has two (``LABEL_0``, ``LABEL_1``).
    """

    _DEFAULTS = {
        "model_type": "bert", "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
        "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0, "classifier_dropout": None,
        "is_decoder": False, "add_cross_attention": False, "tie_word_embeddings": True,
        "architectures": None, "problem_type": None, "chunk_size_feed_forward": 0,
    }

    def __init__(self, **fields):
        for key, value in self._DEFAULTS.items():
            setattr(self, key, value)
        for key, value in fields.items():
            if key not in ("id2label", "label2id", "num_labels"):
                setattr(self, key, value)
        id2label = fields.get("id2label")
        label2id = fields.get("label2id")
        if not id2label and label2id:
            id2label = {v: k for k, v in label2id.items()}
        if not id2label:
            id2label = {i: f"LABEL_{i}" for i in range(int(fields.get("num_labels") or 2))}
        self.id2label = {int(k): str(v) for k, v in id2label.items()}
        self.label2id = ({str(k): int(v) for k, v in label2id.items()} if label2id
                         else {v: k for k, v in self.id2label.items()})

    @property
    def num_labels(self) -> int:
        """Number of output labels of a sequence classifier (``len(id2label)``)."""
        return len(self.id2label)

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> BertConfig:
        """Read ``config.json``.

        Raises:
            ModelError: unreadable or not a JSON object.
        """
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: cannot read the model config: {exc}") from None
        if not isinstance(data, dict):
            raise ModelError(f"{path}: the model config is not a JSON object")
        return cls(**data)

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict (``id2label`` keys as strings, as transformers saves them)."""
        out = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        out["id2label"] = {str(k): v for k, v in self.id2label.items()}
        return out

    def __repr__(self) -> str:
        return f"BertConfig({json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)})"


class ModelOutput(dict):
    """A model output as transformers returns it: attributes (``out.logits``), keys of the fields
    that are set (``out["logits"]``) and positions over those (``out[0]``, :meth:`to_tuple`).
    A field a class does not have raises ``AttributeError`` (``getattr(out, name, None)`` works)."""

    _fields: tuple[str, ...] = ()

    def __init__(self, **values):
        super().__init__()
        unknown = set(values) - set(self._fields)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {sorted(unknown)}")
        for name in self._fields:
            value = values.get(name)
            object.__setattr__(self, name, value)
            if value is not None:
                dict.__setitem__(self, name, value)

    def __getitem__(self, key):
        if isinstance(key, (int, slice)):
            return self.to_tuple()[key]
        return dict.__getitem__(self, key)

    def to_tuple(self) -> tuple:
        """The set fields in field order."""
        return tuple(dict.__getitem__(self, k) for k in self.keys())


class BaseModelOutput(ModelOutput):
    """Encoder output. ``last_hidden_state`` ``(batch, length, hidden)``; ``pooler_output``
    ``(batch, hidden)`` or None (no pooler); ``hidden_states``: embeddings and every layer,
    ``num_hidden_layers + 1`` tensors ``(batch, length, hidden)`` (with ``output_hidden_states``);
    ``attentions``: per layer ``(batch, heads, length, keys)`` softmax weights (with
    ``output_attentions``); ``past_key_values`` (alias ``cache``): the cache passed in, filled."""

    _fields = ("last_hidden_state", "pooler_output", "hidden_states", "past_key_values", "attentions")

    @property
    def cache(self):
        return self.past_key_values


class MaskedLMOutput(ModelOutput):
    """``logits`` ``(batch, length, vocab)``; ``hidden_states``/``attentions`` as :class:`BaseModelOutput`."""

    _fields = ("loss", "logits", "hidden_states", "attentions")


class SequenceClassifierOutput(ModelOutput):
    """``logits`` ``(batch, num_labels)``; ``hidden_states``/``attentions`` as :class:`BaseModelOutput`."""

    _fields = ("loss", "logits", "hidden_states", "attentions")


class QuestionAnsweringModelOutput(ModelOutput):
    """``start_logits``, ``end_logits`` ``(batch, length)``; ``hidden_states``/``attentions`` as
    :class:`BaseModelOutput`."""

    _fields = ("loss", "start_logits", "end_logits", "hidden_states", "attentions")


class KVCache:
    """Keys and values of the positions encoded so far, per layer: ``keys[i]``, ``values[i]``
    ``(batch, heads, cached, head_dim)``. Appended to in place by every forward pass given it (the
    interface of transformers' ``DynamicCache`` that BERT and :mod:`nlptool.unilm` use)."""

    def __init__(self):
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        """Append ``key``/``value`` ``(batch, heads, new, head_dim)`` to layer ``layer_idx`` and
        return that layer's whole keys and values ``(batch, heads, cached + new, head_dim)``."""
        if layer_idx == len(self.keys):
            self.keys.append(key)
            self.values.append(value)
        elif layer_idx < len(self.keys):
            self.keys[layer_idx] = torch.cat([self.keys[layer_idx], key], dim=-2)
            self.values[layer_idx] = torch.cat([self.values[layer_idx], value], dim=-2)
        else:
            raise IndexError(f"cache of {len(self.keys)} layers cannot take layer {layer_idx} yet")
        return self.keys[layer_idx], self.values[layer_idx]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Number of cached positions (0 for an empty cache)."""
        return int(self.keys[layer_idx].shape[-2]) if layer_idx < len(self.keys) else 0

    def __len__(self) -> int:
        return len(self.keys)

    def batch_repeat_interleave(self, repeats: int) -> None:
        """Each row ``repeats`` times in a row (``r0 r0 r1 r1 ...``), in place."""
        self.keys = [k.repeat_interleave(repeats, dim=0) for k in self.keys]
        self.values = [v.repeat_interleave(repeats, dim=0) for v in self.values]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep (and reorder to) the rows ``indices`` (1-D long tensor; repeats allowed), in place."""
        self.keys = [k[indices, ...] for k in self.keys]
        self.values = [v[indices, ...] for v in self.values]


_LOADING = threading.local()


class _Linear(nn.Linear):
    """``nn.Linear`` whose random initialisation is skipped while :func:`load_bert` builds a model
    (every weight is then overwritten from the checkpoint; the init alone took longer than reading it)."""

    def reset_parameters(self) -> None:
        if not getattr(_LOADING, "active", False):
            super().reset_parameters()


class _Embedding(nn.Embedding):
    """``nn.Embedding`` with the same skipped initialisation as :class:`_Linear`."""

    def reset_parameters(self) -> None:
        if not getattr(_LOADING, "active", False):
            super().reset_parameters()


def _activation(name: str):
    if name != "gelu":
        raise ModelError(f"hidden_act {name!r} is not supported by nlptool.bert (only 'gelu', the exact erf form)")
    return nn.GELU()  # 0.5 x (1 + erf(x / sqrt 2)): transformers' "gelu"


def _additive_mask(mask: torch.Tensor | None, n_queries: int, n_keys: int, dtype) -> torch.Tensor | None:
    """Any accepted attention mask -> ``(batch, 1 | heads, queries | 1, keys)`` additive float mask
    in ``dtype`` (0 to attend, the dtype's minimum to ignore), or None when nothing is masked.

    Raises:
        ValueError: a mask whose last dimension is not the number of keys (cached + new).
    """
    if mask is None:
        return None
    if mask.shape[-1] != n_keys:
        raise ValueError(f"attention mask of shape {tuple(mask.shape)}: its last dimension must be the "
                         f"{n_keys} keys (cached + new positions)")
    if mask.dim() == 4 and mask.dtype.is_floating_point:
        return mask.to(dtype)
    if mask.dim() == 2:
        if bool(mask.bool().all()):
            return None
        mask = mask[:, None, None, :]
    elif mask.dim() == 3:
        mask = mask[:, None, :, :]
    elif mask.dim() != 4:
        raise ValueError(f"attention mask of shape {tuple(mask.shape)}: expected 2, 3 or 4 dimensions")
    out = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return out.masked_fill_(~mask.bool(), torch.finfo(dtype).min)


class BertEmbeddings(nn.Module):
    """Word + position + token type embeddings, then LayerNorm (and dropout in training)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = _Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = _Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = _Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
                cache_length: int = 0, past_key_values_length: int = 0) -> torch.Tensor:
        """``(batch, length, hidden)`` from ``input_ids`` ``(batch, length)`` (looked up through
        ``word_embeddings``, the module integrated-gradients hooks) or ``inputs_embeds``.
        ``position_ids`` default to ``cache_length .. cache_length + length - 1``, token types to 0.

        Raises:
            ValueError: default positions beyond ``max_position_embeddings``.
        """
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        batch, length = inputs_embeds.shape[:2]
        device = inputs_embeds.device
        if position_ids is None:
            start = cache_length or past_key_values_length
            if start + length > self.position_embeddings.num_embeddings:
                raise ValueError(f"{start + length} positions exceed the model's "
                                 f"{self.position_embeddings.num_embeddings} position embeddings")
            position_ids = torch.arange(start, start + length, device=device)[None]
        if token_type_ids is None:
            token_type_ids = torch.zeros((batch, length), dtype=torch.long, device=device)
        emb = inputs_embeds + self.token_type_embeddings(token_type_ids)
        emb = emb + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(emb))


class BertSelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention (Vaswani et al. 2017, eq. 1)."""

    def __init__(self, config: BertConfig, layer_idx: int | None = None):
        super().__init__()
        if config.hidden_size % config.num_attention_heads:
            raise ModelError(f"hidden_size {config.hidden_size} is not a multiple of "
                             f"num_attention_heads {config.num_attention_heads}")
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.scaling = self.attention_head_size ** -0.5
        self.query = _Linear(config.hidden_size, self.all_head_size)
        self.key = _Linear(config.hidden_size, self.all_head_size)
        self.value = _Linear(config.hidden_size, self.all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.layer_idx = layer_idx

    def forward(self, hidden_states, attention_mask=None, cache=None, output_attentions: bool = False,
                past_key_values=None, **_ignored):
        """``(context, weights)``: context ``(batch, length, hidden)``, weights ``(batch, heads,
        length, keys)`` with ``output_attentions`` else None. ``attention_mask``: see
        :func:`_additive_mask` (keys = cached + new positions). ``cache`` (or ``past_key_values``)
        gets this layer's keys/values appended and supplies the earlier ones."""
        cache = cache if cache is not None else past_key_values
        batch, length = hidden_states.shape[:2]
        shape = (batch, length, self.num_attention_heads, self.attention_head_size)
        q = self.query(hidden_states).view(shape).transpose(1, 2)
        k = self.key(hidden_states).view(shape).transpose(1, 2)
        v = self.value(hidden_states).view(shape).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        mask = _additive_mask(attention_mask, length, k.shape[-2], q.dtype)
        p_drop = self.dropout.p if self.training else 0.0
        if output_attentions:
            scores = torch.matmul(q, k.transpose(2, 3)) * self.scaling
            if mask is not None:
                scores = scores + mask
            weights = torch.softmax(scores, dim=-1)
            ctx = torch.matmul(self.dropout(weights), v)
        else:
            weights = None
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p_drop, scale=self.scaling)
        return ctx.transpose(1, 2).reshape(batch, length, self.all_head_size), weights


class BertSelfOutput(nn.Module):
    """Output projection of the attention, dropout, residual, LayerNorm (post-LN)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = _Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor):
        """``LayerNorm(dropout(dense(hidden_states)) + input_tensor)``, shapes ``(..., hidden)``."""
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BertAttention(nn.Module):
    """Self-attention (``self``) and its output block (``output``)."""

    def __init__(self, config: BertConfig, layer_idx: int | None = None):
        super().__init__()
        self.self = BertSelfAttention(config, layer_idx=layer_idx)
        self.output = BertSelfOutput(config)

    def forward(self, hidden_states, attention_mask=None, cache=None, output_attentions: bool = False,
                past_key_values=None, **_ignored):
        """``(attention_output (batch, length, hidden), weights or None)``."""
        ctx, weights = self.self(hidden_states, attention_mask, cache=cache if cache is not None else past_key_values,
                                 output_attentions=output_attentions)
        return self.output(ctx, hidden_states), weights


class BertIntermediate(nn.Module):
    """First feed-forward projection and GELU: ``(..., hidden) -> (..., intermediate)``."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = _Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = _activation(config.hidden_act)

    def forward(self, hidden_states):
        return self.intermediate_act_fn(self.dense(hidden_states))


class BertOutput(nn.Module):
    """Second feed-forward projection, dropout, residual, LayerNorm: ``(..., intermediate) -> (..., hidden)``."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = _Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BertLayer(nn.Module):
    """One post-LN Transformer block: attention, then feed-forward, each with residual + LayerNorm."""

    def __init__(self, config: BertConfig, layer_idx: int | None = None):
        super().__init__()
        self.attention = BertAttention(config, layer_idx=layer_idx)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden_states, attention_mask=None, cache=None, output_attentions: bool = False,
                past_key_values=None, **_ignored):
        """``(batch, length, hidden) -> (batch, length, hidden)`` (a tensor, as in transformers 5);
        with ``output_attentions`` the pair ``(hidden, weights (batch, heads, length, keys))``."""
        attn, weights = self.attention(hidden_states, attention_mask, cache=cache if cache is not None else past_key_values,
                                       output_attentions=output_attentions)
        out = self.output(self.intermediate(attn), attn)
        return (out, weights) if output_attentions else out


class BertEncoder(nn.Module):
    """The stack of :class:`BertLayer` (``layer[i]``)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(config, layer_idx=i) for i in range(config.num_hidden_layers)])

    def forward(self, hidden_states, attention_mask=None, cache=None, output_hidden_states: bool = False,
                output_attentions: bool = False):
        """``(last, all_hidden or None, all_attentions or None)``; ``attention_mask`` already in
        additive form (or None); ``all_hidden`` starts with the input."""
        all_hidden = [hidden_states] if output_hidden_states else None
        all_attn = [] if output_attentions else None
        for lyr in self.layer:
            out = lyr(hidden_states, attention_mask, cache=cache, output_attentions=output_attentions)
            if output_attentions:
                out, weights = out
                all_attn.append(weights)
            hidden_states = out
            if output_hidden_states:
                all_hidden.append(hidden_states)
        return (hidden_states, tuple(all_hidden) if all_hidden is not None else None,
                tuple(all_attn) if all_attn is not None else None)


class BertPooler(nn.Module):
    """``tanh(dense(h[:, 0]))``: ``(batch, length, hidden) -> (batch, hidden)`` (the ``[CLS]`` vector)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = _Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states):
        return self.activation(self.dense(hidden_states[:, 0]))


class BertPredictionHeadTransform(nn.Module):
    """MLM transform: dense, GELU, LayerNorm, ``(..., hidden) -> (..., hidden)``."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = _Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = _activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states):
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class BertLMPredictionHead(nn.Module):
    """Transform, then ``decoder`` (weights tied to the word embeddings by :class:`BertForMaskedLM`,
    bias = ``bias``): ``(..., hidden) -> (..., vocab)``."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = _Linear(config.hidden_size, config.vocab_size, bias=True)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.decoder.bias = self.bias

    def forward(self, hidden_states):
        return self.decoder(self.transform(hidden_states))


class BertOnlyMLMHead(nn.Module):
    """``model.cls``: ``predictions`` (:class:`BertLMPredictionHead`); ``(..., hidden) -> (..., vocab)``."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)

    def forward(self, sequence_output):
        return self.predictions(sequence_output)


class BertPreTrainedModel(nn.Module):
    """What every model here shares with transformers' ``PreTrainedModel``: ``config``,
    ``base_model`` (the bare encoder), ``get_input_embeddings()``, ``device``/``dtype``."""

    base_model_prefix = "bert"

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config

    @property
    def base_model(self):
        return getattr(self, self.base_model_prefix, self)

    def get_input_embeddings(self) -> nn.Embedding:
        """The word-embedding table ``(vocab, hidden)`` module (what integrated gradients hooks)."""
        return self.base_model.embeddings.word_embeddings

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype


class BertModel(BertPreTrainedModel):
    """The bare encoder (transformers' ``BertModel``): ``embeddings``, ``encoder``, ``pooler`` (or None)."""

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        if config.is_decoder or config.add_cross_attention:
            raise ModelError("nlptool.bert implements the bidirectional encoder only (is_decoder/add_cross_attention are set)")
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, cache=None, past_key_values=None, use_cache=None,
                output_hidden_states: bool | None = None, output_attentions: bool | None = None,
                return_dict: bool | None = None):
        """Encode a batch.

        Args:
            input_ids: ``(batch, length)`` token ids (or ``inputs_embeds`` ``(batch, length, hidden)``).
            attention_mask: ``(batch, keys)`` 1/True to attend (keys = cached + new positions), or a
                prepared ``(batch, 1, length, keys)`` additive float / boolean mask, or
                ``(batch, length, keys)`` 0/1; None attends everywhere.
            token_type_ids: ``(batch, length)`` segment ids (default 0).
            position_ids: ``(batch | 1, length)`` (default: counting on from the cached length).
            cache / past_key_values: a :class:`KVCache` (or transformers ``DynamicCache``), filled in
                place; ``use_cache`` is accepted and ignored (the cache given is always filled).
            output_hidden_states, output_attentions: also return every layer's hidden states /
                attention weights.
            return_dict: False returns :meth:`ModelOutput.to_tuple` instead.

        Returns:
            :class:`BaseModelOutput`.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        cache = cache if cache is not None else past_key_values
        cached = cache.get_seq_length() if cache is not None else 0
        h = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids,
                            inputs_embeds=inputs_embeds, cache_length=cached)
        mask = _additive_mask(attention_mask, h.shape[1], cached + h.shape[1], h.dtype)
        last, hidden, attn = self.encoder(h, mask, cache=cache, output_hidden_states=bool(output_hidden_states),
                                          output_attentions=bool(output_attentions))
        pooled = self.pooler(last) if self.pooler is not None else None
        out = BaseModelOutput(last_hidden_state=last, pooler_output=pooled, hidden_states=hidden,
                              past_key_values=cache, attentions=attn)
        return out if return_dict is None or return_dict else out.to_tuple()


def _reject_labels(kwargs) -> None:
    if kwargs:
        raise TypeError(f"unexpected argument(s) {sorted(kwargs)}: nlptool.bert models are for inference "
                        "(no labels/loss); train with transformers")


class BertForMaskedLM(BertPreTrainedModel):
    """``bert`` (no pooler) + ``cls`` (MLM head, decoder tied to the word embeddings)."""

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.tie_weights()

    def tie_weights(self) -> None:
        """Share the word-embedding matrix with the MLM decoder (when ``tie_word_embeddings``) and
        the decoder's bias with ``cls.predictions.bias``, as transformers does."""
        if getattr(self.config, "tie_word_embeddings", True):
            self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight
        self.cls.predictions.decoder.bias = self.cls.predictions.bias

    def get_output_embeddings(self) -> nn.Linear:
        return self.cls.predictions.decoder

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, output_hidden_states=None, output_attentions=None, return_dict=None, **kwargs):
        """:class:`MaskedLMOutput` with ``logits`` ``(batch, length, vocab)``; arguments as
        :meth:`BertModel.forward`."""
        _reject_labels(kwargs)
        enc = self.bert(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                        output_hidden_states=output_hidden_states, output_attentions=output_attentions)
        out = MaskedLMOutput(logits=self.cls(enc.last_hidden_state), hidden_states=enc.hidden_states,
                             attentions=enc.attentions)
        return out if return_dict is None or return_dict else out.to_tuple()


class BertForSequenceClassification(BertPreTrainedModel):
    """``bert`` (with pooler) + dropout + ``classifier``: the pooled ``[CLS]`` vector to ``num_labels`` logits."""

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=True)
        p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(p)
        self.classifier = _Linear(config.hidden_size, config.num_labels)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, output_hidden_states=None, output_attentions=None, return_dict=None, **kwargs):
        """:class:`SequenceClassifierOutput` with ``logits`` ``(batch, num_labels)``; arguments as
        :meth:`BertModel.forward`."""
        _reject_labels(kwargs)
        enc = self.bert(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                        output_hidden_states=output_hidden_states, output_attentions=output_attentions)
        logits = self.classifier(self.dropout(enc.pooler_output))
        out = SequenceClassifierOutput(logits=logits, hidden_states=enc.hidden_states, attentions=enc.attentions)
        return out if return_dict is None or return_dict else out.to_tuple()


class BertForQuestionAnswering(BertPreTrainedModel):
    """``bert`` (no pooler) + ``qa_outputs``: per token a start and an end logit (span extraction,
    Devlin et al. 2019, section 4.2)."""

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.qa_outputs = _Linear(config.hidden_size, config.num_labels)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, output_hidden_states=None, output_attentions=None, return_dict=None, **kwargs):
        """:class:`QuestionAnsweringModelOutput` with ``start_logits``/``end_logits`` ``(batch,
        length)``; arguments as :meth:`BertModel.forward`."""
        _reject_labels(kwargs)
        enc = self.bert(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                        output_hidden_states=output_hidden_states, output_attentions=output_attentions)
        start, end = self.qa_outputs(enc.last_hidden_state).split(1, dim=-1)
        out = QuestionAnsweringModelOutput(start_logits=start.squeeze(-1).contiguous(),
                                           end_logits=end.squeeze(-1).contiguous(),
                                           hidden_states=enc.hidden_states, attentions=enc.attentions)
        return out if return_dict is None or return_dict else out.to_tuple()


def _unsupported(config: dict) -> str | None:
    """Why nlptool.bert cannot run this ``config.json`` dict, or None when it can."""
    if config.get("model_type") != "bert":
        return f"model_type {config.get('model_type')!r} is not 'bert'"
    if config.get("position_embedding_type", "absolute") not in (None, "absolute"):
        return f"position_embedding_type {config.get('position_embedding_type')!r} (only absolute)"
    if config.get("hidden_act", "gelu") != "gelu":
        return f"hidden_act {config.get('hidden_act')!r} (only 'gelu')"
    if config.get("is_decoder") or config.get("add_cross_attention"):
        return "a decoder / cross-attention configuration"
    if config.get("chunk_size_feed_forward"):
        return "chunk_size_feed_forward is set"
    if config.get("embedding_size") not in (None, config.get("hidden_size")):
        return "a factorised embedding size"
    if config.get("quantization_config"):
        return "a quantised checkpoint"
    hidden, heads = config.get("hidden_size", 768), config.get("num_attention_heads", 12)
    if not isinstance(hidden, int) or not isinstance(heads, int) or heads < 1 or hidden % heads:
        return f"hidden_size {hidden} is not a multiple of num_attention_heads {heads}"
    archs = config.get("architectures") or ["BertModel"]
    if len(archs) != 1 or archs[0] not in _HEAD_OF_ARCH:
        return f"architectures {archs} (supported: {', '.join(HEADS.values())})"
    return None


def can_load_plain(path: str | os.PathLike) -> bool:
    """True when ``path`` is a model directory :func:`load_bert` can load: a ``config.json`` of a
    BERT this module implements (model_type ``bert``, absolute positions, GELU, encoder only, one
    architecture among :data:`HEADS`) and a single ``model.safetensors``. Never raises."""
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as fh:
            config = json.load(fh)
    except (OSError, ValueError, TypeError):
        return False
    return (isinstance(config, dict) and _unsupported(config) is None
            and os.path.isfile(os.path.join(path, "model.safetensors")))


def head_of(path: str | os.PathLike) -> str:
    """The head a model directory was saved with (from ``architectures`` in ``config.json``):
    one of :data:`HEADS`; ``encoder`` when the config names none.

    Raises:
        ModelError: unreadable config or an architecture this module does not implement.
    """
    config = BertConfig.from_json_file(os.path.join(path, "config.json"))
    archs = config.architectures or ["BertModel"]
    if archs[0] not in _HEAD_OF_ARCH:
        raise ModelError(f"{path}: architecture {archs[0]} is not implemented by nlptool.bert "
                         f"(supported: {', '.join(HEADS.values())})")
    return _HEAD_OF_ARCH[archs[0]]


def load_bert(path: str | os.PathLike, head: str | None = None, device="cpu", dtype=torch.float32):
    """Load a BERT model directory (``config.json`` + ``model.safetensors``) without transformers.

    Args:
        path: the model directory (e.g. ``nlptool/data/models/zh-bert-mini``).
        head: ``"encoder"`` (:class:`BertModel`), ``"masked-lm"`` (:class:`BertForMaskedLM`),
            ``"sequence-classification"`` or ``"question-answering"``; None: the checkpoint's own
            (``architectures`` in the config, :func:`head_of`). A bare encoder loads from any of
            these checkpoints (their head weights are left out, as transformers does), with the
            pooler only when the checkpoint has one (``pooler_output`` is None otherwise, where
            transformers would initialise a random pooler).
        device: where the weights go (``"cpu"``, ``"cuda"``, a :class:`torch.device`).
        dtype: compute dtype; the fp16 weights on disk are converted (float32 on the CPU by default).

    Returns:
        The model in eval mode.

    Raises:
        ModelError: missing or unreadable files; a config :func:`can_load_plain` refuses; a weight
            the model needs is not in the checkpoint (e.g. a classifier head asked of a masked-LM
            checkpoint), a checkpoint weight the model does not know, or a shape that does not fit.
    """
    path = os.fspath(path)
    cfg_file = os.path.join(path, "config.json")
    try:
        with open(cfg_file, encoding="utf-8") as fh:
            raw = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read config.json: {exc}") from None
    why = _unsupported(raw) if isinstance(raw, dict) else "config.json is not a JSON object"
    if why:
        raise ModelError(f"{path}: not loadable without transformers: {why}")
    config = BertConfig(**raw)
    if head is None:
        head = _HEAD_OF_ARCH[(config.architectures or ["BertModel"])[0]]
    if head not in HEADS:
        raise ValueError(f"head must be one of {list(HEADS)} or None, not {head!r}")
    weights_file = os.path.join(path, "model.safetensors")
    try:
        state = safetensors.torch.load_file(weights_file)
    except (OSError, safetensors.SafetensorError) as exc:
        raise ModelError(f"{path}: cannot read model.safetensors: {exc}") from None

    # checkpoint keys -> this model's keys: the encoder under "bert." in headed models, bare in BertModel
    state = {k: v for k, v in state.items() if not k.endswith(_IGNORED_SUFFIXES)}
    bare = {(k[len("bert."):] if k.startswith("bert.") else k): v for k, v in state.items()}
    has_pooler = "pooler.dense.weight" in bare
    if head == "encoder":
        model_cls, prefix = BertModel, ""
    else:
        model_cls, prefix = {"masked-lm": BertForMaskedLM, "sequence-classification": BertForSequenceClassification,
                             "question-answering": BertForQuestionAnswering}[head], "bert."
    own_head = {"encoder": (), "masked-lm": ("cls.",), "sequence-classification": ("classifier.",),
                "question-answering": ("qa_outputs.",)}[head]
    ignored = tuple(p for p in _HEAD_PREFIXES if p not in own_head)
    _LOADING.active = True
    try:
        model = model_cls(config, add_pooling_layer=has_pooler) if model_cls is BertModel else model_cls(config)
    finally:
        _LOADING.active = False
    wanted = model.state_dict()
    tied = set()
    if head == "masked-lm":
        tied.add("cls.predictions.decoder.bias")
        if getattr(config, "tie_word_embeddings", True):
            tied.add("cls.predictions.decoder.weight")
    if getattr(model.base_model, "pooler", None) is None:
        ignored = ignored + ("pooler.",)
    loaded = {}
    unexpected = []
    for key, value in bare.items():
        is_encoder = key.startswith(("embeddings.", "encoder.", "pooler."))
        if key.startswith(ignored) or key in tied:
            continue
        name = prefix + key if is_encoder else key
        if name in wanted:
            loaded[name] = value
        else:
            unexpected.append(key)
    missing = sorted(k for k in wanted if k not in loaded and k not in tied)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing weights {_few(missing)}")
        if unexpected:
            parts.append(f"unknown weights {_few(sorted(unexpected))}")
        raise ModelError(f"{path}: the checkpoint does not fit a BERT {head} model: {'; '.join(parts)}")
    for name in tied:  # the same parameter as the embeddings / cls.predictions.bias
        loaded[name] = loaded["bert.embeddings.word_embeddings.weight" if name.endswith("weight")
                              else "cls.predictions.bias"]
    try:
        model.load_state_dict(loaded, strict=True)  # copies (and converts fp16 -> float32) into the parameters
    except RuntimeError as exc:
        raise ModelError(f"{path}: the checkpoint does not fit its config: {str(exc).splitlines()[-1].strip()}") from None
    model.to(device=device, dtype=dtype)
    return model.eval()


def _few(keys: list[str]) -> str:
    return ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")


__all__ = [
    "BaseModelOutput", "BertConfig", "BertForMaskedLM", "BertForQuestionAnswering", "BertForSequenceClassification",
    "BertModel", "HEADS", "KVCache", "MaskedLMOutput", "ModelOutput", "QuestionAnsweringModelOutput",
    "SequenceClassifierOutput", "can_load_plain", "head_of", "load_bert",
]

"""nlptool.bert and nlptool.wordpiece against transformers: same numbers, same ids, no transformers import.

Every built-in BERT is loaded twice, with the transformers class nlptool's ``load_model`` uses for it
and with :func:`nlptool.bert.load_bert`, and every output the project reads is compared (float32 on
the CPU, within 1e-5): hidden states of every layer, MLM/classification/QA logits, attention
weights (transformers' eager attention, the one that returns them), the UniLM seq2seq mask and
cached decoding, the layer-by-layer path of Perturbed Masking, and integrated gradients through the
embedding layer. The tokenizer is compared on a few hundred real lines.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # loads every built-in model twice and tokenizes a few hundred lines five times

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from nlptool.bert import (  # noqa: E402
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertModel,
    KVCache,
    can_load_plain,
    head_of,
    load_bert,
)
from nlptool.errors import ModelError  # noqa: E402
from nlptool.wordpiece import WordPieceTokenizer, can_load_wordpiece  # noqa: E402

ATOL = 1e-5
MODELS_DIR = Path(__file__).resolve().parents[1] / "nlptool" / "data" / "models"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]

#: built-in model -> (head load_model uses for it, transformers Auto class name, plain class)
BUILTIN = {
    "zh-bert-mini": ("masked-lm", "AutoModelForMaskedLM", BertForMaskedLM),
    "zh-qa-gen-mini": ("masked-lm", "AutoModelForMaskedLM", BertForMaskedLM),
    "zh-sim-mini": ("encoder", "AutoModel", BertModel),
    "zh-sentiment-mini": ("sequence-classification", "AutoModelForSequenceClassification", BertForSequenceClassification),
    "zh-reader-mini": ("question-answering", "AutoModelForQuestionAnswering", BertForQuestionAnswering),
}
#: plus zh-bert-mini loaded as a bare encoder (Perturbed Masking, the tagger's teacher, similarity)
CASES = [(name, head) for name, (head, _, _) in BUILTIN.items()] + [("zh-bert-mini", "encoder")]
AUTO_OF = {"masked-lm": "AutoModelForMaskedLM", "encoder": "AutoModel",
           "sequence-classification": "AutoModelForSequenceClassification",
           "question-answering": "AutoModelForQuestionAnswering"}


def model_dir(name: str) -> Path:
    path = MODELS_DIR / name
    if not (path / "model.safetensors").exists():
        pytest.skip(f"built-in model {name} is not in this checkout ({path})")
    return path


_HF: dict = {}
_PLAIN: dict = {}


def hf_model(name: str, head: str, attn: str = "sdpa"):
    """The transformers model as ``nlptool.models.load_model`` loads it (float32, eval)."""
    key = (name, head, attn)
    if key not in _HF:
        auto = getattr(transformers, AUTO_OF[head])
        _HF[key] = auto.from_pretrained(model_dir(name), dtype=torch.float32, attn_implementation=attn,
                                        use_safetensors=True).eval()
    return _HF[key]


def plain_model(name: str, head: str | None):
    key = (name, head)
    if key not in _PLAIN:
        _PLAIN[key] = load_bert(model_dir(name), head=head)
    return _PLAIN[key]


def close(a, b, what: str) -> None:
    assert a.shape == b.shape, f"{what}: shapes {tuple(a.shape)} vs {tuple(b.shape)}"
    diff = (a.float() - b.float()).abs().max().item() if a.numel() else 0.0
    assert diff <= ATOL, f"{what}: max abs difference {diff:.3g} > {ATOL}"


# -- text --------------------------------------------------------------------------------------

def sample_lines() -> list[str]:
    """Real lines: the project's samples, and (when ../shared/data is there) reviews, PKU test
    sentences, English UD sentences, CMRC passages (long: truncation), plus awkward strings."""
    lines = [ln.strip() for ln in (REPO / "data" / "sample_zh.txt").read_text(encoding="utf-8").splitlines() if ln.strip()]
    for ln in (REPO / "data" / "sample_passages.jsonl").read_text(encoding="utf-8").splitlines():
        if ln.strip():
            lines.append(json.loads(ln)["text"])
    shared = {
        "sentiment/ChnSentiCorp_htl_all.csv": lambda p: [r[1] for r in list(csv.reader(p.open(encoding="utf-8")))[1:151]],
        "sighan2005/pku_test.utf8": lambda p: p.read_text(encoding="utf-8").splitlines()[:100],
        "ud/en_ewt-ud-dev.conllu": lambda p: [ln[len("# text = "):] for ln in p.read_text(encoding="utf-8").splitlines()
                                             if ln.startswith("# text = ")][:80],
        "qa/cmrc2018_trial.json": lambda p: [para["context"] for art in json.loads(p.read_text(encoding="utf-8"))["data"][:10]
                                            for para in art["paragraphs"]][:20],
    }
    for rel, read in shared.items():
        path = SHARED_DATA / rel
        if path.exists():
            lines += [t for t in read(path) if t]
    lines += ["", " ", "Café naïve ÉCOLE façade", "a\tb\u200bc\x00d\ufffd", "😀 emoji 🀄 ok", "ＡＢＣ１２３，全角標點",
              "x" * 150, "中" * 600, "\u0301abc", "iPhone 11 Pro Max！！ 2024年3月", "Ⅻ ½ ™ ﬁ", "tab\tand\nnewline"]
    return lines


# -- model outputs -----------------------------------------------------------------------------

def _random_batch(vocab: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (4, 24), generator=g)
    att = torch.ones_like(ids)
    att[1, 17:] = 0
    att[2, 6:] = 0
    att[3, 1:] = 0
    types = torch.zeros_like(ids)
    types[:, 12:] = 1
    ids[:, 0] = 2
    return ids, att, types


def _sentence_batch(name: str):
    tok = WordPieceTokenizer(model_dir(name))
    lines = sample_lines()[:24]
    enc = tok(lines, padding=True, truncation=True, max_length=96, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]


def _compare_outputs(a, b, what: str) -> None:
    assert set(b.keys()) <= set(a.keys()) | {"past_key_values"}, f"{what}: keys {list(a.keys())} vs {list(b.keys())}"
    for key in ("logits", "start_logits", "end_logits", "last_hidden_state", "pooler_output"):
        if key in b:
            close(a[key], b[key], f"{what} {key}")
    for key in ("hidden_states", "attentions"):
        if key in b:
            assert len(a[key]) == len(b[key]), f"{what}: {len(a[key])} vs {len(b[key])} {key}"
            for i, (x, y) in enumerate(zip(a[key], b[key])):
                close(x, y, f"{what} {key}[{i}]")


@pytest.mark.parametrize("name,head", CASES)
@pytest.mark.parametrize("inputs", ["random", "sentences"])
def test_forward_matches_transformers(name, head, inputs):
    plain = plain_model(name, head)
    ids, att, types = _random_batch(plain.config.vocab_size) if inputs == "random" else _sentence_batch(name)
    for attn, want_attn in (("sdpa", False), ("eager", True)):
        hf = hf_model(name, head, attn)
        with torch.no_grad():
            a = hf(input_ids=ids, attention_mask=att, token_type_ids=types, output_hidden_states=True,
                   output_attentions=want_attn)
            b = plain(input_ids=ids, attention_mask=att, token_type_ids=types, output_hidden_states=True,
                      output_attentions=want_attn)
        n_layers = plain.config.num_hidden_layers
        assert len(b.hidden_states) == n_layers + 1
        if want_attn:
            assert len(b.attentions) == n_layers
        if head == "encoder" and "pooler_output" not in b:
            # zh-bert-mini has no pooler; transformers initialises a random one, the plain model has none
            assert getattr(hf.base_model, "pooler", None) is not None and b.pooler_output is None
            a = {k: v for k, v in a.items() if k != "pooler_output"}
        _compare_outputs(a, b, f"{name}/{head}/{attn}/{inputs}")


@pytest.mark.parametrize("name,head", CASES)
def test_encoder_calls_as_the_project_makes_them(name, head):
    """``encoder_of(model)`` (``base_model``), ``model.bert(...)``, ``model.cls(h[sel])``, no
    token types, a bool/float 2-D mask, ``return_dict=False``, ``inputs_embeds``."""
    plain, hf = plain_model(name, head), hf_model(name, head)
    ids, att, _ = _random_batch(plain.config.vocab_size, seed=1)
    with torch.no_grad():
        a = hf.base_model(input_ids=ids, attention_mask=att)
        b = plain.base_model(input_ids=ids, attention_mask=att)
        close(a.last_hidden_state, b.last_hidden_state, "base_model")
        close(a.last_hidden_state, plain.base_model(input_ids=ids, attention_mask=att.bool()).last_hidden_state, "bool mask")
        close(a.last_hidden_state, plain.base_model(input_ids=ids, attention_mask=att.float()).last_hidden_state, "float mask")
        emb = plain.get_input_embeddings()(ids)
        close(b.last_hidden_state, plain.base_model(inputs_embeds=emb, attention_mask=att).last_hidden_state, "inputs_embeds")
        assert plain.get_input_embeddings() is plain.base_model.embeddings.word_embeddings
        full = plain(input_ids=ids, attention_mask=att)
        as_tuple = plain(input_ids=ids, attention_mask=att, return_dict=False)
        assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], full[0])
        if head == "masked-lm":
            sel = att.bool()
            close(hf.cls(a.last_hidden_state[sel]), plain.cls(b.last_hidden_state[sel]), "cls on selected rows")
            assert plain.cls.predictions.decoder.weight is plain.bert.embeddings.word_embeddings.weight
            assert getattr(full, "last_hidden_state", None) is None  # as MaskedLMOutput: no such field
    cfg_a, cfg_b = hf.config, plain.config
    for field in ("num_hidden_layers", "hidden_size", "intermediate_size", "max_position_embeddings", "vocab_size",
                  "pad_token_id", "num_labels", "id2label", "label2id", "num_attention_heads", "type_vocab_size"):
        assert getattr(cfg_a, field) == getattr(cfg_b, field), field
    assert next(plain.parameters()).dtype == torch.float32 and not plain.training


def test_head_inferred_from_architectures():
    for name, (head, _, cls) in BUILTIN.items():
        path = model_dir(name)
        assert head_of(path) == head
        assert type(plain_model(name, None)) is cls
        assert can_load_plain(path)
    assert not can_load_plain(MODELS_DIR / "zh-seg-mini")  # nlptool's own char tagger, not a BERT


# -- UniLM: seq2seq mask and cached decoding ---------------------------------------------------

def _unilm_module():
    for mod in ("nlptool.qagen.unilm", "nlptool.unilm"):
        try:
            return importlib.import_module(mod)
        except ImportError:
            continue
    pytest.skip("nlptool's unilm module is not importable in this checkout")


def _unilm_additive(types, att, dtype):
    """The UniLM seq2seq mask as nlptool's unilm.py builds it (``unilm_allowed`` then
    ``additive_mask``), written out here so the check does not depend on where that module lives."""
    src = types.long() == 0
    n = src.shape[-1]
    idx = torch.arange(n)
    allowed = (src[:, None, :] | (idx[None, :] <= idx[:, None])[None]) & att.bool()[:, None, :]
    out = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
    return out[:, None]


def test_unilm_mask_and_incremental_decoding_plain():
    """Full forward under the UniLM mask == prefill of the source + one cached step per target
    token (keys/values reused from :class:`KVCache`), and each of these == transformers (with its
    ``DynamicCache``) on the same inputs within 1e-5.

    Full and incremental differ only by float32 rounding (other matrix shapes, other summation
    order): up to about 1e-5 of the largest logit, the same in transformers itself, so that
    comparison is relative to the logit scale."""
    name = "zh-qa-gen-mini"
    plain, hf = plain_model(name, "masked-lm"), hf_model(name, "masked-lm")
    g = torch.Generator().manual_seed(3)
    n_src, n_tgt, rows = 9, 6, 3
    ids = torch.randint(5, plain.config.vocab_size, (rows, n_src + n_tgt), generator=g)
    ids[:, 0], ids[:, n_src - 1] = 2, 3
    types = torch.zeros_like(ids)
    types[:, n_src:] = 1
    att = torch.ones_like(ids)
    att[2, 6:n_src] = 0  # a shorter source (right-padded inside the source part)
    mask = _unilm_additive(types, att, torch.float32)
    pos = torch.arange(ids.shape[1])[None].expand(rows, -1)
    with torch.no_grad():
        full_hf = hf.cls(hf.bert(input_ids=ids, token_type_ids=types, attention_mask=mask, position_ids=pos).last_hidden_state)
        full = plain.cls(plain.bert(input_ids=ids, token_type_ids=types, attention_mask=mask, position_ids=pos).last_hidden_state)
        close(full_hf, full, "UniLM full forward logits")
        rounding = 1e-5 * float(full.abs().max())

        def incremental(model, cache):
            out = model.bert(input_ids=ids[:, :n_src], token_type_ids=types[:, :n_src],
                             attention_mask=mask[:, :, :n_src, :n_src], position_ids=pos[:, :n_src], cache=cache,
                             use_cache=False)
            logits = [model.cls(out.last_hidden_state)]
            for t in range(n_src, n_src + n_tgt):
                step = model.bert(input_ids=ids[:, t:t + 1], token_type_ids=types[:, t:t + 1],
                                  attention_mask=mask[:, :, t:t + 1, : t + 1], position_ids=pos[:, t:t + 1],
                                  cache=cache)
                logits.append(model.cls(step.last_hidden_state))
            return torch.cat(logits, dim=1), out

        cache = KVCache()
        inc, out = incremental(plain, cache)
        assert out.past_key_values is cache and cache.get_seq_length() == n_src + n_tgt
        inc_hf, _ = incremental(hf, transformers.DynamicCache())
        close(inc_hf, inc, "UniLM incremental logits")
        diff = float((inc - full).abs().max())
        assert diff <= rounding, f"incremental vs full: {diff:.3g} > {rounding:.3g}"
        # the same through past_key_values=, and without position_ids (counted on from the cache)
        cache2 = KVCache()
        plain.bert(input_ids=ids[:, :n_src], token_type_ids=types[:, :n_src], attention_mask=mask[:, :, :n_src, :n_src],
                   past_key_values=cache2)
        step = plain.bert(input_ids=ids[:, n_src:n_src + 1], token_type_ids=types[:, n_src:n_src + 1],
                          attention_mask=mask[:, :, n_src:n_src + 1, : n_src + 1], past_key_values=cache2)
        close(inc[:, n_src], plain.cls(step.last_hidden_state[:, 0]), "past_key_values= and default positions")


def test_unilm_module_paths_match_transformers():
    """nlptool's own UniLM functions (``seq2seq_loss``, ``prefill``, ``step`` with finished-row
    fillers, ``DecodeState.select``/``repeat``, ``beam_search``) give the same numbers with the
    plain model as with transformers; the plain cache also serves the transformers model."""
    unilm = _unilm_module()
    name = "zh-qa-gen-mini"
    plain, hf = plain_model(name, "masked-lm"), hf_model(name, "masked-lm")
    dev = torch.device("cpu")
    seqs = [([2, 100, 200, 300, 3], [0] * 5), ([2, 400, 500, 3, 600, 700, 3], [0, 0, 0, 0, 1, 1, 1]),
            ([2, 10, 11, 12, 13, 14, 3, 50, 3], [0] * 7 + [1, 1], 7)]
    with torch.no_grad():
        ids = torch.tensor([[2, 10, 11, 3, 20, 21, 3], [2, 10, 11, 12, 3, 20, 3]])
        types = torch.tensor([[0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 1, 1]])
        la = unilm.seq2seq_loss(hf, ids, types, torch.ones_like(ids))
        lb = unilm.seq2seq_loss(plain, ids, types, torch.ones_like(ids))
        assert abs(la.item() - lb.item()) <= ATOL
        a, sa = unilm.prefill(hf, seqs, dev)
        b, sb = unilm.prefill(plain, seqs, dev)
        close(a, b, "prefill")
        toks, valid = torch.tensor([7, 8, 9]), torch.tensor([True, False, True])
        for t in range(3):
            close(unilm.step(hf, sa, toks + t, valid), unilm.step(plain, sb, toks + t, valid), f"step {t}")
        rows = torch.tensor([2, 0, 0])
        sa, sb = sa.select(rows), sb.select(rows)
        close(unilm.step(hf, sa, toks), unilm.step(plain, sb, toks), "step after select")
        a, sa = unilm.prefill(hf, seqs, dev)
        b, sb = unilm.prefill(plain, seqs, dev)
        found_a = unilm.beam_search(hf, sa, a, beam_size=3, max_len=8, end_id=3)
        found_b = unilm.beam_search(plain, sb, b, beam_size=3, max_len=8, end_id=3)
        assert [None if x is None else x[0] for x in found_a] == [None if x is None else x[0] for x in found_b]
        for x, y in zip(found_a, found_b):
            assert (x is None) == (y is None) and (x is None or abs(x[1] - y[1]) <= 1e-4)
        # the plain KVCache also works as transformers' cache (unilm could drop its DynamicCache import)
        cache = KVCache()
        n = len(seqs[1][0])
        ids1 = torch.tensor([seqs[1][0]])
        t1 = torch.tensor([seqs[1][1]])
        m1 = _unilm_additive(t1, torch.ones_like(ids1), torch.float32)
        h1 = hf.bert(input_ids=ids1, token_type_ids=t1, attention_mask=m1, cache=cache).last_hidden_state
        assert cache.get_seq_length() == n
        close(h1, plain.bert(input_ids=ids1, token_type_ids=t1, attention_mask=m1).last_hidden_state, "HF with KVCache")


# -- Perturbed Masking: layers called one by one ------------------------------------------------

def test_layer_by_layer_path_of_perturbed_masking():
    """``encoder.embeddings(input_ids=)``, ``layer(h, attention_mask=ext)`` with a
    ``(batch, 1, 1, n)`` additive mask, and the layer's parts (``attention.self.query``,
    ``attention.output(ctx, x)``, ``output(intermediate(a), a)``) as ``_encode_selected`` uses them."""
    plain, hf = plain_model("zh-bert-mini", "encoder"), hf_model("zh-bert-mini", "encoder")
    ids, att, _ = _random_batch(plain.config.vocab_size, seed=5)
    ext = torch.zeros((ids.shape[0], 1, 1, ids.shape[1])).masked_fill_(att[:, None, None, :] == 0, torch.finfo(torch.float32).min)
    with torch.no_grad():
        ha, hb = hf.embeddings(input_ids=ids), plain.embeddings(input_ids=ids)
        close(ha, hb, "embeddings")
        for i, (la, lb) in enumerate(zip(hf.encoder.layer, plain.encoder.layer)):
            oa, ob = la(ha, attention_mask=ext), lb(hb, attention_mask=ext)
            oa = oa[0] if isinstance(oa, tuple) else oa
            assert isinstance(ob, torch.Tensor)
            close(oa, ob, f"layer {i}")
            sa, sb = la.attention.self, lb.attention.self
            assert (sa.num_attention_heads, sa.attention_head_size) == (sb.num_attention_heads, sb.attention_head_size)
            x = hb[:, :3]
            close(la.attention.output(sa.query(ha[:, :3]), ha[:, :3]), lb.attention.output(sb.query(x), x), "attention.output")
            close(la.output(la.intermediate(ha[:, :3]), ha[:, :3]), lb.output(lb.intermediate(x), x), "feed-forward")
            ha, hb = oa, ob
    for mod in ("nlptool.segment.masking", "nlptool.perturbed_masking"):
        try:
            masking = importlib.import_module(mod)
            break
        except ImportError:
            masking = None
    if masking is None or not hasattr(masking, "_encode_selected"):
        return
    assert masking._bert_like(plain)
    positions = [1, 2, 5, 24 + 3, 24 * 2 + 4, 24 * 3]
    with torch.no_grad():
        for want in (1, 2, 4):
            a, fa = masking._encode_selected(hf, ids, att, want, positions)
            b, fb = masking._encode_selected(plain, ids, att, want, positions)
            close(a, b, f"_encode_selected layer {want}")
            assert fa == fb


# -- integrated gradients through the embedding layer -------------------------------------------

def test_integrated_gradients_hook_the_same_layer():
    pytest.importorskip("captum")
    ig = None
    for mod in ("nlptool.attribute.ig", "nlptool.attribution.ig"):
        try:
            ig = importlib.import_module(mod)
            break
        except ImportError:
            continue
    if ig is None or not hasattr(ig, "ig_scores"):
        pytest.skip("nlptool's integrated-gradients module is not importable in this checkout")
    name = "zh-sentiment-mini"
    plain, hf = plain_model(name, "sequence-classification"), hf_model(name, "sequence-classification")
    tok = WordPieceTokenizer(model_dir(name))
    enc = tok(["房间很干净，服务也好。", "太吵了，再也不来"], padding=True, return_tensors="pt", return_special_tokens_mask=True)
    special = enc["special_tokens_mask"].bool() | (enc["attention_mask"] == 0)
    ref = ig.baseline_ids(enc["input_ids"], special, tok.pad_token_id)
    target = torch.tensor([1, 0])
    sa, fxa, fra = ig.ig_scores(hf, enc["input_ids"], enc["attention_mask"], ref, target, steps=8)
    sb, fxb, frb = ig.ig_scores(plain, enc["input_ids"], enc["attention_mask"], ref, target, steps=8)
    close(sa, sb, "IG scores")
    close(fxa, fxb, "F(x)")
    close(fra, frb, "F(baseline)")
    assert ig.label_list(plain.config) == ig.label_list(hf.config) == ["negative", "positive"]


# -- loading rules -------------------------------------------------------------------------------

def _copy_model(src: Path, dst: Path, config_changes: dict | None = None, weights=None) -> Path:
    import safetensors.torch

    dst.mkdir()
    config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    config.update(config_changes or {})
    (dst / "config.json").write_text(json.dumps(config), encoding="utf-8")
    state = safetensors.torch.load_file(str(src / "model.safetensors"))
    if weights is not None:
        state = weights(state)
    safetensors.torch.save_file(state, str(dst / "model.safetensors"))
    return dst


def test_strict_about_weights_and_configs(tmp_path):
    bert = model_dir("zh-bert-mini")
    with pytest.raises(ModelError, match="missing weights.*classifier"):
        load_bert(bert, head="sequence-classification")
    with pytest.raises(ModelError, match="missing weights.*cls.predictions"):
        load_bert(model_dir("zh-sim-mini"), head="masked-lm")
    extra = _copy_model(bert, tmp_path / "extra", weights=lambda s: {**s, "bert.encoder.layer.9.output.dense.bias": s["cls.predictions.bias"][:256].clone()})
    with pytest.raises(ModelError, match="unknown weights.*layer.9"):
        load_bert(extra)
    short = _copy_model(bert, tmp_path / "short", weights=lambda s: {k: v for k, v in s.items() if "layer.3.output.LayerNorm" not in k})
    with pytest.raises(ModelError, match="missing weights.*layer.3.output.LayerNorm"):
        load_bert(short)
    wide = _copy_model(bert, tmp_path / "wide", {"intermediate_size": 512})
    with pytest.raises(ModelError, match="does not fit"):
        load_bert(wide)
    for changes in ({"model_type": "roberta"}, {"hidden_act": "relu"}, {"position_embedding_type": "relative_key"},
                    {"is_decoder": True}, {"architectures": ["BertForTokenClassification"]}):
        path = _copy_model(bert, tmp_path / str(abs(hash(json.dumps(changes)))), changes)
        assert not can_load_plain(path), changes
        with pytest.raises(ModelError, match="not loadable without transformers"):
            load_bert(path)
    assert not can_load_plain(tmp_path / "nothing-here")
    with pytest.raises(ModelError, match="config.json"):
        load_bert(tmp_path / "nothing-here")
    # the head weights of another task are left out, as transformers does
    assert type(load_bert(model_dir("zh-sentiment-mini"), head="encoder")) is BertModel
    assert load_bert(model_dir("zh-sentiment-mini"), head="encoder").pooler is not None
    assert load_bert(bert, head="encoder").pooler is None


def test_tiny_model_saved_by_transformers(tiny_bert_dir):
    """A checkpoint written by ``save_pretrained`` (float32, nlptool's own tokenizer files) loads
    and matches, tokenizer included (the code path the built-in models were made by)."""
    hf = transformers.AutoModelForMaskedLM.from_pretrained(tiny_bert_dir, dtype=torch.float32).eval()
    plain = load_bert(tiny_bert_dir)
    assert can_load_plain(tiny_bert_dir) and can_load_wordpiece(tiny_bert_dir)
    tok_a = transformers.AutoTokenizer.from_pretrained(tiny_bert_dir)
    tok_b = WordPieceTokenizer(tiny_bert_dir)
    texts = ["我们在学校里学习", "ab12 中文", "天"]
    enc_a = tok_a(texts, padding=True, return_tensors="pt")
    enc_b = tok_b(texts, padding=True, return_tensors="pt")
    for key in enc_a:
        assert torch.equal(enc_a[key], enc_b[key]), key
    with torch.no_grad():
        close(hf(**enc_a).logits, plain(**enc_b).logits, "tiny logits")


def test_dtype_and_device_arguments():
    model = load_bert(model_dir("zh-bert-mini"), dtype=torch.float16)
    assert {p.dtype for p in model.parameters()} == {torch.float16}
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    ref = plain_model("zh-bert-mini", "masked-lm")
    # the fp16 weights on disk are exactly representable: converting back gives the float32 model
    for (na, a), (nb, b) in zip(model.named_parameters(), ref.named_parameters()):
        assert na == nb and torch.equal(a.float(), b), na


# -- tokenizer -----------------------------------------------------------------------------------

_TOK: dict = {}


def tokenizers_of(name: str):
    if name not in _TOK:
        path = model_dir(name)
        _TOK[name] = (transformers.AutoTokenizer.from_pretrained(str(path)), WordPieceTokenizer(path))
    return _TOK[name]


def _same(a, b, what: str) -> None:
    assert list(a.keys()) == list(b.keys()), f"{what}: keys {list(a.keys())} vs {list(b.keys())}"
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), f"{what}: {key}"
        else:
            assert a[key] == b[key], f"{what}: {key}"


SINGLE_CALLS = [
    {},
    {"add_special_tokens": False, "return_offsets_mapping": True},
    {"truncation": True, "max_length": 16, "return_offsets_mapping": True, "return_special_tokens_mask": True},
    {"max_length": 10},  # transformers truncates when max_length comes without padding
    {"return_tensors": "pt", "return_offsets_mapping": True},
]
BATCH_CALLS = [
    {"padding": True, "truncation": True, "max_length": 64, "return_tensors": "pt", "return_offsets_mapping": True,
     "return_special_tokens_mask": True},
    {"padding": True},
    {"padding": "max_length", "max_length": 40, "truncation": True},
    {"add_special_tokens": True, "truncation": False},
    {"add_special_tokens": False},
    {"truncation": True, "max_length": 512, "padding": True, "return_tensors": "pt"},
]


@pytest.mark.parametrize("name", list(BUILTIN))
def test_tokenizer_matches_transformers(name):
    hf, plain = tokenizers_of(name)
    lines = sample_lines()
    assert len(lines) >= 300 or not SHARED_DATA.exists()
    for kwargs in SINGLE_CALLS:
        for line in lines:
            a, b = hf(line, **kwargs), plain(line, **kwargs)
            _same(a, b, f"{name} {kwargs} {line[:30]!r}")
            assert a.word_ids() == b.word_ids()
    for kwargs in BATCH_CALLS:
        for start in range(0, len(lines), 32):
            batch = lines[start:start + 32]
            a, b = hf(batch, **kwargs), plain(batch, **kwargs)
            _same(a, b, f"{name} {kwargs} batch {start}")
            for row in range(len(batch)):
                assert a.word_ids(row) == b.word_ids(row)
    a = hf(lines[:10], lines[10:20], truncation=True, max_length=30, padding=True)
    _same(a, plain(lines[:10], lines[10:20], truncation=True, max_length=30, padding=True), "pairs")
    for line in lines[:120]:
        assert hf.tokenize(line) == plain.tokenize(line)
        assert hf.encode(line, add_special_tokens=False) == plain.encode(line, add_special_tokens=False)
        ids = hf(line)["input_ids"]
        assert hf.decode(ids) == plain.decode(ids)
        assert hf.decode(ids, skip_special_tokens=True) == plain.decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("name", list(BUILTIN))
def test_tokenizer_attributes_match_transformers(name):
    hf, plain = tokenizers_of(name)
    for attr in ("cls_token_id", "sep_token_id", "pad_token_id", "mask_token_id", "unk_token_id", "bos_token_id",
                 "eos_token_id", "cls_token", "sep_token", "pad_token", "mask_token", "unk_token", "model_max_length",
                 "all_special_tokens", "all_special_ids", "is_fast", "vocab_size", "padding_side", "truncation_side",
                 "special_tokens_map"):
        assert getattr(hf, attr) == getattr(plain, attr), attr
    assert len(hf) == len(plain)
    assert hf.get_vocab() == plain.get_vocab() == plain.vocab
    every = list(range(len(hf)))
    assert hf.convert_ids_to_tokens(every) == plain.convert_ids_to_tokens(every)
    assert hf.convert_ids_to_tokens(7) == plain.convert_ids_to_tokens(7)
    probes = ["[CLS]", "中", "##a", "a", "not-a-token", "1"]
    assert hf.convert_tokens_to_ids(probes) == plain.convert_tokens_to_ids(probes)
    assert [hf.convert_tokens_to_ids(p) for p in probes] == [plain.convert_tokens_to_ids(p) for p in probes]
    assert getattr(hf, "do_lower_case", True) == plain.do_lower_case


def test_tokenizer_save_and_reload(tmp_path):
    _, plain = tokenizers_of("zh-bert-mini")
    written = plain.save_pretrained(tmp_path / "tok")
    assert {Path(p).name for p in written} >= {"tokenizer.json", "tokenizer_config.json"}
    again = WordPieceTokenizer(tmp_path / "tok")
    assert again("中文 text")["input_ids"] == plain("中文 text")["input_ids"]
    with pytest.raises(ModelError, match="tokenizer.json"):
        WordPieceTokenizer(tmp_path / "missing")
    with pytest.raises(ValueError, match="padding=True"):
        plain(["一", "一二三"], return_tensors="pt")


# -- no transformers --------------------------------------------------------------------------------

def test_no_transformers_import_in_a_fresh_process():
    """Importing, loading, tokenizing and running the plain modules never imports transformers."""
    path = model_dir("zh-bert-mini")
    code = (
        "import sys, torch\n"
        "import nlptool.bert, nlptool.wordpiece\n"
        "assert 'transformers' not in sys.modules, 'import'\n"
        f"m = nlptool.bert.load_bert({str(path)!r})\n"
        f"t = nlptool.wordpiece.WordPieceTokenizer({str(path)!r})\n"
        "enc = t(['今天天气很好', '中文'], padding=True, return_tensors='pt', return_offsets_mapping=True)\n"
        "with torch.inference_mode():\n"
        "    out = m(input_ids=enc['input_ids'], attention_mask=enc['attention_mask'], output_hidden_states=True)\n"
        "assert out.logits.shape[:2] == enc['input_ids'].shape\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('transformers', 'huggingface_hub', 'accelerate'))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=str(REPO), timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]

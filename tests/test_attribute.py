"""Integrated gradients (nlptool.attribute, `nlptool attribute`) on tiny models built here.

What can fail and is checked against an independent computation:
  * completeness: sum(scores) == F(x) - F(baseline) to 1e-3 relative with enough steps, with
    F(x), F(baseline) recomputed by a plain forward pass on hand-built inputs;
  * a linear model: IG == (x - x') . w exactly (the path integral of a constant gradient);
  * offsets: the token spans are disjoint, inside the text, cover every non-space character, and
    text[start:end] spells the token;
  * baselines keep [CLS]/[SEP]/[PAD] and replace everything else by the chosen token;
  * CLI: file, stdin and JSONL inputs give the same records; long texts are truncated with a
    warning; the HTML page is self-contained; the PNG has the CJK glyphs (skipped without a CJK font).
"""

from __future__ import annotations

import re

import json
import math
import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("captum")

TEXTS = ["这家酒店很好，服务周到。", "房间太小了", "wifi不好用abc 123！", "A  b😀c 的"]


@pytest.fixture(scope="session")
def tiny_cls_dir(tiny_bert_dir, tmp_path_factory):
    """A random 2-layer 32-wide BertForSequenceClassification (labels neg/pos, window 64) with the
    tiny_bert_dir tokenizer. Larger initial weights than BERT's 0.02 so that F(x) - F(baseline)
    is far from zero and the relative completeness check is meaningful."""
    from transformers import BertConfig, BertForSequenceClassification

    out = tmp_path_factory.mktemp("tiny-cls")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        src = f"{tiny_bert_dir}/{name}"
        try:
            shutil.copy(src, out / name)
        except FileNotFoundError:
            pass
    base = BertConfig.from_pretrained(tiny_bert_dir)
    cfg = BertConfig(
        vocab_size=base.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, pad_token_id=0, num_labels=2,
        id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1}, initializer_range=0.3,
    )
    torch.manual_seed(1)
    model = BertForSequenceClassification(cfg)
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    return str(out)


@pytest.fixture(scope="session")
def loaded(tiny_cls_dir):
    from nlptool.models import load_model

    return load_model(tiny_cls_dir, kind="sequence-classification", device="cpu")


def _forward_prob(loaded, ids, target):
    with torch.no_grad():
        logits = loaded.model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long)).logits
    return torch.softmax(logits.double(), -1)[0, target].item(), logits.double()[0, target].item()


@pytest.mark.parametrize("output", ["probability", "logit"])
@pytest.mark.parametrize("baseline", ["pad", "mask"])
def test_completeness_with_enough_steps(loaded, output, baseline):
    from nlptool.attribute import attribute_texts

    res = attribute_texts(loaded, TEXTS[:3], steps=300, method="gausslegendre", baseline=baseline, explain=output)
    tok = loaded.tokenizer
    ref_id = tok.pad_token_id if baseline == "pad" else tok.mask_token_id
    for text, r in zip(TEXTS, res):
        ids = tok(text)["input_ids"]
        ref = [ids[0]] + [ref_id] * (len(ids) - 2) + [ids[-1]]
        tgt = ["neg", "pos"].index(r["target"])
        p_x, l_x = _forward_prob(loaded, ids, tgt)
        p_r, l_r = _forward_prob(loaded, ref, tgt)
        f_x, f_r = (p_x, p_r) if output == "probability" else (l_x, l_r)
        # F recomputed independently on the hand-built reference input
        assert r["f_x"] == pytest.approx(f_x, abs=1e-5)
        assert r["f_baseline"] == pytest.approx(f_r, abs=1e-5)
        d_f = f_x - f_r
        assert abs(d_f) > 1e-3, "the tiny model should move F; otherwise the check is vacuous"
        delta = math.fsum(r["scores"]) - d_f
        assert abs(delta) < 1e-3 * abs(d_f)
        assert r["delta"] == pytest.approx(math.fsum(r["scores"]) - (r["f_x"] - r["f_baseline"]), abs=1e-9)
        assert "warning" not in r


def test_riemann_method_and_few_steps_are_less_complete(loaded):
    from nlptool.attribute import attribute_texts

    many = attribute_texts(loaded, [TEXTS[0]], steps=200, method="riemann_trapezoid")[0]
    few = attribute_texts(loaded, [TEXTS[0]], steps=2, method="riemann_trapezoid")[0]
    assert many["delta_ratio"] < 1e-2
    assert few["delta_ratio"] > many["delta_ratio"]
    assert ("warning" in few) == (few["delta_ratio"] > 0.05)


class _Linear(torch.nn.Module):
    """logits = [sum_t w . E[ids_t] + b, 0]: IG of the first logit is (E[x_t] - E[x'_t]) . w."""

    def __init__(self, vocab=30, dim=8):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.emb = torch.nn.Embedding(vocab, dim)
        self.emb.weight.data = torch.randn(vocab, dim, generator=g)
        self.w = torch.randn(dim, generator=g)
        self.b = 0.7

    def get_input_embeddings(self):
        return self.emb

    def forward(self, input_ids=None, attention_mask=None):
        e = self.emb(input_ids) * attention_mask[..., None]
        s = (e @ self.w).sum(-1) + self.b
        return torch.stack([s, torch.zeros_like(s)], dim=-1)


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid"])
def test_linear_model_ig_is_difference_times_weight(method):
    from nlptool.attribute import baseline_ids, ig_scores

    m = _Linear()
    ids = torch.tensor([[2, 5, 9, 11, 3], [2, 7, 3, 0, 0]])
    mask = (ids != 0).long()
    special = (ids == 2) | (ids == 3) | (ids == 0)
    ref = baseline_ids(ids, special, 4)
    scores, f_x, f_ref = ig_scores(m, ids, mask, ref, torch.tensor([0, 0]), explain="logit", steps=3, method=method)
    e, e_ref = m.emb.weight[ids].double(), m.emb.weight[ref].double()
    expected = ((e - e_ref) * m.w.double()).sum(-1) * mask
    assert torch.allclose(scores, expected, atol=1e-5)
    assert torch.allclose(scores.sum(-1), (f_x - f_ref), atol=1e-5)
    assert (scores[special] == 0).all()


# ----------------------------------------------------------------------------- batched integral


def test_integration_nodes_are_captums():
    """Gauss-Legendre nodes and weights equal captum's; the trapezoid nodes are captum's and its
    weights rescaled to sum to 1; both rules integrate a cubic exactly (3 nodes for Gauss-Legendre)."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    from nlptool.attribute import integration_nodes
    from nlptool.errors import UsageError

    for method in ("gausslegendre", "riemann_trapezoid"):
        for n in (2, 3, 7, 50):
            alphas, weights = integration_nodes(method, n)
            sizes, nodes = approximation_parameters(method)
            assert alphas == pytest.approx(nodes(n), abs=1e-7)
            w = sizes(n)
            assert weights == pytest.approx([v / math.fsum(w) for v in w], abs=1e-15)
            assert math.fsum(weights) == pytest.approx(1.0, abs=1e-12)
    a, w = integration_nodes("gausslegendre", 3)
    assert math.fsum(wi * (4 * ai**3 - ai) for ai, wi in zip(a, w)) == pytest.approx(1.0 - 0.5, abs=1e-12)
    with pytest.raises(UsageError):
        integration_nodes("simpson", 10)
    with pytest.raises(UsageError):
        integration_nodes("gausslegendre", 1)


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid"])
def test_batched_linear_model_ig_is_difference_times_weight(method):
    from nlptool.attribute import baseline_ids, ig_scores_batched

    m = _Linear()
    ids = torch.tensor([[2, 5, 9, 11, 3], [2, 7, 3, 0, 0]])
    mask = (ids != 0).long()
    special = (ids == 2) | (ids == 3) | (ids == 0)
    ref = baseline_ids(ids, special, 4)
    scores, f_x, f_ref = ig_scores_batched(m, ids, mask, ref, torch.tensor([0, 0]), explain="logit", steps=3,
                                           method=method)
    e, e_ref = m.emb.weight[ids].double(), m.emb.weight[ref].double()
    expected = ((e - e_ref) * m.w.double()).sum(-1) * mask
    assert scores.dtype == torch.float64 and scores.shape == ids.shape
    assert torch.allclose(scores, expected, atol=1e-5)
    assert torch.allclose(scores.sum(-1), (f_x - f_ref), atol=1e-5)
    assert (scores[special] == 0).all()


def _encoded(loaded, texts, baseline="pad"):
    from nlptool.attribute import baseline_ids

    tok = loaded.tokenizer
    enc = tok(texts, padding=True, return_special_tokens_mask=True, return_tensors="pt")
    special = enc["special_tokens_mask"].bool() | (enc["attention_mask"] == 0)
    ref = baseline_ids(enc["input_ids"], special, getattr(tok, f"{baseline}_token_id"))
    return enc["input_ids"], enc["attention_mask"], ref


BATCH_TEXTS = ["好", "这家酒店很好，服务周到。", "房间太小了", "wifi不好用abc 123！", "房间很干净，服务也好，早餐不错" * 3, "A  b😀c 的"]


@pytest.mark.parametrize("explain", ["probability", "logit"])
@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid"])
def test_batched_equals_captum_per_text(loaded, explain, method):
    """Texts of 3 to 47 tokens in one padded batch, their steps in shared passes, equal captum's
    integral of each text alone (no padding at all): a padded position changes nothing."""
    from nlptool.attribute import ig_scores, ig_scores_batched

    ids, mask, ref = _encoded(loaded, BATCH_TEXTS)
    lengths = mask.sum(-1).tolist()
    assert min(lengths) == 3 and max(lengths) > 40
    tgt = torch.tensor([k % 2 for k in range(len(BATCH_TEXTS))])
    scores, f_x, f_ref = ig_scores_batched(loaded.model, ids, mask, ref, tgt, explain=explain, steps=16, method=method,
                                           tokens_per_forward=200)
    for i, n in enumerate(lengths):
        one, one_x, one_ref = ig_scores(loaded.model, ids[i:i + 1, :n], mask[i:i + 1, :n], ref[i:i + 1, :n], tgt[i:i + 1],
                                        explain=explain, steps=16, method=method)
        scale = float(one.abs().max())
        assert scale > 1e-5, "the tiny model should give non-zero scores; otherwise the check is vacuous"
        assert torch.allclose(scores[i, :n], one[0], rtol=0, atol=1e-7 + 1e-5 * scale), (i, (scores[i, :n] - one[0]).abs().max())
        assert (scores[i, n:] == 0).all()  # padding gets no attribution
        # F of the random tiny model (weights 15x BERT's) differs in the 6th digit between batch shapes
        assert float(f_x[i]) == pytest.approx(float(one_x[0]), abs=1e-5)
        assert float(f_ref[i]) == pytest.approx(float(one_ref[0]), abs=1e-5)
        # completeness: the same delta as captum's, to that rounding
        delta, one_delta = float(scores[i].sum() - (f_x[i] - f_ref[i])), float(one.sum() - (one_x - one_ref))
        assert delta == pytest.approx(one_delta, abs=2e-5)


def test_batched_padding_content_and_chunking_change_nothing(loaded):
    """The attention mask hides padding: other ids there (any token) give the same scores; and
    however the rows are cut into passes (one row, 7 rows splitting a text's nodes, a token
    budget, everything at once), the sums are the same."""
    from nlptool.attribute import ig_scores_batched

    ids, mask, ref = _encoded(loaded, BATCH_TEXTS[:5])
    tgt = torch.tensor([1, 0, 1, 1, 0])
    kw = {"explain": "probability", "steps": 10, "method": "gausslegendre"}
    want, f_x, f_ref = ig_scores_batched(loaded.model, ids, mask, ref, tgt, **kw)
    junk = ids.clone()
    junk[mask == 0] = 7  # a real character where padding was: the same for input and baseline
    got, g_x, g_ref = ig_scores_batched(loaded.model, junk, mask, torch.where(mask == 0, junk, ref), tgt, **kw)
    assert torch.allclose(got, want, atol=1e-6 * float(want.abs().max()))
    assert torch.equal(g_x, f_x) or torch.allclose(g_x, f_x, atol=1e-7)
    for extra in ({"internal_batch_size": 1}, {"internal_batch_size": 7}, {"tokens_per_forward": 50},
                  {"tokens_per_forward": 10**9}):
        got, g_x, g_ref = ig_scores_batched(loaded.model, ids, mask, ref, tgt, **kw, **extra)
        assert torch.allclose(got, want, atol=1e-6 * float(want.abs().max())), extra
        assert torch.allclose(g_ref, f_ref, atol=1e-7), extra


def test_batched_several_targets_in_one_pass(loaded):
    """A ``(batch, n_targets)`` target shares the forward passes: each column equals its own run."""
    from nlptool.attribute import ig_scores_batched

    ids, mask, ref = _encoded(loaded, BATCH_TEXTS[:4])
    both = torch.tensor([[0, 1]] * 4)
    scores, f_x, f_ref = ig_scores_batched(loaded.model, ids, mask, ref, both, steps=8)
    assert scores.shape == (4, 2, ids.shape[1]) and f_x.shape == (4, 2)
    for k in (0, 1):
        one, one_x, one_ref = ig_scores_batched(loaded.model, ids, mask, ref, both[:, k], steps=8)
        assert torch.allclose(scores[:, k], one, atol=1e-9)
        assert torch.equal(f_x[:, k], one_x) and torch.equal(f_ref[:, k], one_ref)
    # two labels: probabilities sum to 1, so the two columns are opposite
    assert torch.allclose(scores[:, 0], -scores[:, 1], atol=1e-5)


def test_cls_forward_equals_the_models_logits(loaded, tiny_cls_dir):
    """The [CLS]-only last layer gives the logits of the model's own forward, for nlptool's plain
    BERT and for transformers' (padded batch); other models get None."""
    from transformers import BertForSequenceClassification

    from nlptool.attribute import cls_forward

    ids, mask, _ = _encoded(loaded, BATCH_TEXTS)
    hf = BertForSequenceClassification.from_pretrained(tiny_cls_dir).eval()
    for model in (loaded.model, hf):
        fast = cls_forward(model)
        assert fast is not None, type(model)
        with torch.no_grad():
            want = model(input_ids=ids, attention_mask=mask).logits
            got = fast(ids, mask)
        assert got.shape == want.shape == (len(BATCH_TEXTS), 2)
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (got - want).abs().max()
    assert cls_forward(_Linear()) is None
    hf.train()
    assert cls_forward(hf) is None  # dropout on: not the same function


def test_batched_falls_back_when_the_cls_shortcut_is_wrong(loaded):
    """A model that looks like a BERT classifier but reads every position (mean pooling): the check
    on the real inputs rejects the [CLS]-only forward and the scores still equal captum's."""
    from nlptool.attribute import cls_forward, ig_scores, ig_scores_batched

    base = type(loaded.model)

    class BertForSequenceClassification(base):  # the name cls_forward looks for
        def forward(self, input_ids=None, attention_mask=None, **kw):
            h = self.bert(input_ids, attention_mask).last_hidden_state
            pooled = (h * attention_mask[..., None]).sum(1) / attention_mask.sum(1, keepdim=True)
            return self.classifier(pooled)

    odd = BertForSequenceClassification(loaded.model.config)
    odd.load_state_dict(loaded.model.state_dict())
    odd.eval()
    assert cls_forward(odd) is not None  # it is offered, and must be refused by the check
    ids, mask, ref = _encoded(loaded, BATCH_TEXTS[:4])
    tgt = torch.tensor([0, 1, 1, 0])
    got, g_x, g_ref = ig_scores_batched(odd, ids, mask, ref, tgt, steps=8)
    want, w_x, w_ref = ig_scores(odd, ids, mask, ref, tgt, steps=8)
    assert torch.allclose(got, want, atol=1e-7 + 1e-5 * float(want.abs().max()))
    assert torch.allclose(got.sum(-1), g_x - g_ref, atol=1e-2 * float((g_x - g_ref).abs().max()))
    # and the shortcut changes nothing for the real classifier
    fast, _, _ = ig_scores_batched(loaded.model, ids, mask, ref, tgt, steps=8)
    slow, _, _ = ig_scores_batched(loaded.model, ids, mask, ref, tgt, steps=8, use_cls_forward=False)
    assert torch.allclose(fast, slow, atol=1e-7 + 1e-5 * float(slow.abs().max()))


@pytest.mark.parametrize("options", [{}, {"target": "all", "granularity": "word"},
                                     {"method": "riemann_trapezoid", "explain": "logit", "steps": 5, "baseline": "mask"}])
def test_attribute_texts_batched_equals_captum(loaded, options):
    """The records of the batched path equal those of captum's (``batched=False``) to float rounding."""
    from nlptool.attribute import attribute_texts

    texts = BATCH_TEXTS + ["好" * 100 + "差"]  # the last one is truncated to the window
    opts = {"steps": 12, **options}
    fast = attribute_texts(loaded, texts, batch_size=3, **opts)
    ref = attribute_texts(loaded, texts, batch_size=3, batched=False, **opts)
    for a, b in zip(fast, ref):
        parts_a, parts_b = (a["attributions"], b["attributions"]) if "attributions" in a else ([a], [b])
        assert {k: v for k, v in a.items() if k not in ("attributions", "scores", "delta", "delta_ratio", "f_x",
                                                         "f_baseline", "target_probability")} == \
               {k: v for k, v in b.items() if k not in ("attributions", "scores", "delta", "delta_ratio", "f_x",
                                                         "f_baseline", "target_probability")}
        for pa, pb in zip(parts_a, parts_b):
            assert pa["target"] == pb["target"]
            scale = max(abs(v) for v in pb["scores"])
            assert pa["scores"] == pytest.approx(pb["scores"], abs=2e-7 + 1e-5 * scale)
            # F of the random tiny model differs in the 6th digit between batch shapes
            assert pa["f_x"] == pytest.approx(pb["f_x"], abs=1e-5)
            assert pa["f_baseline"] == pytest.approx(pb["f_baseline"], abs=1e-5)
            assert pa["delta"] == pytest.approx(pb["delta"], abs=2e-5)


@pytest.mark.parametrize("kind", ["pad", "mask", "unk"])
def test_baselines_keep_special_tokens(loaded, kind):
    from nlptool.attribute import baseline_ids

    tok = loaded.tokenizer
    enc = tok(TEXTS[:2], padding=True, return_special_tokens_mask=True, return_tensors="pt")
    special = enc["special_tokens_mask"].bool() | (enc["attention_mask"] == 0)
    rid = getattr(tok, f"{kind}_token_id")
    ref = baseline_ids(enc["input_ids"], special, rid)
    for row, text in enumerate(TEXTS[:2]):
        n = int(enc["attention_mask"][row].sum())
        got = ref[row].tolist()
        assert got[0] == tok.cls_token_id
        assert got[n - 1] == tok.sep_token_id
        assert got[1 : n - 1] == [rid] * (n - 2)
        assert got[n:] == [tok.pad_token_id] * (len(got) - n)


def test_offsets_cover_the_text(loaded):
    from nlptool.attribute import attribute_texts

    res = attribute_texts(loaded, TEXTS, steps=4)
    unk = loaded.tokenizer.unk_token
    for text, r in zip(TEXTS, res):
        assert len(r["tokens"]) == len(r["scores"])
        covered = [0] * len(text)
        prev_end = 0
        for t in r["tokens"]:
            s, e = t["start"], t["end"]
            assert prev_end <= s < e <= len(text)
            prev_end = e
            for i in range(s, e):
                covered[i] += 1
            if t["token"] != unk:
                assert text[s:e].lower() == t["token"].removeprefix("##")
        for ch, c in zip(text, covered):
            assert c == (0 if ch.isspace() else 1), (text, ch)


def test_target_by_name_and_index(loaded):
    from nlptool.attribute import attribute_texts
    from nlptool.errors import UsageError

    a = attribute_texts(loaded, TEXTS[:2], target="neg", steps=8)
    b = attribute_texts(loaded, TEXTS[:2], target=0, steps=8)
    c = attribute_texts(loaded, TEXTS[:2], target="pos", steps=8)
    assert [x["scores"] for x in a] == [x["scores"] for x in b]
    assert all(x["target"] == "neg" for x in a)
    # probabilities of two labels sum to 1, so the two targets' scores are opposite
    for x, y in zip(a, c):
        assert x["scores"] == pytest.approx([-v for v in y["scores"]], abs=1e-5)
    with pytest.raises(UsageError):
        attribute_texts(loaded, TEXTS[:1], target="nope")
    with pytest.raises(UsageError):
        attribute_texts(loaded, TEXTS[:1], target=5)


def test_long_text_is_truncated_with_a_warning(loaded):
    from nlptool.attribute import attribute_texts

    text = "好" * 100 + "差"
    r = attribute_texts(loaded, [text], steps=8)[0]
    assert r["truncated"] is True
    assert "truncated" in r["warning"]
    assert len(r["tokens"]) == 62  # window 64 minus [CLS] and [SEP]
    assert r["tokens"][-1]["end"] == 62
    short = attribute_texts(loaded, ["好" * 62], steps=8)[0]
    assert "truncated" not in short


# ----------------------------------------------------------------------------- CLI


def _run(args, input=None):
    from typer.testing import CliRunner

    from nlptool.cli import app

    return CliRunner().invoke(app, args, input=input)


def _records(output):
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_cli_file_stdin_jsonl_parity(tiny_cls_dir, tmp_path):
    texts = TEXTS[:3]
    f = tmp_path / "in.txt"
    f.write_text("\n".join(texts) + "\n", encoding="utf-8")
    j = tmp_path / "in.jsonl"
    j.write_text("".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(texts)),
                 encoding="utf-8")
    common = ["attribute", "-m", tiny_cls_dir, "--steps", "16", "--quiet", "--device", "cpu"]
    r1 = _run(common + [str(f)])
    r2 = _run(common, input=f.read_text(encoding="utf-8"))
    r3 = _run(common + [str(j)])
    assert r1.exit_code == 0, r1.output
    a, b, c = _records(r1.stdout), _records(r2.stdout), _records(r3.stdout)
    assert len(a) == len(b) == len(c) == 3
    assert a == b
    for x, y, i in zip(a, c, range(3)):
        assert y["id"] == i
        y.pop("id")
        assert x == y
    assert [x["text"] for x in a] == texts


def test_cli_truncation_warning_and_bad_record(tiny_cls_dir, tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text(json.dumps({"text": "好" * 200}) + "\n" + '{"other": 1}\n' + json.dumps({"text": "差"}) + "\n",
                 encoding="utf-8")
    r = _run(["attribute", "-m", tiny_cls_dir, "--steps", "8", "--device", "cpu", str(f)])
    assert r.exit_code == 0, r.output
    recs = _records(r.stdout)
    assert len(recs) == 3
    assert recs[0]["truncated"] and "truncated" in recs[0]["warning"]
    assert "error" in recs[1] and recs[1]["line"] == 2
    assert "error" not in recs[2]


def test_cli_bad_options(tiny_cls_dir):
    r = _run(["attribute", "-m", tiny_cls_dir, "--method", "simpson"], input="好\n")
    assert r.exit_code == 2
    r = _run(["attribute", "-m", tiny_cls_dir, "--target", "nope", "--device", "cpu"], input="好\n")
    assert r.exit_code == 2


def test_cli_html_and_terminal(tiny_cls_dir, tmp_path):
    page = tmp_path / "h.html"
    r = _run(["attribute", "-m", tiny_cls_dir, "--steps", "8", "--device", "cpu", "--html", str(page), "-q"],
             input="这家酒店很好\n<b>&amp;</b>\n")
    assert r.exit_code == 0, r.output
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html.lower() and "http" not in html and "@font-face" not in html
    n_tokens = sum(len(x["tokens"]) for x in _records(r.stdout))
    assert n_tokens >= 6 and html.count("class='t'") == n_tokens  # one shaded span per token
    import html as html_mod
    import re

    shown = [html_mod.unescape(re.sub(r"<[^>]*>", "", d)) for d in re.findall(r"<div class='txt'>(.*?)</div>", html)]
    assert shown == ["这家酒店很好", "<b>&amp;</b>"]  # the texts, escaped, come back exactly
    assert "delta" in html
    r = _run(["attribute", "-m", tiny_cls_dir, "--steps", "8", "--device", "cpu", "--format", "terminal", "-q"],
             input="这家酒店很好\n")
    assert r.exit_code == 0, r.output
    plain = re.sub(r"\[[+-]\d\.\d{3}\]", "", r.stdout)  # no colours when piped: each unit keeps its score
    assert "这家酒店很好" in plain and re.search(r"好\[[+-]\d\.\d{3}\]", r.stdout)


def test_png_renders_cjk(tiny_cls_dir, tmp_path):
    pytest.importorskip("matplotlib")
    from nlptool.attribute import find_cjk_font

    font = find_cjk_font()
    if font is None:
        pytest.skip("no CJK font installed (apt-get install fonts-noto-cjk or fonts-wqy-microhei); PNG rendering not tested")
    from matplotlib.ft2font import FT2Font

    assert FT2Font(font).get_char_index(ord("好")) != 0  # the font really has the glyph
    png = tmp_path / "h.png"
    r = _run(["attribute", "-m", tiny_cls_dir, "--steps", "8", "--device", "cpu", "--png", str(png), "-q"],
             input="这家酒店很好\n房间太小\n")
    assert r.exit_code == 0, r.output
    import matplotlib.image as mpimg

    img = mpimg.imread(str(png))
    rgb = img[..., :3]
    assert (rgb.min(axis=-1) < 0.2).sum() > 100  # dark glyph pixels
    greenish = (rgb[..., 1] > rgb[..., 0] + 0.1).sum()
    reddish = (rgb[..., 0] > rgb[..., 1] + 0.1).sum()
    assert greenish + reddish > 100  # shaded token boxes


# ----------------------------------------------------------------------------- untrained heads


def test_mlm_checkpoint_is_refused():
    """The built-in zh-bert-mini is a masked LM: as a classifier its head would be random."""
    from nlptool.errors import ModelError
    from nlptool.models import load_model

    with pytest.raises(ModelError, match=r"untrained head.*classifier\.weight.*nlptool train classifier"):
        load_model("zh-bert-mini", kind="sequence-classification", device="cpu")
    r = _run(["attribute", "-m", "zh-bert-mini", "--device", "cpu"], input="这家酒店服务太差了\n")
    assert r.exit_code == 1
    assert r.stdout == ""
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "zh-bert-mini" in err and "zh-sentiment-mini" in err


def test_headless_hub_style_directory_is_refused(tiny_cls_dir, tmp_path):
    """A classifier directory whose safetensors lost the head: refused; with the head: loads."""
    from safetensors.torch import load_file, save_file

    from nlptool.errors import ModelError
    from nlptool.models import load_model

    out = tmp_path / "headless"
    shutil.copytree(tiny_cls_dir, out)
    weights = load_file(str(out / "model.safetensors"))
    assert {"classifier.weight", "classifier.bias"} <= set(weights)
    save_file({k: v for k, v in weights.items() if not k.startswith("classifier.")}, str(out / "model.safetensors"),
              metadata={"format": "pt"})
    with pytest.raises(ModelError, match="classifier.bias, classifier.weight"):
        load_model(str(out), kind="sequence-classification", device="cpu")
    r = _run(["attribute", "-m", str(out), "--device", "cpu"], input="好\n")
    assert r.exit_code == 1 and len(r.stderr.strip().splitlines()) == 1
    # training starts from such a model on purpose
    assert load_model(str(out), kind="sequence-classification", device="cpu", allow_new_head=True).model is not None
    assert load_model(tiny_cls_dir, kind="sequence-classification", device="cpu").model is not None


# ----------------------------------------------------------------------------- words and all labels


def test_word_granularity_sums_token_scores(loaded):
    """Words partition the tokens (jieba words for Chinese, the tokenizer's words otherwise) and
    each word's score is the sum of its tokens' scores, so completeness is unchanged."""
    import jieba

    from nlptool.attribute import attribute_texts

    texts = TEXTS + ["hello world, nice room"]
    tok_res = attribute_texts(loaded, texts, steps=16, target="pos")
    word_res = attribute_texts(loaded, texts, steps=16, target="pos", granularity="word")
    for text, t, w in zip(texts, tok_res, word_res):
        assert w["granularity"] == "word" and "tokens" not in w
        assert math.fsum(w["scores"]) == pytest.approx(math.fsum(t["scores"]), abs=1e-9)
        assert w["delta"] == pytest.approx(t["delta"], abs=1e-9)
        # brute force: assign each token to the word span holding its first character
        spans = [(a, b) for _, a, b in jieba.tokenize(text)] if any("\u4e00" <= c <= "\u9fff" for c in text) else \
            [(m.start(), m.end()) for m in __import__("re").finditer(r"\w+|[^\w\s]", text)]
        expect: dict[tuple[int, int], float] = {}
        for tk, s in zip(t["tokens"], t["scores"]):
            span = next(sp for sp in spans if sp[0] <= tk["start"] < sp[1])
            expect[span] = expect.get(span, 0.0) + s
        got = {}
        for wd, s in zip(w["words"], w["scores"]):
            span = next(sp for sp in spans if sp[0] <= wd["start"] < sp[1])
            assert wd["word"] == text[wd["start"]:wd["end"]]
            got[span] = got.get(span, 0.0) + s
        assert got.keys() == expect.keys()
        for k in got:
            assert got[k] == pytest.approx(expect[k], abs=1e-9)
    assert [x["word"] for x in word_res[-1]["words"]] == ["hello", "world", ",", "nice", "room"]


def test_target_all_explains_every_label(loaded):
    from nlptool.attribute import attribute_texts

    both = attribute_texts(loaded, TEXTS[:2], steps=12, target="all", granularity="word")
    for k, name in enumerate(["neg", "pos"]):
        one = attribute_texts(loaded, TEXTS[:2], steps=12, target=name, granularity="word")
        for a, b in zip(both, one):
            entry = a["attributions"][k]
            assert entry["target"] == name
            assert entry["scores"] == pytest.approx(b["scores"], abs=1e-9)
            assert entry["delta"] == pytest.approx(b["delta"], abs=1e-9)
            assert a["words"] == b["words"] and a["label"] == b["label"]
    r = _run(["attribute", "-m", "x", "--target", "all"], input="")  # the model is loaded after the options check
    assert r.exit_code != 0


def test_no_flag_declared_twice():
    """Walk the Click commands built from the Typer app: no long or short flag twice in one command."""
    import typer.main

    from nlptool.cli import app

    root = typer.main.get_command(app)
    for path in (["attribute"], ["train", "classifier"]):
        cmd = root
        for p in path:
            cmd = cmd.commands[p]
        seen: list[str] = []
        for prm in cmd.params:
            seen += [o for o in prm.opts + prm.secondary_opts if o.startswith("-")]
        assert len(seen) == len(set(seen)), (path, sorted(o for o in seen if seen.count(o) > 1))
    r = _run(["attribute", "--explain", "output"], input="好\n")
    assert r.exit_code == 2 and "probability" in r.output and "logit" in r.output
    r = _run(["attribute", "--granularity", "char"], input="好\n")
    assert r.exit_code == 2


# ----------------------------------------------------------------------------- the built-in classifier


def _builtin_or_skip():
    from nlptool.models import BUILTIN_MODELS, builtin_model_path
    from nlptool.errors import ModelError

    assert "zh-sentiment-mini" in BUILTIN_MODELS
    try:
        return builtin_model_path("zh-sentiment-mini")
    except ModelError as exc:
        print(f"SKIP: {exc}")
        pytest.skip(str(exc))


@pytest.mark.parametrize("granularity", ["token", "word"])
def test_default_model_explains_a_negative_review(granularity):
    """`echo 这家酒店服务太差了 | nlptool attribute`: the built-in classifier, label negative, the
    largest positive score (pushing towards 'negative') on the 差 token / the word holding it."""
    _builtin_or_skip()
    args = ["attribute", "--device", "cpu", "-q"] + (["--granularity", "word"] if granularity == "word" else [])
    r = _run(args, input="这家酒店服务太差了\n")
    assert r.exit_code == 0, r.output
    (rec,) = _records(r.stdout)
    assert rec["label"] == "negative" and rec["target"] == "negative"
    assert rec["probability"] > 0.8
    units = rec["words"] if granularity == "word" else rec["tokens"]
    key = "word" if granularity == "word" else "token"
    top = max(range(len(units)), key=lambda i: rec["scores"][i])
    assert "差" in units[top][key]  # the negative word (token) carries the largest score
    bad = next(i for i in range(len(units)) if "差" in units[i][key])
    assert rec["scores"][bad] > 0.05 * (rec["f_x"] - rec["f_baseline"])
    assert rec["delta_ratio"] < 0.05 and "warning" not in rec
    if granularity == "word":
        assert "太差" in [w["word"] for w in units] or "差" in [w["word"] for w in units]


def test_builtin_classifier_separates_reviews():
    """Hand-written reviews of domains outside the training data (restaurants, films, courier)."""
    _builtin_or_skip()
    import torch

    from nlptool.models import load_model

    pos = ["这家餐厅的菜很好吃，服务员也很热情", "电影非常精彩，演员演技很棒", "快递很快，包装完好，非常满意"]
    neg = ["菜又咸又难吃，再也不来了", "剧情拖沓无聊，浪费时间", "快递太慢了，东西还坏了，很失望"]
    lm = load_model("zh-sentiment-mini", kind="sequence-classification", device="cpu")
    assert lm.model.config.id2label == {0: "negative", 1: "positive"}
    with torch.no_grad():
        enc = lm.tokenizer(pos + neg, padding=True, return_tensors="pt")
        pred = lm.model(**enc).logits.argmax(-1).tolist()
    assert sum(p == 1 for p in pred[:3]) + sum(p == 0 for p in pred[3:]) >= 5


# ----------------------------------------------------------------------------- a real browser


def test_html_renders_chinese_in_headless_chromium(tiny_cls_dir, tmp_path):
    """Screenshot the page in headless Chromium: the Chinese text is drawn (dark glyph pixels in the
    text row, not tofu-free blank), and the shaded token boxes are there."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        print("SKIP: chromium is not installed (apt-get install chromium fonts-noto-cjk)")
        pytest.skip("chromium is not installed (apt-get install chromium fonts-noto-cjk)")
    pytest.importorskip("matplotlib")
    from nlptool.attribute import find_cjk_font

    if find_cjk_font() is None:
        print("SKIP: no CJK font installed (apt-get install fonts-noto-cjk)")
        pytest.skip("no CJK font installed (apt-get install fonts-noto-cjk)")
    import subprocess

    page = tmp_path / "h.html"
    r = _run(["attribute", "-m", tiny_cls_dir, "--steps", "8", "--device", "cpu", "--html", str(page), "-q"],
             input="这家酒店服务太差了，房间很好\n")
    assert r.exit_code == 0, r.output
    shot = tmp_path / "shot.png"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--window-size=900,500",
           f"--screenshot={shot}", page.as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120)
    assert shot.exists(), "chromium wrote no screenshot"
    import matplotlib.image as mpimg

    rgb = mpimg.imread(str(shot))[..., :3]
    dark = rgb.max(axis=-1) < 0.35
    assert dark.sum() > 500  # text drawn, not a blank page
    shaded = (abs(rgb[..., 0] - rgb[..., 1]) > 0.1).sum()
    assert shaded > 200  # red/green token boxes
    # the CJK font really draws these glyphs (tofu boxes would be the same for every character):
    # render two different characters alone and compare
    pages = []
    for ch in "差好":
        p = tmp_path / f"{ord(ch)}.html"
        p.write_text(f"<html><meta charset='utf-8'><body style='margin:0;font-family:\"Noto Sans CJK SC\",sans-serif;"
                     f"font-size:80px'>{ch}</body></html>", encoding="utf-8")
        s = tmp_path / f"{ord(ch)}.png"
        subprocess.run([*cmd[:-2], f"--screenshot={s}", p.as_uri()], capture_output=True, timeout=120)
        pages.append(mpimg.imread(str(s))[..., :3].max(axis=-1) < 0.5)
    assert pages[0].sum() > 100 and pages[1].sum() > 100
    assert (pages[0] != pages[1]).sum() > 100


# ----------------------------------------------------------------------------- the command object


def test_attributor_rules_are_the_parsers():
    """The option bounds live once in nlptool.attribute.command; the CLI's parser declares the same."""
    import typer.main

    from nlptool.attribute.command import BOUNDS, Attributor
    from nlptool.cli import app
    from nlptool.errors import UsageError

    params = {p.name: p for p in typer.main.get_command(app).commands["attribute"].params}
    for name, (lo, hi) in BOUNDS.items():
        assert (params[name].min, params[name].max) == (lo, hi), name
        with pytest.raises(UsageError, match="--" + name.replace("_", "-")):
            Attributor(**{name: lo - 1})
    for name, bad in (("method", "simpson"), ("baseline", "zero"), ("explain", "output"), ("granularity", "char")):
        with pytest.raises(UsageError, match=f"--{name} {bad}"):
            Attributor(**{name: bad})


def test_attributor_checks_the_target_at_load_and_writes_side_outputs(tiny_cls_dir, tmp_path):
    from nlptool.attribute import Attributor, render_html
    from nlptool.errors import UsageError

    with pytest.raises(UsageError, match="not a label"):
        Attributor(model=tiny_cls_dir, target="nope", device="cpu").state()  # before any record
    page = tmp_path / "h.html"
    a = Attributor(model=tiny_cls_dir, steps=8, device="cpu", html=str(page), tty=False)
    out = a(TEXTS[:2])
    assert not page.exists()
    lines = list(a.finish())
    assert lines[-1] == f"heatmap page: {page}"
    assert page.read_text(encoding="utf-8") == render_html(list(zip(TEXTS[:2], [
        {k: v for k, v in o.items() if k != "text"} for o in out])))
    list(a.finish())  # what was gathered went into the first page: a new run starts empty
    assert page.read_text(encoding="utf-8") == render_html([])
    terminal = a.render({"text": TEXTS[0], **out[0]}, "terminal")
    assert TEXTS[0] in re.sub(r"\[[+-]\d\.\d{3}\]", "", terminal) and "\x1b[" not in terminal and not terminal.endswith("\n")


def test_png_font_is_refused_before_any_model_loads(tmp_path, monkeypatch):
    """--png with a missing or non-font --font, or no CJK font installed: exit 2 at parse time,
    naming --font, and no output written."""
    from typer.testing import CliRunner

    import nlptool.attribute.render as render
    from nlptool.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.txt").write_text("这家酒店服务太差了\n", encoding="utf-8")
    for font, why in (("nothere.ttf", "no such file"), ("in.txt", "not a font file")):
        r = CliRunner().invoke(app, ["attribute", "in.txt", "--png", "h.png", "--font", font, "-o", "s.jsonl"])
        assert r.exit_code == 2 and "--font" in r.stderr and why in r.stderr, r.output
    monkeypatch.setattr(render, "find_cjk_font", lambda: None)
    r = CliRunner().invoke(app, ["attribute", "in.txt", "--png", "h.png", "--html", "h.html", "-o", "s.jsonl"])
    assert r.exit_code == 2 and "fonts-noto-cjk" in r.stderr and "--font" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


def test_side_outputs_and_the_main_output_are_written_all_or_none(tmp_path, monkeypatch):
    """A failure while drawing the PNG leaves neither the HTML page nor the -o file."""
    from typer.testing import CliRunner

    import nlptool.attribute.render as render
    from nlptool.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.txt").write_text("这家酒店服务太差了\n", encoding="utf-8")
    monkeypatch.setattr(render, "check_png_font", lambda font: "any.ttf")

    def broken(*a, **k):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(render, "render_png", broken)
    r = CliRunner().invoke(app, ["attribute", "in.txt", "--png", "h.png", "--html", "h.html", "-o", "s.jsonl", "-q"])
    assert r.exit_code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


def test_terminal_format_without_colours_still_shows_each_score(tmp_path):
    """--format terminal into a pipe or with NO_COLOR: the header line and every unit with its
    score in brackets (the shading would be lost), matching the JSON scores."""
    import json
    import os
    import subprocess
    import sys

    (tmp_path / "in.txt").write_text("服务太差了\n", encoding="utf-8")
    env = dict(os.environ, NO_COLOR="1")
    term = subprocess.run([sys.executable, "-m", "nlptool", "attribute", "in.txt", "--format", "terminal", "-q"],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    js = subprocess.run([sys.executable, "-m", "nlptool", "attribute", "in.txt", "-q"],
                        capture_output=True, text=True, cwd=tmp_path, env=env)
    assert term.returncode == 0 and js.returncode == 0
    header, body = term.stdout.splitlines()
    rec = json.loads(js.stdout)
    assert header.startswith(f"{rec['label']} p=")
    assert body == "".join(f"{t['token']}[{s:+.3f}]" for t, s in zip(rec["tokens"], rec["scores"]))


def test_closed_stdout_still_writes_the_html_page(tiny_cls_dir, tmp_path):
    """`attribute --html h.html | head -1`: every record is still attributed and the page written
    whole (exit 0, as any `| head`), instead of stopping at the closed pipe without a page."""
    import os
    import subprocess
    import sys

    texts = [f"这家酒店很好，第{i}次入住，服务也不错" * 3 for i in range(120)]
    path = tmp_path / "in.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    page = tmp_path / "h.html"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.Popen([sys.executable, "-m", "nlptool", "attribute", str(path), "--html", str(page), "-m",
                          tiny_cls_dir, "--steps", "2", "--device", "cpu", "-q"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                         env=dict(os.environ, PYTHONPATH=repo))
    first = p.stdout.readline()
    p.stdout.close()  # `| head -1`
    err = p.stderr.read()
    assert p.wait(timeout=300) == 0, err
    assert json.loads(first)["text"] == texts[0] and err == b""
    html = page.read_text(encoding="utf-8")
    assert html.count("class='rec'") == len(texts)  # every record is on the page

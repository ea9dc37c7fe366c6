"""train mlm: corpus recipe, character vocabulary, tokenizer sanity, a real (tiny) training run."""

from __future__ import annotations

import json

import pytest

from nlptool.mlm import SPECIAL_TOKENS, build_char_vocab, chunk_text, make_tokenizer, strip_pos_tags, train_mlm


def test_strip_pos_tags():
    assert strip_pos_tags("迈向/v  充满/v  希望/n  的/u  新/a  世纪/n  ——/w  １９９８年/t") == "迈向充满希望的新世纪——１９９８年"
    assert strip_pos_tags("a/b/n") == "a/b"


def test_chunks_keep_every_character():
    lines = ["第一句。第二句很长很长很长！第三句？" * 5, "短"]
    chunks = list(chunk_text(lines, max_chars=20))
    assert all(len(c) <= 20 for c in chunks)
    assert "".join(chunks) == "".join(lines)


def test_tokenizer_maps_characters_to_their_ids(tmp_path):
    vocab = build_char_vocab(["中国人民abc中国", "人民abc"], min_count=1)
    assert vocab[: len(SPECIAL_TOKENS)] == SPECIAL_TOKENS
    assert "##b" in vocab and "##中" not in vocab
    tok = make_tokenizer(vocab, tmp_path)
    assert len(tok) == len(vocab)  # transformers 5 can silently build a 5-token vocabulary
    ids = tok.encode("中国abc", add_special_tokens=False)
    assert ids == [vocab.index("中"), vocab.index("国"), vocab.index("a"), vocab.index("##b"), vocab.index("##c")]
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again.encode("中国abc", add_special_tokens=False) == ids


def test_builtin_tokenizer_is_character_level():
    from nlptool.models import builtin_model_path

    try:
        path = builtin_model_path("zh-bert-mini")
    except Exception as exc:  # pragma: no cover
        pytest.fail(f"built-in model missing: {exc}")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    cfg = json.loads((path / "config.json").read_text())
    assert len(tok) == cfg["vocab_size"] > 3000
    ids = tok.encode("中华人民共和国", add_special_tokens=False)
    assert len(ids) == 7 and tok.unk_token_id not in ids


@pytest.mark.slow
def test_tiny_training_run_learns(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("我们的国家很美丽。\n今天天气很好。\n" * 200, encoding="utf-8")
    m = train_mlm([corpus], tmp_path / "m", layers=1, hidden=32, heads=2, batch_size=16, max_steps=60,
                  learning_rate=3e-3, device="cpu")
    assert m["steps"] == 60
    first, last = m["history"][0]["loss"], m["history"][-1]["loss"]
    assert last < first - 1.0  # a 14-character vocabulary is learned quickly
    from nlptool.models import load_model

    loaded = load_model(str(tmp_path / "m"), device="cpu")
    assert loaded.model.config.num_hidden_layers == 1
    assert (tmp_path / "m" / "model.safetensors").exists()


# ---------------------------------------------------------------------------- validation, encoding, eval loss


def test_chunk_text_refuses_nonpositive_length():
    from nlptool.errors import UsageError

    for bad in (0, -3):
        with pytest.raises(UsageError):
            list(chunk_text(["任何文本"], max_chars=bad))


@pytest.mark.parametrize("kw", [
    {"layers": 0}, {"max_steps": 0}, {"batch_size": 0}, {"hidden": 30, "heads": 4}, {"learning_rate": float("nan")},
    {"learning_rate": -1.0}, {"max_chars": 0}, {"max_chars": 600}, {"max_minutes": 0.0},
])
def test_train_mlm_refuses_bad_settings_before_writing(tmp_path, kw):
    from nlptool.errors import UsageError

    corpus = tmp_path / "c.txt"
    corpus.write_text("我们的国家很美丽。\n", encoding="utf-8")
    with pytest.raises(UsageError):
        train_mlm([corpus], tmp_path / "m", device="cpu", **kw)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("args", [
    ["--max-chars", "0"], ["--layers", "0"], ["--max-steps", "0"], ["--batch-size", "0"],
    ["--hidden", "30", "--heads", "4"], ["--learning-rate", "nan"], ["--min-count", "0"],
])
def test_cli_bad_settings_exit_2_with_one_line(tmp_path, args):
    from typer.testing import CliRunner

    from nlptool.cli import app

    corpus = tmp_path / "c.txt"
    corpus.write_text("我们的国家很美丽。\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["train", "mlm", str(corpus), "--out", str(tmp_path / "m"), "--device", "cpu", *args])
    assert res.exit_code == 2, res.output
    assert not (tmp_path / "m").exists()


def test_failed_run_leaves_no_output_and_keeps_user_files(tmp_path):
    from nlptool.errors import UsageError

    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(UsageError):
        train_mlm([empty], tmp_path / "new", device="cpu")
    assert not (tmp_path / "new").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep", encoding="utf-8")
    with pytest.raises(UsageError):
        train_mlm([empty], mine, device="cpu")
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging dir left


def test_char_encoder_gives_the_tokenizers_ids(tmp_path):
    from nlptool.mlm import CharEncoder

    texts = ["中华人民共和国成立了。", "Hello World 2024年，ABC-def！", "naïve café", "超长" * 100,
             "tab\there", "x" * 120, "未知字𠀀与ｆｕｌｌ", "a1b2 c3", "句号。。", "混合English单词和123数字"]
    vocab = build_char_vocab(texts, min_count=1)
    vocab.remove("##e")  # a word character without its continuation: the tokenizer makes the word [UNK]
    tok = make_tokenizer(vocab, tmp_path)
    expected = tok(texts, truncation=True, max_length=64)["input_ids"]
    assert CharEncoder(tok)(texts, 64) == [list(x) for x in expected]


def test_fixed_masks_are_reproducible_and_follow_80_10_10():
    import torch

    from nlptool.mlm import fixed_masks

    ids = torch.randint(5, 1000, (400, 130))
    ids[:, 0], ids[:, -1] = 2, 3
    a, la = fixed_masks(ids, vocab_size=1000, mask_id=4, special_ids={0, 2, 3}, seed=7)
    b, lb = fixed_masks(ids, vocab_size=1000, mask_id=4, special_ids={0, 2, 3}, seed=7)
    assert torch.equal(a, b) and torch.equal(la, lb)
    sel = la != -100
    assert not sel[:, 0].any() and not sel[:, -1].any()
    assert abs(sel.float().mean().item() * 130 / 128 - 0.15) < 0.01
    masked = (a == 4) & sel
    kept = (a == ids) & sel
    assert abs(masked.sum().item() / sel.sum().item() - 0.8) < 0.02
    assert abs(kept.sum().item() / sel.sum().item() - 0.1) < 0.02 + 0.001  # random draws may hit the same id
    assert torch.equal(a[~sel], ids[~sel])
    c, _ = fixed_masks(ids, vocab_size=1000, mask_id=4, special_ids={0, 2, 3}, seed=8)
    assert not torch.equal(a, c)


def test_heldout_loss_equals_the_models_own_loss(tiny_bert_dir):
    """heldout_mlm_loss == BertForMaskedLM's own cross-entropy on the same masked batch."""
    import torch
    from transformers import AutoTokenizer, BertForMaskedLM

    from nlptool.mlm import CharEncoder, fixed_masks, heldout_mlm_loss

    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    model = BertForMaskedLM.from_pretrained(tiny_bert_dir).eval()
    texts = ["我们的国家很美丽。今天天气很好。", "中国人民", "你好世界"]
    got = heldout_mlm_loss(model, tok, texts, max_chars=16, batch_size=2, seed=3)
    chunks = list(chunk_text(texts, max_chars=16))
    enc = CharEncoder(tok)(chunks, 18)
    ids = torch.full((len(enc), 18), tok.pad_token_id)
    for i, row in enumerate(enc):
        ids[i, : len(row)] = torch.tensor(row)
    masked, labels = fixed_masks(ids, vocab_size=model.config.vocab_size, mask_id=tok.mask_token_id,
                                 special_ids={tok.cls_token_id, tok.sep_token_id, tok.pad_token_id}, seed=3)
    with torch.no_grad():
        ref = model(input_ids=masked, attention_mask=(ids != tok.pad_token_id).long(), labels=labels).loss.item()
    assert got["eval_masked_tokens"] == int((labels != -100).sum())
    assert got["eval_loss"] == pytest.approx(ref, rel=1e-5)
    again = heldout_mlm_loss(model, tok, texts, max_chars=16, batch_size=3, seed=3)
    assert again["eval_loss"] == pytest.approx(got["eval_loss"], rel=1e-6)


@pytest.mark.slow
def test_eval_loss_reported_and_resume_continues(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("我们的国家很美丽。\n今天天气很好。\n" * 100, encoding="utf-8")
    held = tmp_path / "h.txt"
    held.write_text("今天我们的国家天气很好。\n", encoding="utf-8")
    kw = dict(layers=1, hidden=32, heads=2, batch_size=8, learning_rate=3e-3, device="cpu", eval_files=[held])
    m1 = train_mlm([corpus], tmp_path / "m", max_steps=4, **kw)
    assert m1["steps"] == 4 and m1["eval_loss"] > 0 and m1["vocab_size"] == len(SPECIAL_TOKENS) + 13  # 我们的国家很美丽。今天气好
    assert (tmp_path / "m.work" / "checkpoints" / "checkpoint-4").is_dir()  # beside the model, not in it
    assert not (tmp_path / "m" / "checkpoints").exists()
    m2 = train_mlm([corpus], tmp_path / "m", max_steps=8, resume=True, **kw)
    assert m2["resumed"] and m2["steps"] == 8
    assert [h["step"] for h in m2["history"]][0] > 4  # continued, did not restart at step 1
    saved = json.loads((tmp_path / "m" / "training_metrics.json").read_text())
    assert saved["steps"] == 8 and saved["eval_loss"] == pytest.approx(m2["eval_loss"])

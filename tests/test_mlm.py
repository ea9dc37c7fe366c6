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

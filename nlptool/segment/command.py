"""``nlptool segment`` as one object: options, rules, model loading, batching (:class:`Segmenter`)."""

from __future__ import annotations

import math
from typing import Any

from ..engine import Command
from ..errors import UsageError
from ..models import default_model

#: Default model of each ``--method`` (from the registry, :data:`nlptool.models.BUILTINS`): the tagger zh-seg-mini (PKU word F1 0.808 with its lexicon,
#: ``make bench-segment``) and the BERT zh-bert-mini for Perturbed Masking.
DEFAULT_MODELS = {m: default_model(f"segment --method {m}") for m in ("tagger", "masking")}

#: The default ``--method``: the better of the two on PKU word F1 (docs/segment.md, ``make bench-segment``):
#: the tagger (zh-seg-mini with its lexicon) 0.804 against masking 0.730 on the same first 100 lines; 0.808 on all.
DEFAULT_METHOD = "tagger"

PARSE_MODES = ("none", "constituency", "dependency")
#: How ``--parse dependency`` parses: ``student``, the self-trained biaffine parser (zh-parse-mini),
#: or ``masking``, Eisner over the Perturbed Masking impact matrix of the BERT (docs/segment.md).
PARSE_METHODS = ("student", "masking")
#: The default ``--parse-method``: the better of the two on UD Chinese GSDSimp dev (``make bench-parse``).
DEFAULT_PARSE_METHOD = "student"
#: The built-in model of ``--parse-method student``.
DEFAULT_PARSER = default_model("segment --parse dependency")
CONVERT_MODES = ("auto", "t2s", "none")


def parse_threshold(value: float | str) -> float | str:
    """``--threshold``: ``"auto"`` or a finite number (returned as a float).

    Raises:
        UsageError: anything else (NaN and infinities included)."""
    if value == "auto":
        return "auto"
    try:
        thr = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"--threshold {value}: expected 'auto' or a number") from None
    if not math.isfinite(thr):
        raise UsageError(f"--threshold {value}: expected 'auto' or a finite number")
    return thr


def model_line(loaded) -> str:
    """``model NAME on DEVICE (DTYPE)``: which model is in use (a stderr line)."""
    dtype = next(loaded.model.parameters()).dtype
    return f"model {loaded.name} on {loaded.device} ({str(dtype).replace('torch.', '')})"


class Segmenter(Command):
    """``nlptool segment`` as a worker: words (and a parse) per text, via
    :func:`nlptool.segment.api.segment_or_parse`.

    Args (the CLI's options and defaults): ``model`` (default by ``method``:
    :data:`DEFAULT_MODELS`), ``method`` (``tagger|masking``, default :data:`DEFAULT_METHOD`),
    ``user_dict`` (path, jieba format), ``convert`` (``auto|t2s|none``), ``threshold``
    (``"auto"`` or a finite number, masking only), ``layer`` (hidden layer of the BERT for masking
    and ``parse``; -1 = last, 0 = embeddings; checked against the model when it loads; ``None``:
    the last for masking and constituency, :data:`nlptool.segment.api.DEPENDENCY_LAYER` for
    dependency parsing),
    ``parse`` (``none|constituency|dependency``), ``parse_method`` (``student|masking``, dependency
    only; ``None``: :data:`DEFAULT_PARSE_METHOD`), ``parse_model`` (the parser of ``student``;
    default :data:`DEFAULT_PARSER`), ``device``, ``batch_size``, ``text_key``,
    ``words_key`` (with ``parse``: a field of given word lists, parsed as given, which may stand
    in for the text).

    Result columns: ``words`` (list of str, concatenating to the text), plus ``tree``/``heads``
    with ``parse``. Output formats besides ``jsonl``: ``text`` and ``conllu`` (:meth:`render`).

    Raises:
        UsageError: a bad option value (here), or a ``layer`` the model does not have (at load).
    """

    formats = ("text", "conllu")

    def __init__(self, model: str | None = None, method: str = DEFAULT_METHOD, user_dict: str | None = None,
                 convert: str = "auto", threshold: float | str = "auto", layer: int | None = None, parse: str = "none",
                 parse_method: str | None = None, parse_model: str | None = None,
                 device: str = "auto", batch_size: int = 256, text_key: str = "text", words_key: str = "words"):
        if method not in DEFAULT_MODELS:
            raise UsageError(f"--method {method}: expected {' or '.join(DEFAULT_MODELS)}")
        if parse not in PARSE_MODES:
            raise UsageError(f"--parse {parse}: expected {', '.join(PARSE_MODES)}")
        if convert not in CONVERT_MODES:
            raise UsageError(f"--convert {convert}: expected {', '.join(CONVERT_MODES)}")
        if parse_method is not None and parse_method not in PARSE_METHODS:
            raise UsageError(f"--parse-method {parse_method}: expected {' or '.join(PARSE_METHODS)}")
        if parse != "dependency" and (parse_method is not None or parse_model is not None):
            raise UsageError("--parse-method and --parse-model apply to --parse dependency")
        if parse == "dependency":
            parse_method = parse_method or DEFAULT_PARSE_METHOD
        if parse_model is not None and parse_method != "student":
            raise UsageError("--parse-model is the parser of --parse-method student; --parse-method masking "
                             "parses with the BERT of --model (or the tagger's teacher)")
        student = parse == "dependency" and parse_method == "student"
        if student and method == "tagger" and layer is not None:
            raise UsageError("--layer chooses the BERT layer of --method masking or of --parse-method masking; "
                             "the tagger and the student parser use no BERT")
        threshold = parse_threshold(threshold)
        if method == "tagger" and threshold != "auto":
            raise UsageError("--threshold applies to --method masking (the neighbour-impact cut); the tagger "
                             "decodes with its lexicon and has no threshold")
        if method == "tagger" and parse == "none" and layer is not None:
            raise UsageError("--layer chooses the BERT layer of --method masking or of --parse; the tagger "
                             "without --parse uses no BERT")
        super().__init__(model=model, method=method, user_dict=user_dict, convert=convert,
                         threshold=threshold, layer=layer, parse=parse, parse_method=parse_method,
                         parse_model=parse_model, device=device,
                         batch_size=batch_size, text_key=text_key, words_key=words_key)

    # -- records
    def extra_keys(self) -> list[str]:
        return [self.config["words_key"]] if self.config["parse"] != "none" else []

    def alternatives(self) -> list[str]:
        return self.extra_keys()  # with --parse, a given word list needs no text

    # -- the models
    def load(self) -> dict[str, Any]:
        """The segmenter (a character tagger or a BERT), the parser's BERT with ``parse`` (the
        masking BERT itself, or the tagger's teacher), the user dictionary.

        Raises:
            UsageError: ``layer`` outside the BERT's ``-(n+1)..n``."""
        from ..models import load_model
        from .api import read_user_dict, teacher_of

        c = self.config
        udict = read_user_dict(c["user_dict"]) if c["user_dict"] else None
        name = c["model"] or DEFAULT_MODELS[c["method"]]
        seg = load_model(name, kind="char-tagger" if c["method"] == "tagger" else "encoder", device=c["device"])
        parser = bert = None  # the parser of --parse; the BERT whose --layer is checked
        if c["parse_method"] == "student":
            parser = load_model(c["parse_model"] or DEFAULT_PARSER, kind="dependency-parser", device=c["device"])
        elif c["parse"] != "none":
            parser = bert = seg if c["method"] == "masking" else load_model(teacher_of(seg), kind="encoder",
                                                                            device=c["device"])
        if c["method"] == "masking":
            bert = seg
        if bert is not None:  # --layer is checked once against the model, not per record
            n_layers = int(getattr(bert.model.config, "num_hidden_layers", 0) or 0)
            if n_layers and c["layer"] is not None and not -(n_layers + 1) <= c["layer"] <= n_layers:
                raise UsageError(f"--layer {c['layer']}: the model {bert.name} has layers -{n_layers + 1}..{n_layers} "
                                 f"(0 = embeddings, -1 = last)")
        return {"segmenter": seg, "parser": parser, "user_dict": udict}

    def describe(self) -> list[str]:
        st = self.state()
        lines = [model_line(st["segmenter"])]
        if st["parser"] is not None and st["parser"] is not st["segmenter"]:
            lines.append(model_line(st["parser"]))
        return lines

    # -- output formats
    def check_format(self, fmt: str) -> None:
        """Raise :class:`UsageError` when this configuration cannot write ``fmt`` (``conllu`` needs
        ``parse="dependency"``); the CLI calls it before reading anything."""
        if fmt != "jsonl" and fmt not in self.formats:
            raise UsageError(f"--format {fmt}: expected jsonl, {', '.join(self.formats)}")
        if fmt == "conllu" and self.config["parse"] != "dependency":
            raise UsageError("--format conllu needs --parse dependency")

    def render(self, obj: dict[str, Any], fmt: str) -> str:
        """``text``: the words joined by spaces, whitespace-only words dropped, on one line (an
        empty line for a record with an error); ``conllu``: :func:`nlptool.segment.conllu.conllu_block`
        WITH its final newline, so that the line written after it leaves the blank line that
        ends a CoNLL-U sentence."""
        self.check_format(fmt)
        if fmt == "text":
            from ..records import escape_line

            return escape_line(" ".join(w for w in obj.get("words", []) if w.strip()))
        from .conllu import conllu_block

        return conllu_block(obj)

    # -- batching
    def results(self, records):
        from .api import auto_fallback, segment_or_parse

        c = self.config
        st = self.state()
        wk = c["words_key"]
        given = [r.texts.get(wk) if c["parse"] != "none" and wk in r.texts else None for r in records]
        return segment_or_parse(
            [r.text if g is None else None for r, g in zip(records, given)], segmenter=st["segmenter"],
            method=c["method"], given_words=given, parser=st["parser"], parse=c["parse"], threshold=c["threshold"],
            layer=c["layer"], batch_size=c["batch_size"], user_dict=st["user_dict"], convert=c["convert"],
            # calibrated lazily (and read from the shipped calibration when it matches)
            fallback=lambda: auto_fallback(st["segmenter"], layer=-1 if c["layer"] is None else c["layer"],
                                           batch_size=c["batch_size"]),
        )

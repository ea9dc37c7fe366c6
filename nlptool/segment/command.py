"""``nlptool segment`` as one object: options, rules, model loading, batching (:class:`Segmenter`)."""

from __future__ import annotations

import math

#: Default model of each ``--method``: the tagger zh-seg-mini (PKU word F1 0.808 with its lexicon,
#: ``make bench-segment``) and the BERT zh-bert-mini for Perturbed Masking.
DEFAULT_MODELS = {"tagger": "zh-seg-mini", "masking": "zh-bert-mini"}

from ..engine import Command, missing, to_python
from ..errors import UsageError
from ..models import load_model
from ..records import Record


class Segmenter(Command):
    """``nlptool segment`` as a worker: words (and a parse) per text, via
    :func:`nlptool.segment.api.segment_or_parse`.

    Args (the CLI's options and defaults): ``model`` (default by ``method``: zh-seg-mini for
    ``tagger``, zh-bert-mini for ``masking``), ``method`` (``tagger|masking``, default tagger), ``user_dict``
    (path, jieba format), ``convert`` (``auto|t2s|none``), ``threshold`` (``"auto"`` or a float),
    ``layer``, ``parse`` (``none|constituency|dependency``), ``device``, ``batch_size``,
    ``text_key``, ``words_key`` (with ``parse``: a column of given word lists).

    Result columns: ``words`` (list of str, concatenating to the text), plus ``tree``/``heads``
    with ``parse``. Raises :class:`nlptool.errors.UsageError` for a bad option value.
    """

    def __init__(self, model: str | None = None, method: str = "tagger", user_dict: str | None = None,
                 convert: str = "auto", threshold: float | str = "auto", layer: int = -1, parse: str = "none",
                 device: str = "auto", batch_size: int = 256, text_key: str = "text", words_key: str = "words"):
        if method not in DEFAULT_MODELS:
            raise UsageError(f"segmentation method {method!r}: expected tagger or masking")
        if parse not in ("none", "constituency", "dependency"):
            raise UsageError(f"parse {parse!r}: expected none, constituency or dependency")
        if threshold != "auto":
            threshold = float(threshold)
            if not math.isfinite(threshold):
                raise UsageError("the segmentation threshold must be 'auto' or a finite number")
        super().__init__(model=model, method=method, user_dict=user_dict, convert=convert, threshold=threshold,
                         layer=layer, parse=parse, device=device, batch_size=batch_size, text_key=text_key,
                         words_key=words_key)

    def extra_keys(self) -> list[str]:
        return [self.config["words_key"]] if self.config["parse"] != "none" else []

    def _row_record(self, i, row, columns):
        c = self.config
        if c["parse"] != "none" and c["words_key"] in columns and c["text_key"] not in columns:
            rec = Record("batch", i + 1, index=i)  # a given word list needs no text
            v = to_python(row[c["words_key"]])
            if not missing(v):
                rec.texts[c["words_key"]] = v
            return rec
        return super()._row_record(i, row, columns)

    def load(self):
        from ..segment.api import read_user_dict, teacher_of

        c = self.config
        name = c["model"] or DEFAULT_MODELS[c["method"]]
        seg = load_model(name, kind="char-tagger" if c["method"] == "tagger" else "encoder", device=c["device"])
        parser = None
        if c["parse"] != "none":
            parser = seg if c["method"] == "masking" else load_model(teacher_of(seg), kind="encoder", device=c["device"])
        udict = read_user_dict(c["user_dict"]) if c["user_dict"] else None
        return {"segmenter": seg, "parser": parser, "user_dict": udict}

    def results(self, records):
        from ..segment.api import auto_fallback, segment_or_parse

        c = self.config
        st = self.state()
        wk = c["words_key"]
        given = [r.texts.get(wk) if c["parse"] != "none" and wk in r.texts else None for r in records]
        return segment_or_parse(
            [r.text if g is None else None for r, g in zip(records, given)], segmenter=st["segmenter"],
            method=c["method"], given_words=given, parser=st["parser"], parse=c["parse"], threshold=c["threshold"],
            layer=c["layer"], batch_size=c["batch_size"], user_dict=st["user_dict"], convert=c["convert"],
            fallback=lambda: auto_fallback(st["segmenter"], layer=c["layer"], batch_size=c["batch_size"]),
        )

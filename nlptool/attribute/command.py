"""``nlptool attribute`` as one object (:class:`Attributor`): the command's defaults, option rules,
model loading, batching, output formats (``jsonl``, ``terminal``) and side outputs (an HTML page,
a PNG image of all results). The CLI (:mod:`nlptool.cli.attribute`) only parses options into it."""

from __future__ import annotations

import contextlib
import inspect
import io
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from ..engine import Command, check_bounds, model_line
from ..errors import UsageError
from ..models import default_model
from .ig import BASELINES, EXPLAIN, GRANULARITIES, METHODS

#: The default classifier: the built-in Chinese review sentiment model (negative/positive).
DEFAULT_MODEL = default_model("attribute")  # the registry row (nlptool.models.BUILTINS)

#: Output formats (``--format``): JSON lines, or ``terminal`` (:meth:`Attributor.render`).
FORMATS = ("jsonl", "terminal")

#: Records read per call of :meth:`Attributor.results` (the command has no ``--chunk-size``); texts
#: are integrated ``batch_size`` at a time, in length order, within a chunk.
CHUNK_SIZE = 64

#: Inclusive ``(least, greatest)`` bounds of the numeric options (None: unbounded), checked by the
#: constructor; the CLI gives the parser the same numbers.
BOUNDS: dict[str, tuple[Any, Any]] = {"steps": (2, None), "internal_batch_size": (1, None), "batch_size": (1, None),
                                      "max_length": (8, None)}


class _Stream(io.StringIO):
    """Where a rich console "writes" when it only renders: a terminal or not, as told."""

    def __init__(self, tty: bool):
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


class Attributor(Command):
    """``nlptool attribute`` as a worker: integrated-gradients scores per token or word of a text
    classifier, via :func:`nlptool.attribute.attribute_texts` (Sundararajan et al., ICML 2017).

    Args (the CLI's options; defaults in :data:`OPTION_DEFAULTS`):
        model: a trained sequence classifier (default :data:`DEFAULT_MODEL`).
        target: label name or index, ``"all"`` (every label), or None/"" (each text's prediction).
        granularity: ``token|word``; method: ``gausslegendre|riemann_trapezoid``; baseline:
            ``pad|mask|unk``; explain: ``probability|logit``; steps, internal_batch_size,
            batch_size, max_length: see :func:`nlptool.attribute.attribute_texts` (bounds in
            :data:`BOUNDS`); device, text_key.
        html, png: paths of the side outputs written by :meth:`finish` after the last record (one
            HTML page, one PNG image of every result, in input order); font: the PNG's font file.
        tty: whether the ``terminal`` format goes to a terminal (rich then styles it with ANSI
            codes, as for that stream; ``NO_COLOR``/``FORCE_COLOR`` apply); None: ask standard
            output when rendering.

    Result columns: those of :func:`attribute_texts` (label, scores, offsets, delta, ...).

    Raises:
        UsageError: a bad option value (here); a target that is not a label of the model (at load).
        ModelError: a model without a trained head or a fast tokenizer, or a tokenizer without the
            baseline token (at load).
    """

    formats = FORMATS[1:]

    def __init__(self, model: str = DEFAULT_MODEL, target: str | None = None, granularity: str = "token",
                 steps: int = 50, method: str = "gausslegendre", baseline: str = "pad",
                 explain: str = "probability", internal_batch_size: int | None = None, batch_size: int = 8,
                 max_length: int | None = None, device: str = "auto", text_key: str = "text",
                 html: str | None = None, png: str | None = None, font: str | None = None,
                 tty: bool | None = None):
        for flag, value, choices in (("--granularity", granularity, GRANULARITIES), ("--method", method, METHODS),
                                     ("--baseline", baseline, BASELINES), ("--explain", explain, EXPLAIN)):
            if value not in choices:
                raise UsageError(f"{flag} {value}: expected one of {', '.join(choices)}")
        check_bounds({"steps": steps, "internal_batch_size": internal_batch_size, "batch_size": batch_size,
                      "max_length": max_length}, BOUNDS)
        super().__init__(model=model, target=target or None, granularity=granularity, steps=steps, method=method,
                         baseline=baseline, explain=explain, internal_batch_size=internal_batch_size,
                         batch_size=batch_size, max_length=max_length, device=device, text_key=text_key,
                         html=html or None, png=png or None, font=font or None, tty=tty)
        if png:  # the font is found or refused now, before any model loads
            from .render import check_png_font

            check_png_font(font or None)

    # -- the model
    def _options(self) -> dict[str, Any]:
        c = self.config
        return {k: c[k] for k in ("target", "steps", "method", "baseline", "explain", "granularity",
                                  "internal_batch_size", "max_length", "batch_size")}

    def load(self) -> dict[str, Any]:
        """The classifier, checked against the options by a call on no text (a fast tokenizer,
        the baseline token, the target among its labels) before any record is read."""
        from ..models import load_model
        from .ig import attribute_texts

        loaded = load_model(self.config["model"], kind="sequence-classification", device=self.config["device"])
        attribute_texts(loaded, [], **self._options())
        return {"model": loaded}

    def describe(self) -> list[str]:
        return [model_line(self.state()["model"])]

    # -- batching
    def _gathered(self) -> dict[str, Any]:
        """What this process gathers for :meth:`finish`: the ``(text, result)`` pairs (only with
        ``html``/``png``) and the number of results with a warning."""
        return self.__dict__.setdefault("_gather", {"shown": [], "warnings": 0})

    def results(self, records):
        from .ig import attribute_texts

        res = attribute_texts(self.state()["model"], [r.text for r in records], **self._options())
        g = self._gathered()
        g["warnings"] += sum(bool(x.get("warning")) for x in res)
        if self.config["html"] or self.config["png"]:
            g["shown"].extend((r.text, x) for r, x in zip(records, res))
        return res

    # -- outputs
    def render(self, obj: dict[str, Any], fmt: str) -> str:
        """``terminal``: the text with each token (word) shaded by its score and a header line
        per explained label (:func:`nlptool.attribute.render_rich`), or ``error: ...``; the lines
        rich prints for it (ANSI styles when :attr:`tty`), without the final newline."""
        if fmt not in self.formats:
            raise UsageError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
        from rich.console import Console

        from .render import render_rich

        tty = self.config["tty"]
        dest = sys.stdout if tty is None else None
        cached = self.__dict__.get("_console")
        if cached is None or cached[0] is not dest:
            cached = self.__dict__["_console"] = (dest, Console(file=dest if tty is None else _Stream(tty),
                                                                highlight=False, soft_wrap=True))
        console = cached[1]
        text = obj.get(self.config["text_key"], "")
        if console.color_system is None:  # no colours (a pipe, NO_COLOR): the scores as numbers
            from .render import render_plain

            return render_plain(text if isinstance(text, str) else "", obj)
        with console.capture() as cap:
            console.print(render_rich(text if isinstance(text, str) else "", obj))
        out = cap.get()
        return out[:-1] if out.endswith("\n") else out

    def side_outputs(self) -> list[str]:
        """``--html`` and ``--png``, those given."""
        return [str(p) for p in (self.config["html"], self.config["png"]) if p]

    def finish(self, inputs: Sequence[str] = ()) -> Iterator[str]:
        """After the last record: say how many results carry a warning, then write the HTML page
        and the PNG image (whole or not at all, :func:`nlptool.paths.atomic_output`), a line each."""
        from ..paths import atomic_output

        g = self.__dict__.pop("_gather", None) or {"shown": [], "warnings": 0}
        c = self.config
        if g["warnings"]:
            yield (f"{g['warnings']} record(s) carry a warning (truncated text, or |delta| above 5 % of "
                   "|F(x) - F(baseline)|: use more --steps)")
        # both side outputs are rendered in memory first, then written together: all or none
        page = image = used = None
        if c["html"]:
            from .render import render_html

            page = render_html(g["shown"])
        if c["png"]:
            import io

            from .render import render_png

            buf = io.BytesIO()
            used = render_png(g["shown"], buf, font=c["font"])
            image = buf.getvalue()
        with contextlib.ExitStack() as stack:
            if page is not None:
                stack.enter_context(atomic_output(c["html"], "w", inputs=inputs)).write(page)
            if image is not None:
                stack.enter_context(atomic_output(c["png"], "wb", inputs=inputs)).write(image)
        if page is not None:
            yield f"heatmap page: {c['html']}"
        if image is not None:
            yield f"heatmap image: {c['png']} (font {used})"


#: The constructor's defaults by argument name: the CLI's option defaults come from here.
OPTION_DEFAULTS: dict[str, Any] = {k: p.default for k, p in inspect.signature(Attributor).parameters.items()}

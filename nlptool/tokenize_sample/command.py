"""``nlptool tokenize-sample`` as one object (:class:`Sampler`)."""

from __future__ import annotations

import random

from ..engine import Command, record_rng
from ..errors import InputDataError, UsageError
from ..records import escape_line


class Sampler(Command):
    """``nlptool tokenize-sample`` as a worker: exact FFBS sampling / n-best / entropy / marginals
    of unigram-LM segmentations, via :func:`nlptool.tokenize_sample.unigram.tokenize` (Kudo 2018, subword
    regularization; Su, kexue.fm 2023-09-16).

    Args: the CLI's options and defaults (``alpha`` 0.1, ``"inf"`` = Viterbi; ``num_samples``,
    ``without_replacement``, ``nbest``, ``entropy``, ``marginals``, ``ids``, ``seed``, ``method``
    ``ffbs|su2023``, ``dict_path``/``sp_model``/``bytepiece_model``, ``text_key``) and
    ``index_key``: the column holding each row's 0-based position in the whole input. With a
    ``seed``, a row's draws come from :func:`record_rng` ``(seed, index)``, the same as the CLI's
    for that input line; without that column the row's position in the batch is used (then the
    draws depend on how the data is batched).

    Result columns: ``tokens``/``logp`` (one sample), ``samples`` (K), ``nbest``, ``entropy``,
    ``marginals``, ``ids``.

    Raises:
        UsageError: an option value or combination that cannot work, e.g. K (``num_samples``,
            ``nbest``) outside ``1..MAX_K`` (:func:`~nlptool.tokenize_sample.unigram.check_k`).
            A line whose K segmentations would exceed ``MAX_OUTPUT_UNITS`` characters is that
            record's error instead (:func:`~nlptool.tokenize_sample.unigram.check_output_size`).
    """

    def __init__(self, alpha: float | str = "0.1", num_samples: int = 1, without_replacement: bool = False,
                 nbest: int | None = None, entropy: bool = False, marginals: bool = False, ids: bool = False,
                 seed: int | None = None, method: str = "ffbs", dict_path: str | None = None,
                 sp_model: str | None = None, bytepiece_model: str | None = None, text_key: str = "text",
                 index_key: str | None = "_index"):
        from ..tokenize_sample.unigram import check_alpha, check_k

        a = check_alpha(alpha)
        num_samples = check_k(num_samples)
        if nbest is not None:
            nbest = check_k(nbest, "--nbest")
        if method not in ("ffbs", "su2023"):
            raise UsageError(f"--method {method}: expected ffbs or su2023")
        if ids and not sp_model:
            raise UsageError("--ids needs --sp-model (token ids are those of a SentencePiece model)")
        if nbest is not None and (num_samples != 1 or without_replacement or method != "ffbs"):
            raise UsageError("--nbest does not sample: drop -k/--num-samples, --without-replacement and --method")
        if without_replacement and method != "ffbs":
            raise UsageError("--without-replacement is exact sampling: drop --method su2023")
        super().__init__(alpha=a, num_samples=num_samples, without_replacement=without_replacement, nbest=nbest,
                         entropy=entropy, marginals=marginals, ids=ids, seed=seed, method=method,
                         dict_path=dict_path, sp_model=sp_model, bytepiece_model=bytepiece_model,
                         text_key=text_key, index_key=index_key)

    def load(self):
        from ..tokenize_sample.unigram import load_unigram_model

        c = self.config
        return {"model": load_unigram_model(c["dict_path"], c["sp_model"], c["bytepiece_model"]), "rng": random.Random()}

    formats = ("text",)

    def describe(self) -> list[str]:
        c, model = self.config, self.state()["model"]
        lines = [f"unigram LM: {model.kind} {model.name} ({len(model)} pieces); alpha={c['alpha']:g}, method={c['method']}"]
        if c["method"] == "su2023":
            lines.append("warning: --method su2023 is biased (it does not sample P(seg)^alpha / Z); "
                         "use ffbs for exact sampling")
        return lines

    def render(self, obj, fmt):
        """``text``: the tokens separated by spaces; K samples or the n-best separated by tabs; an
        empty line for a record with an error."""
        if "error" in obj:
            return ""
        if "tokens" in obj:
            return escape_line(" ".join(obj["tokens"]))
        if "nbest" in obj:
            return escape_line("\t".join(" ".join(e["tokens"]) for e in obj["nbest"]))
        return escape_line("\t".join(" ".join(s) for s in obj["samples"]))

    def results(self, records):
        """One result per record; a line too long for the requested K (more than
        ``MAX_OUTPUT_UNITS`` characters in its K segmentations) is that record's error."""
        from ..tokenize_sample.unigram import tokenize

        c = self.config
        st = self.state()
        out: list = []
        for r in records:
            try:
                out.append(tokenize(st["model"], r.text, c["alpha"], num_samples=c["num_samples"],
                                    rng=record_rng(c["seed"], r.index, st["rng"]), method=c["method"],
                                    nbest=c["nbest"], without_replacement=c["without_replacement"],
                                    entropy=c["entropy"], marginals=c["marginals"], ids=c["ids"]))
            except InputDataError as exc:  # only this record; the others of the batch stand
                out.append(exc)
        return out

"""``nlptool qa-gen`` as one object (:class:`QAGenerator`): the command's defaults, option rules,
model loading (generator and round-trip reader), decoding settings and batching. The CLI
(:mod:`nlptool.cli.qa_gen`) only parses options into it."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from typing import Any

from ..engine import Command, check_bounds, model_line
from ..models import default_model
from .data import DEFAULTS
from .reader import DEFAULT_READER

#: The default generator: the built-in Chinese UniLM question-answer generator.
DEFAULT_MODEL = default_model("qa-gen")  # the registry row (nlptool.models.BUILTINS)

#: Input records read and written per chunk by default (``--chunk-size``).
CHUNK_SIZE = 64

#: Inclusive ``(least, greatest)`` bounds of the numeric options (None: unbounded), checked by the
#: constructor; the CLI gives the parser the same numbers.
BOUNDS: dict[str, tuple[Any, Any]] = {
    "num_pairs": (1, None), "top_p": (1e-6, 1.0), "beam_size": (1, None), "no_repeat_ngram": (0, None),
    "length_penalty": (0.0, None), "max_answer_len": (1, None), "max_question_len": (1, None),
    "max_passage_chars": (8, None), "min_consistency": (0.0, 1.0), "seed": (0, None), "batch_size": (1, None),
}


def tagger_words(tagger, texts: Sequence[str]) -> list[list[str]]:
    """Word lists of ``texts`` by a character tagger (:func:`nlptool.segment.api.segment_with_tagger`,
    its lexicon on): the word boundaries sampled answers are widened to."""
    from ..segment.api import segment_with_tagger

    return [r.words for r in segment_with_tagger(tagger, list(texts), impacts=False)]


class QAGenerator(Command):
    """``nlptool qa-gen`` as a worker: question-answer pairs per passage (UniLM seq2seq on BERT,
    Dong et al. 2019; Su, kexue.fm 2020-07-25), or one question per given answer for rows with an
    ``answers_key`` list, via :func:`nlptool.qagen.generate_qa_pairs` /
    :func:`nlptool.qagen.questions_for_answers`.

    Args (the CLI's options; defaults in :data:`OPTION_DEFAULTS`, bounds in :data:`BOUNDS`):
        model: the generator (default :data:`DEFAULT_MODEL`).
        num_pairs: answer samples per passage (at most that many pairs).
        top_p, beam_size, no_repeat_ngram, length_penalty, max_answer_len, max_question_len,
            max_passage_chars, min_consistency: decoding settings; None = the model's own
            (:func:`nlptool.qagen.decoding_settings`).
        round_trip: drop pairs whose question ``reader`` (default
            :data:`nlptool.qagen.reader.DEFAULT_READER`) answers with a span that does not overlap
            the answer (Alberti et al. 2019).
        seed: per passage: the same seed and passage give the same pairs, whatever the batching.
        batch_size, device, text_key; answers_key: the field of a given answer list.

    Result columns: ``qa_pairs`` and ``qa_filtered``.

    Raises:
        UsageError: a bad option value (here).
        ModelError: a generator not trained by ``nlptool train qa-gen``, or a reader not trained by
            ``nlptool train reader`` (at load).
    """

    def __init__(self, model: str = DEFAULT_MODEL, num_pairs: int = DEFAULTS["num_pairs"], top_p: float | None = None,
                 beam_size: int | None = None, no_repeat_ngram: int | None = None,
                 length_penalty: float | None = None, max_answer_len: int | None = None,
                 max_question_len: int | None = None, max_passage_chars: int | None = None,
                 round_trip: bool = True, reader: str = DEFAULT_READER, min_consistency: float | None = None,
                 seed: int = 0, batch_size: int = 16, device: str = "auto", text_key: str = "text",
                 answers_key: str = "answers"):
        config = dict(model=model, num_pairs=num_pairs, top_p=top_p, beam_size=beam_size,
                      no_repeat_ngram=no_repeat_ngram, length_penalty=length_penalty, max_answer_len=max_answer_len,
                      max_question_len=max_question_len, max_passage_chars=max_passage_chars, round_trip=round_trip,
                      reader=reader, min_consistency=min_consistency, seed=seed, batch_size=batch_size, device=device,
                      text_key=text_key, answers_key=answers_key)
        check_bounds(config, BOUNDS)
        super().__init__(**config)

    def extra_keys(self):
        return [self.config["answers_key"]]

    def load(self) -> dict[str, Any]:
        """The generator (checked to be one), the round-trip reader, the decoding settings (the
        model's own with the options given here on top)."""
        from ..models import load_model
        from .generation import DECODING_KEYS, check_generator, decoding_settings

        c = self.config
        loaded = load_model(c["model"], kind="masked-lm", device=c["device"])
        settings = check_generator(loaded)
        rt = None
        if c["round_trip"]:
            from .reader import load_reader

            rt = load_reader(c["reader"], c["device"])
        decoding = decoding_settings(settings, **{k: c[k] for k in DECODING_KEYS})
        # the segmenter that widens sampled answers to whole words loads when first needed
        # (:meth:`_words`): records with given answers never need it
        return {"model": loaded, "reader": rt, "decoding": decoding, "tagger": None}

    def _words(self, texts: Sequence[str]) -> list[list[str]]:
        """Word lists of ``texts`` by the built-in segmenter (zh-seg-mini), loaded on first use: sampled
        answers are widened to whole words of it."""
        st = self.state()
        if st.get("tagger") is None:
            from ..models import load_model

            st["tagger"] = load_model(default_model("segment --method tagger"), kind="char-tagger",
                                      device=self.config["device"])
        return tagger_words(st["tagger"], texts)

    def describe(self) -> list[str]:
        lines = [model_line(self.state()["model"])]
        if self.config["round_trip"]:
            lines.append(f"round trip: reader {self.config['reader']}")
        return lines

    def _stats(self) -> dict[str, Any]:
        """Counts gathered in this process for :meth:`finish` (answer samples, pairs kept, removed
        per filter), accumulated by :func:`nlptool.qagen.qa_pairs_for_records`."""
        return self.__dict__.setdefault("_gather", {})

    def results(self, records):
        from .generation import qa_pairs_for_records

        c = self.config
        st = self.state()
        return qa_pairs_for_records(st["model"], [r.text for r in records], [r.texts for r in records],
                                    decoding=st["decoding"], num_pairs=c["num_pairs"], seed=c["seed"],
                                    batch_size=c["batch_size"], reader=st["reader"], answers_key=c["answers_key"],
                                    stats=self._stats(), words=self._words)

    def finish(self, inputs: Sequence[str] = ()) -> Iterator[str]:
        """After the last record: one line of counts (pairs kept of answer samples; removed, per filter)."""
        stats = self.__dict__.pop("_gather", None) or {}
        removed = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in stats.get("filtered", {}).items() if v) or "none"
        yield f"{stats.get('pairs', 0):,} pairs kept of {stats.get('candidates', 0):,} answer samples; removed: {removed}"


#: The constructor's defaults by argument name: the CLI's option defaults come from here.
OPTION_DEFAULTS: dict[str, Any] = {k: p.default for k, p in inspect.signature(QAGenerator).parameters.items()}

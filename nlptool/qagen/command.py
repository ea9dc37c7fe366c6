"""``nlptool qa-gen`` as one object (:class:`QAGenerator`)."""

from __future__ import annotations


from ..engine import Command
from ..models import load_model


class QAGenerator(Command):
    """``nlptool qa-gen`` as a worker: question-answer pairs per passage (UniLM seq2seq on BERT,
    Dong et al. 2019; Su, kexue.fm 2020-07-25), or one question per given answer for rows with an
    ``answers_key`` list, via :func:`nlptool.qagen.generate_qa_pairs` /
    :func:`nlptool.qagen.questions_for_answers`.

    Args: the CLI's options and defaults (``model="zh-qa-gen-mini"``, ``num_pairs``, ``top_p``,
    ``beam_size``, ``no_repeat_ngram``, ``length_penalty``, ``max_answer_len``,
    ``max_question_len``, ``max_passage_chars`` (None = the model's setting), ``round_trip``,
    ``reader``, ``min_consistency``, ``seed`` (per passage: the same seed and passage give the
    same pairs, whatever the batching), ``batch_size``, ``device``, ``text_key``, ``answers_key``).

    Result columns: ``qa_pairs`` and ``qa_filtered``.
    """

    def __init__(self, model: str = "zh-qa-gen-mini", num_pairs: int = 5, top_p: float | None = None,
                 beam_size: int | None = None, no_repeat_ngram: int | None = None,
                 length_penalty: float | None = None, max_answer_len: int | None = None,
                 max_question_len: int | None = None, max_passage_chars: int | None = None,
                 round_trip: bool = True, reader: str = "zh-reader-mini", min_consistency: float | None = None,
                 seed: int = 0, batch_size: int = 16, device: str = "auto", text_key: str = "text",
                 answers_key: str = "answers"):
        super().__init__(model=model, num_pairs=num_pairs, top_p=top_p, beam_size=beam_size,
                         no_repeat_ngram=no_repeat_ngram, length_penalty=length_penalty,
                         max_answer_len=max_answer_len, max_question_len=max_question_len,
                         max_passage_chars=max_passage_chars, round_trip=round_trip, reader=reader,
                         min_consistency=min_consistency, seed=seed, batch_size=batch_size, device=device,
                         text_key=text_key, answers_key=answers_key)

    def extra_keys(self):
        return [self.config["answers_key"]]

    def load(self):
        from ..qagen import check_generator

        c = self.config
        loaded = load_model(c["model"], kind="masked-lm", device=c["device"])
        settings = check_generator(loaded)
        rt = None
        if c["round_trip"]:
            from ..qagen.reader import load_reader

            rt = load_reader(c["reader"], c["device"])
        from ..qagen import DECODING_KEYS, decoding_settings

        decoding = decoding_settings(settings, **{k: c[k] for k in DECODING_KEYS})
        return {"model": loaded, "reader": rt, "decoding": decoding}

    def results(self, records):
        from ..qagen import qa_pairs_for_records

        c = self.config
        st = self.state()
        ak = c["answers_key"]
        return qa_pairs_for_records(st["model"], [r.text for r in records], [r.texts for r in records],
                                    decoding=st["decoding"], num_pairs=c["num_pairs"], seed=c["seed"],
                                    batch_size=c["batch_size"], reader=st["reader"], answers_key=ak)

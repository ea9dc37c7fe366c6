"""Evaluating question generation given the gold answer, the template baseline, and the last stage
of a built-in generator's or reader's build (its card and :func:`nlptool.training.export_builtin`).

Metrics as in lmqg (Ushio et al. 2022, "Generative Language Models for Paragraph-Level Question
Generation", EMNLP): corpus BLEU-4 (Papineni et al. 2002) computed by sacrebleu with its ``zh``
tokenizer (Post 2018, "A Call for Clarity in Reporting BLEU Scores"), and ROUGE-L (Lin 2004) F1
over characters, averaged over questions.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import NlptoolError
from ..training import Card
from .data import QAItem, split_sentences


def template_question(passage: str, start: int, answer: str) -> str:
    """The trivial baseline: the sentence of ``passage`` that contains the answer (at character
    ``start``), with the answer replaced by "什么" ("what")."""
    for s, sent in split_sentences(passage):
        if s <= start < s + len(sent):
            k = start - s
            return (sent[:k] + "什么" + sent[k + len(answer):]).strip()
    return "什么"


def _lcs(a: str, b: str) -> int:
    prev = [0] * (len(b) + 1)
    for ca in a:
        cur = [0]
        for j, cb in enumerate(b):
            cur.append(prev[j] + 1 if ca == cb else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l_chars(hyp: str, ref: str) -> float:
    """ROUGE-L F1 (Lin 2004, beta = 1, as rouge-score's ``fmeasure``) over the non-space
    characters of ``hyp`` and ``ref``; in [0, 1], 0 when either is empty."""
    h = [c for c in hyp if not c.isspace()]
    r = [c for c in ref if not c.isspace()]
    if not h or not r:
        return 0.0
    n = _lcs("".join(h), "".join(r))
    if n == 0:
        return 0.0
    p, rc = n / len(h), n / len(r)
    return 2 * p * rc / (p + rc)


def bleu4(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Corpus BLEU-4 in [0, 100] with sacrebleu's ``zh`` tokenizer (one reference per hypothesis).

    Raises:
        NlptoolError: sacrebleu is not installed (``pip install sacrebleu``).
    """
    try:
        import sacrebleu
    except ImportError:
        raise NlptoolError("BLEU needs sacrebleu: pip install sacrebleu (or pip install 'nlptool[bench]')") from None
    return float(sacrebleu.corpus_bleu(list(hyps), [list(refs)], tokenize="zh").score)


def _repeats(q: str, n: int = 3) -> bool:
    grams = [q[i: i + n] for i in range(len(q) - n + 1)]
    return len(grams) != len(set(grams))


def _describe(hyps: Sequence[str], refs: Sequence[str], answers: Sequence[str]) -> dict[str, float]:
    k = max(1, len(hyps))
    return {
        "bleu4": round(bleu4(hyps, refs), 2),
        "rouge_l": round(100 * sum(rouge_l_chars(h, r) for h, r in zip(hyps, refs)) / k, 2),
        "mean_chars": round(sum(len(h) for h in hyps) / k, 2),
        "answer_in_question": round(sum(a in h for h, a in zip(hyps, answers)) / k, 4),
        "repeated_char_trigram": round(sum(_repeats(h) for h in hyps) / k, 4),
        "empty": round(sum(not h for h in hyps) / k, 4),
    }


def evaluate_qa_gen(loaded, items: Sequence[QAItem], *, settings: dict[str, Any] | None = None,
                    batch_size: int = 32, **overrides: Any) -> dict[str, Any]:
    """BLEU-4 and character ROUGE-L of the questions a generator writes for the gold answers,
    against the gold questions, beside the template baseline (:func:`template_question`).

    The questions come from :func:`nlptool.qagen.questions_for_answers`, the code path of
    ``nlptool qa-gen`` with an ``answers`` list (answers grouped per passage, in file order).

    Args:
        loaded: the generator (:func:`nlptool.models.load_model`).
        items: gold pairs (:func:`nlptool.qagen.read_qa_data`).
        settings: generation settings (default: the model's :data:`SETTINGS_FILE`).
        overrides: decoding settings over ``settings`` (``beam_size``, ``no_repeat_ngram``,
            ``length_penalty``, ``max_question_len``, ...).

    Returns:
        ``{"questions", "passages", "model": {...}, "template": {...}, "gold": {"mean_chars"},
        "settings"}`` where each method has ``bleu4`` (0-100), ``rouge_l`` (0-100), ``mean_chars``,
        ``answer_in_question``, ``repeated_char_trigram`` (share with a character 3-gram twice) and
        ``empty`` (shares in [0, 1]).
    """
    from .generation import check_generator, questions_for_answers

    s = dict(settings or check_generator(loaded))
    s.update({k: v for k, v in overrides.items() if v is not None})
    groups: dict[str, list[QAItem]] = defaultdict(list)
    for it in items:
        groups[it.passage].append(it)
    passages = list(groups)
    res = questions_for_answers(
        loaded, [(p, [it.answer for it in groups[p]]) for p in passages], beam_size=s["beam_size"],
        max_answer_len=s["max_answer_len"], max_question_len=s["max_question_len"],
        max_passage_chars=s["max_passage_chars"], no_repeat_ngram=s["no_repeat_ngram"],
        length_penalty=s["length_penalty"], answer_marks=s["answer_marks"], batch_size=batch_size,
    )
    hyps, refs, answers, tmpl = [], [], [], []
    for p, row in zip(passages, res):
        for it, entry in zip(groups[p], row):
            hyps.append(entry.get("question", ""))
            refs.append(it.question)
            answers.append(it.answer)
            tmpl.append(template_question(it.passage, it.passage.find(it.answer), it.answer))
    keys = ("beam_size", "no_repeat_ngram", "length_penalty", "answer_marks", "max_passage_chars", "max_question_len")
    return {
        "questions": len(hyps),
        "passages": len(passages),
        "model": _describe(hyps, refs, answers),
        "template": _describe(tmpl, refs, answers),
        "gold": {"mean_chars": round(sum(map(len, refs)) / max(1, len(refs)), 2)},
        "settings": {k: s[k] for k in keys},
        "examples": [{"answer": a, "gold": r, "model": h, "template": t}
                     for a, r, h, t in list(zip(answers, refs, hyps, tmpl))[:5]],
    }


def card(name: str, metrics: dict[str, Any], evaluation: dict[str, Any] | None, *, quick: bool = False) -> Card:
    """The card (:class:`nlptool.training.Card`) of a generator or reader (``metrics["kind"] ==
    "reader"``), from its training ``metrics`` (``metrics.json``) and evaluation JSON; every
    number comes from those files."""
    kind = "extractive reader (span start/end)" if metrics.get("kind") == "reader" else "UniLM question-answer generator"
    summary = f"Chinese {kind}, fine-tuned from `{metrics.get('base_model')}` by nlptool."
    data = []
    for k in ("train_examples", "heldout_examples", "train_articles", "dropped"):
        if k in metrics:
            data.append(f"- {k.replace('_', ' ')}: {metrics[k] if not isinstance(metrics[k], list) else len(metrics[k])}")
    if metrics.get("data"):
        data.append(f"- training data: {', '.join(map(str, metrics['data']))}")
    training = []
    for k in ("steps", "epochs", "seconds", "device", "batch_size", "learning_rate", "label_smoothing", "validation_loss"):
        if metrics.get(k) is not None:
            v = metrics[k]
            training.append(f"- {k.replace('_', ' ')}: {round(v, 4) if isinstance(v, float) else v}")
    if metrics.get("settings"):
        training.append("- generation settings: `" + json.dumps({k: v for k, v in metrics["settings"].items()
                                                                if k not in ("format", "base_model")}, ensure_ascii=False) + "`")
    sections = [("Data and splits", "\n".join(data)), ("Training", "\n".join(training))]
    if evaluation:
        quality = []
        if "model" in evaluation and "template" in evaluation:
            quality += ["| method | BLEU-4 (sacrebleu zh) | ROUGE-L (chars) | mean chars |", "|---|---|---|---|"]
            for m in ("model", "template"):
                e = evaluation[m]
                quality.append(f"| {name if m == 'model' else 'template (answer sentence, answer -> 什么)'} | "
                               f"{e['bleu4']} | {e['rouge_l']} | {e['mean_chars']} |")
            quality.append(f"\n{evaluation['questions']} questions, given the gold answers.")
        else:
            quality.append("- " + ", ".join(f"{k} {v}" for k, v in evaluation.items() if isinstance(v, (int, float))))
        sections.append(("Measured quality (held-out articles, never trained on)", "\n".join(quality)))
    return Card(summary, sections, quick=quick)


def finish_builtin(src: str | os.PathLike, name: str, *, evaluation: str | os.PathLike | None = None,
                   commands: Sequence[str] = (), dest: str | os.PathLike | None = None, quick: bool = False,
                   device: str = "auto") -> dict[str, Any]:
    """Last stage of a built-in generator's or reader's build: export ``src`` (a model of ``train
    qa-gen`` or ``train reader``) with :func:`nlptool.training.export_builtin`: its
    ``metrics.json`` as ``training_metrics.json``, its settings file, the evaluation JSON as
    ``evaluation.json`` and the card (:func:`card`). ``evaluation``: the ``eval qa-gen`` output;
    a reader without it is described by the held-out scores in its metrics. ``device`` is unused
    (the measurements were made by the build's commands). Returns the export facts."""
    import tempfile

    from ..training import export_builtin

    src = Path(src)
    metrics = json.loads((src / "metrics.json").read_text(encoding="utf-8")) if (src / "metrics.json").exists() else {}
    ev = None
    with tempfile.TemporaryDirectory(prefix="nlptool-eval-") as tmp:
        if evaluation is not None and Path(evaluation).exists():
            ev = json.loads(Path(evaluation).read_text(encoding="utf-8"))
        elif metrics.get("heldout"):
            ev = metrics["heldout"]
            evaluation = Path(tmp, "evaluation.json")
            evaluation.write_text(json.dumps(ev) + "\n", encoding="utf-8")
        extra = {"evaluation.json": evaluation} if ev is not None else {}
        return export_builtin(src, name, card=card(name, metrics, ev, quick=quick), commands=commands, dest=dest,
                              metrics=metrics, extra_files=extra)


def model_card(name: str, metrics: dict[str, Any], evaluation: dict[str, Any] | None, commands: Sequence[str],
               size_bytes: int, params: int) -> str:
    """The README.md of a generator or reader: :func:`card` in the one template
    (:func:`nlptool.training.render_card`)."""
    from ..models import REGISTRY
    from ..training import render_card

    row = REGISTRY.get(name)
    facts = {"kind": row.kind if row else "?", "default_for": row.default_for if row else (),
             "files": list(row.files) if row else [], "size_bytes": size_bytes, "parameters": params}
    return render_card(name, card(name, metrics, evaluation), facts=facts, commands=commands)


def export_model(src: str | os.PathLike, dst: str | os.PathLike, *, name: str, kind: str | None = None,
                 evaluation: str | os.PathLike | None = None, commands: Sequence[str] = ()) -> int:
    """:func:`finish_builtin` into the directory ``dst`` (``kind`` is read from ``src``'s config
    and ignored here). Returns the size of ``model.safetensors`` in bytes."""
    return finish_builtin(src, name, evaluation=evaluation, commands=commands, dest=dst)["size_bytes"]

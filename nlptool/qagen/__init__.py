"""Question-answer pair generation from passages with one UniLM seq2seq BERT.

Modules: :mod:`.data` (passages, files, splits, training examples), :mod:`.trainer` (the
``Trainer`` subclass and :func:`train_qa_gen`), :mod:`.generation` (sampling, beam search,
filters, given answers, round trip), :mod:`.evaluation` (BLEU-4/ROUGE-L against gold and the
template baseline). Everything is re-exported here.

The library behind ``nlptool train qa-gen`` and ``nlptool qa-gen``. Source: Su Jianlin,
"学会提问的BERT：端到端地从篇章中构建问答对" (kexue.fm, 2020-07-25) and the bert4keras example
``task_question_answer_generation_by_seq2seq.py``: a BERT with the UniLM mask models
p(answer, question | passage) as ``[CLS] passage [SEP] answer [SEP] question [SEP]`` (segment 0
for the passage, 1 after it), trained with the loss on the answer and question tokens only.
Passages are cut to about 128 characters at sentence punctuation and a training example keeps the
chunk that contains its answer. Generation samples an answer with nucleus (top-p) sampling up to
the first ``[SEP]``, then decodes a question for it with beam search up to the second; the
passage is encoded once and its keys/values are reused by every sample and beam
(:mod:`nlptool.qagen.unilm`).

Filters (counted per passage in :class:`QAGenResult`): a sampled answer must end within
``max_answer_len`` tokens and occur in the passage (its character offset is ``answer_start``);
an answer of punctuation only is dropped; the same answer twice is decoded once; a question must end within ``max_question_len``, be
non-empty and differ from its answer; the same question twice keeps the better-scored pair; with
an extractive reader, a pair whose reader answer does not overlap its answer is dropped
(round-trip consistency, Alberti et al. 2019).
"""

from __future__ import annotations

from .data import (  # noqa: F401
    DEFAULTS,
    FILTERS,
    SETTINGS_FILE,
    QAItem,
    build_examples,
    chunk_passage,
    chunk_with_answer,
    encode_example,
    encode_marked_examples,
    marked_passage,
    question_prefix,
    read_qa_data,
    split_articles,
    split_sentences,
    write_splits,
)
from .evaluation import evaluate_qa_gen, export_model, model_card, rouge_l_chars, template_question  # noqa: F401
from .generation import (  # noqa: F401
    DECODING_KEYS,
    QAGenResult,
    add_pair,
    allocate,
    check_generator,
    decoding_settings,
    find_subsequence,
    generate_qa_pairs,
    generate_questions,
    load_settings,
    qa_pairs_for_records,
    questions_for_answers,
    tokens_to_text,
)
from .train import train_qa_gen  # noqa: F401

from .command import QAGenerator  # noqa: E402,F401

"""qa-gen on CMRC 2018 (../shared/data/qa): train (unless a model exists), then evaluate on the
held-out articles.

Tables:
1. question generation given the gold answer: BLEU-4 (sacrebleu, zh tokenizer, corpus level) and
   ROUGE-L F (over characters, rouge-score, mean over questions) of the model's beam-search
   question against the gold question, and the same for a template baseline (the sentence that
   contains the answer, with the answer replaced by "什么");
2. full generation (nucleus answer, beam question) on the held-out passages: the share of sampled
   answers that end and are found in the passage, what each filter removed, distinct questions
   per passage, pairs/s;
then five generated pairs verbatim.

    python benchmarks/bench_qa_gen.py                      # trains build/qa-gen first if missing
    python benchmarks/bench_qa_gen.py --model build/qa-gen --num-pairs 5 --limit-passages 94

The training command (kept here so the result can be reproduced):

    nlptool train qa-gen --data ../shared/data/qa/cmrc2018_trial.json \
        --data ../shared/data/qa/cmrc2018_dev_part.json --out build/qa-gen --holdout 0.1 --seed 0 \
        --epochs 20 --batch-size 32 --learning-rate 3e-4 --max-minutes 40
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED, Timer, need, peak_rss_mb, table  # noqa: E402

DATA = [SHARED / "qa" / "cmrc2018_trial.json", SHARED / "qa" / "cmrc2018_dev_part.json"]


def train_command(out: Path, minutes: float, epochs: float) -> list[str]:
    cmd = [sys.executable, "-m", "nlptool", "train", "qa-gen"]
    for d in DATA:
        cmd += ["--data", str(d)]
    return cmd + ["--out", str(out), "--holdout", "0.1", "--seed", "0", "--epochs", str(epochs), "--batch-size", "32",
                  "--learning-rate", "3e-4", "--max-minutes", str(minutes)]


def template_question(passage: str, start: int, answer: str) -> str:
    """The sentence containing the answer, with the answer replaced by 什么 (the baseline)."""
    from nlptool.qagen import split_sentences

    for s, sent in split_sentences(passage):
        if s <= start < s + len(sent):
            k = start - s
            return (sent[:k] + "什么" + sent[k + len(answer):]).strip()
    return "什么"


class _Chars:
    """rouge-score tokenizer: one token per non-space character."""

    def tokenize(self, text):
        return [c for c in text if not c.isspace()]


def rouge_l(hyps, refs) -> float:
    from rouge_score import rouge_scorer

    sc = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Chars())
    vals = [sc.score(r, h)["rougeL"].fmeasure for h, r in zip(hyps, refs)]
    return sum(vals) / len(vals)


def bleu4(hyps, refs) -> float:
    import sacrebleu

    return sacrebleu.corpus_bleu(hyps, [refs], tokenize="zh").score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "build" / "qa-gen"), help="trained model directory (trained if absent)")
    ap.add_argument("--train-minutes", type=float, default=40.0)
    ap.add_argument("--epochs", type=float, default=20.0)
    ap.add_argument("--num-pairs", type=int, default=5)
    ap.add_argument("--beam-size", type=int, default=4)
    ap.add_argument("--limit-passages", type=int, default=None, help="full generation on the first N held-out passages")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for d in DATA:
        need(d)
    model_dir = Path(args.model)
    if not (model_dir / "nlptool_qa_gen.json").exists():
        cmd = train_command(model_dir, args.train_minutes, args.epochs)
        print("training:", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)

    import torch

    from nlptool.models import load_model
    from nlptool.qagen import chunk_with_answer, generate_qa_pairs, generate_questions, load_settings, read_qa_data

    metrics = json.loads((model_dir / "metrics.json").read_text(encoding="utf-8"))
    settings = load_settings(model_dir)
    held_articles = set(metrics["heldout_articles"])
    items, _ = read_qa_data(DATA)
    held = [it for it in items if it.article in held_articles]
    lm = load_model(str(model_dir))
    print(f"model {model_dir}: {metrics['steps']} steps, {metrics['seconds'] / 60:.0f} min, validation loss "
          f"{metrics['validation_loss']:.3f} nats/token; held-out {len(held_articles)} articles, {len(held)} questions; "
          f"torch threads {torch.get_num_threads()}")

    # 1. question generation given the gold answer
    mp = settings["max_passage_chars"]
    pairs = []
    for it in held:
        ch = chunk_with_answer(it.passage, it.answer_start, it.answer, mp)
        if ch is None:  # answer longer than a chunk: centre a window on its start
            s = max(0, it.answer_start - mp // 4)
            ch = (s, it.passage[s: s + mp])
        pairs.append(ch[1])
    with Timer() as t_qg:
        hyps = generate_questions(lm, [(c, it.answer) for c, it in zip(pairs, held)], beam_size=args.beam_size,
                                  max_question_len=settings["max_question_len"], max_answer_len=settings["max_answer_len"])
    refs = [it.question for it in held]
    tmpl = [template_question(it.passage, it.answer_start, it.answer) for it in held]
    rows = [
        ["nlptool qa (beam %d)" % args.beam_size, f"{bleu4(hyps, refs):.2f}", f"{100 * rouge_l(hyps, refs):.2f}",
         f"{len(held) / t_qg.seconds:.1f}"],
        ["template (sentence, answer -> 什么)", f"{bleu4(tmpl, refs):.2f}", f"{100 * rouge_l(tmpl, refs):.2f}", "-"],
    ]
    print(f"\nQuestion generation given the gold answer ({len(held)} held-out questions)\n")
    print(table(rows, ["method", "BLEU-4", "ROUGE-L (chars)", "questions/s"]))

    # 2. full generation on the held-out passages, copy-constrained (default) and free answers
    passages = list(dict.fromkeys(it.passage for it in held))
    if args.limit_passages:
        passages = passages[: args.limit_passages]
    chars = sum(len(p) for p in passages)
    cols, runs = [], {}
    for copy in (True, False):
        with Timer() as t_gen:
            res = generate_qa_pairs(lm, passages, num_pairs=args.num_pairs, seed=args.seed, beam_size=args.beam_size,
                                    top_p=settings["top_p"], max_answer_len=settings["max_answer_len"],
                                    max_question_len=settings["max_question_len"], max_passage_chars=mp,
                                    copy_answers=copy)
        runs[copy] = res
        cand = sum(r.candidates for r in res)
        filt = {k: sum(r.filtered[k] for r in res) for k in res[0].filtered}
        n_pairs = sum(len(r.pairs) for r in res)
        finished = cand - filt["answer_unfinished"]
        found = finished - filt["answer_not_in_passage"]
        cols.append([
            f"{cand}",
            f"{finished / cand:.3f}",
            f"{found / cand:.3f}",
            *[str(v) for v in filt.values()],
            f"{n_pairs} ({n_pairs / cand:.3f})",
            f"{n_pairs / len(passages):.2f}",
            f"{sum(p['score'] for r in res for p in r.pairs) / max(n_pairs, 1):.3f}",
            f"{n_pairs / t_gen.seconds:.2f} pairs/s, {cand / t_gen.seconds:.1f} samples/s ({t_gen.seconds:.0f} s)",
        ])
    names = ["answer samples", "answers ended within the limit", "answers found in the passage (of samples)",
             *[f"removed: {k.replace('_', ' ')}" for k in res[0].filtered], "pairs kept (of samples)",
             f"distinct questions per passage (of {args.num_pairs})", "mean score (nats/token)", "speed"]
    print(f"\nFull generation on {len(passages)} held-out passages ({chars:,} chars): {args.num_pairs} answer samples "
          f"per passage (top-p {settings['top_p']}, beam {args.beam_size}, seed {args.seed}); peak RSS so far "
          f"{peak_rss_mb():.0f} MiB\n")
    print(table([[n, a, b] for n, a, b in zip(names, cols[0], cols[1])],
                ["measure", "copy-constrained answers (default)", "free answers (--free-answers)"]))
    res = runs[True]
    print("\nFive generated pairs (best-scored pair of the first five passages with one):\n")
    shown = 0
    for p, r in zip(passages, res):
        if r.pairs and shown < 5:
            q = r.pairs[0]
            ctx = p[max(0, q["answer_start"] - 20): q["answer_start"] + len(q["answer"]) + 20].replace("\n", " ")
            print(f"- Q: {q['question']}  A: {q['answer']}  (score {q['score']:.2f}; context: …{ctx}…)")
            shown += 1
    print(f"\n{time.strftime('%Y-%m-%d %H:%M')}; `python benchmarks/bench_qa_gen.py --model {model_dir}`")


if __name__ == "__main__":
    main()

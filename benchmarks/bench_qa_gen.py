"""qa-gen on CMRC 2018 (../shared/data/qa, article-level splits of nlptool.qagen.write_splits):
choose settings on the dev split (``tune``), report on the held-out test articles (``report``).

    python benchmarks/bench_qa_gen.py report                 # built-in zh-qa-gen-mini + zh-reader-mini, test split
    python benchmarks/bench_qa_gen.py report --model DIR --reader DIR
    python benchmarks/bench_qa_gen.py tune --device cuda     # trains the variants on train, measures on dev

``report`` prints
1. question generation given the gold answers (the ``qa-gen`` ``answers`` path): BLEU-4 (sacrebleu
   zh) and character ROUGE-L against the gold questions, beside the template baseline (the answer's
   sentence with the answer replaced by 什么) and the trivial "copy the answer sentence" baseline;
   plus the measured causes (length, answer leaking into the question, repeated 3-grams);
2. full generation on the test passages with the round trip at several ``--min-consistency``
   values (0 = no round trip): pairs kept and precision judged against gold (a kept pair is judged
   when its question is close to a gold question of the passage, char ROUGE-L >= 0.4; it is correct
   when that gold question's answer overlaps the pair's answer, char F1 >= 0.5), and the share of
   kept answers that match a gold answer span;
then five pairs verbatim. ``tune`` prints the same measures on dev for each training variant, a
decoding grid (n-gram blocking x length penalty) and the round-trip threshold table it picks
the default from (the threshold with the best F1 of keeping the gold-correct pairs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED, need, table  # noqa: E402

DATA = [SHARED / "qa" / "cmrc2018_trial.json", SHARED / "qa" / "cmrc2018_dev_part.json"]
THRESHOLDS = [0.0, 0.1, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9]


def splits(build: Path) -> Path:
    from nlptool.qagen import write_splits

    out = build / "qa-data"
    write_splits([str(need(d)) for d in DATA], out)
    return out


def nlptool(*args: str) -> None:
    cmd = [sys.executable, "-m", "nlptool", *args]
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)


def given_answer_rows(name, ev):
    m = ev["model"]
    return [name, m["bleu4"], m["rouge_l"], m["mean_chars"], m["answer_in_question"], m["repeated_char_trigram"], m["empty"]]


def round_trip_table(lm, reader, items, settings, num_pairs=5, seed=0, words=None):
    """Generate on each passage with the reader's consistency recorded (threshold 0), then apply
    each threshold offline. ``words``: the answer-widening segmenter of ``qa-gen`` (None: answers as
    sampled, the behaviour before it). Returns (rows, per-threshold dict, pairs, info)."""
    from nlptool.qagen import generate_qa_pairs, rouge_l_chars
    from nlptool.qagen.reader import char_f1

    gold = defaultdict(list)
    for it in items:
        gold[it.passage].append((it.question, it.answer))
    passages = list(gold)
    t0 = time.time()
    res = generate_qa_pairs(lm, passages, num_pairs=num_pairs, seed=seed, top_p=settings["top_p"],
                            beam_size=settings["beam_size"], max_answer_len=settings["max_answer_len"],
                            max_question_len=settings["max_question_len"], max_passage_chars=settings["max_passage_chars"],
                            no_repeat_ngram=settings["no_repeat_ngram"], length_penalty=settings["length_penalty"],
                            answer_marks=settings["answer_marks"], reader=reader, min_consistency=0.0, batch_size=32,
                            **({"words": words} if words is not None else {}))
    seconds = time.time() - t0
    cut_check = words or _tagger_words()
    pairs = []
    for pi, (p, r) in enumerate(zip(passages, res)):
        bounds = set()
        if r.pairs:
            k = 0
            for w in cut_check([p])[0]:
                bounds.add(k)
                k += len(w)
            bounds.add(k)
        for pair in r.pairs:
            s0 = pair["answer_start"]
            pair = {**pair, "cuts_word": s0 not in bounds or s0 + len(pair["answer"]) not in bounds}
            best_q = max(gold[p], key=lambda g: rouge_l_chars(pair["question"], g[0]))
            judged = rouge_l_chars(pair["question"], best_q[0]) >= 0.4
            pairs.append({**pair, "passage_index": pi, "judged": judged, "correct": judged and char_f1(pair["answer"], best_q[1]) >= 0.5,
                          "answer_gold": max(char_f1(pair["answer"], g[1]) for g in gold[p]) >= 0.5})
    rows, out = threshold_rows(pairs, len(passages))
    cands = sum(r.candidates for r in res)
    return rows, out, pairs, {"passages": len(passages), "samples": cands, "seconds": round(seconds, 1)}


def threshold_rows(pairs, n_passages):
    """The round-trip table of :func:`round_trip_table` from its pairs (each with ``consistency``,
    ``judged``, ``correct``, ``answer_gold``, ``cuts_word``) over ``n_passages`` passages."""
    base_correct = sum(x["correct"] for x in pairs)
    rows, out = [], {}
    for t in THRESHOLDS:
        kept = [x for x in pairs if x["consistency"] >= t]
        judged = [x for x in kept if x["judged"]]
        corr = sum(x["correct"] for x in judged)
        prec = corr / max(1, len(judged))
        rec = corr / max(1, base_correct)
        f1 = 2 * prec * rec / max(1e-9, prec + rec)
        ans = sum(x["answer_gold"] for x in kept) / max(1, len(kept))
        cut = sum(x["cuts_word"] for x in kept) / max(1, len(kept))
        per = len(kept) / max(1, n_passages)
        out[t] = {"kept": len(kept), "judged": len(judged), "precision": prec, "recall": rec, "f1": f1, "answer_gold": ans,
                  "pairs_per_passage": per, "answers_cutting_a_word": cut}
        rows.append([f"{t:.1f}" + (" (no round trip)" if t == 0 else ""), len(kept), f"{per:.2f}", len(judged),
                     f"{prec:.3f}", f"{rec:.3f}", f"{f1:.3f}", f"{ans:.3f}", f"{cut:.3f}"])
    return rows, out


RT_HEAD = ["min consistency", "pairs kept", "per passage", "judged", "precision", "recall of correct", "F1",
           "answers = a gold answer", "answers cutting a word"]


def _tagger_words():
    """The word lists of the built-in segmenter (zh-seg-mini): what qa-gen widens answers to."""
    import functools

    from nlptool.models import default_model, load_model
    from nlptool.qagen.command import tagger_words

    return functools.partial(tagger_words, load_model(default_model("segment --method tagger"), kind="char-tagger"))
QG_HEAD = ["method", "BLEU-4", "ROUGE-L", "mean chars", "answer in question", "repeated 3-gram", "empty"]


def tune(args) -> None:
    import torch

    from nlptool.models import load_model
    from nlptool.qagen import evaluate_qa_gen, read_qa_data
    from nlptool.qagen.reader import load_reader

    build = Path(args.build)
    data = splits(build)
    dev, _ = read_qa_data([data / "dev.jsonl"])
    dev = dev[: args.limit] if args.limit else dev
    results = {"variants": {}, "decoding": {}, "round_trip": {}}
    variants = {
        "plain (Su's format)": ["--no-mark-answer", "--label-smoothing", "0"],
        "answer marks": ["--mark-answer", "--label-smoothing", "0"],
        "answer marks + label smoothing 0.1": ["--mark-answer", "--label-smoothing", "0.1"],
    }
    rows, best = [], None
    for name, flags in variants.items():
        out = build / "tune" / name.split(" (")[0].replace(" ", "_").replace("+", "").replace(".", "")
        nlptool("train", "qa-gen", str(data / "train.jsonl"), "--eval", str(data / "dev.jsonl"), "--out", str(out),
                "--model", args.base, "--epochs", str(args.epochs), "--batch-size", "128", "--learning-rate", "5e-4",
                "--device", args.device, "--quiet", *flags)
        metrics = json.loads((out / "metrics.json").read_text())
        lm = load_model(str(out), device=args.device)
        ev = evaluate_qa_gen(lm, dev, no_repeat_ngram=0, length_penalty=1.0)
        results["variants"][name] = {"eval": ev, "validation_loss": metrics["validation_loss"], "seconds": metrics["seconds"],
                                     "steps": metrics["steps"]}
        rows.append(given_answer_rows(name, ev) + [f"{metrics['validation_loss']:.3f}", metrics["seconds"]])
        print("variant:", rows[-1], flush=True)
        score = ev["model"]["bleu4"] + ev["model"]["rouge_l"]
        if best is None or score > best[0]:
            best = (score, name, out)
        del lm
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    rows.append(given_answer_rows("template (answer -> 什么)", {"model": ev["template"]}) + ["-", "-"])
    print(f"\nDev split ({len(dev)} questions), given the gold answers, beam 4, no blocking, length penalty 1\n")
    print(table(rows, [*QG_HEAD, "val loss", "train s"]))
    _, best_name, best_dir = best
    lm = load_model(str(best_dir), device=args.device)
    grid = []
    for nr in (0, 2, 3):
        for lp in (0.5, 1.0, 1.5):
            ev = evaluate_qa_gen(lm, dev, no_repeat_ngram=nr, length_penalty=lp)
            results["decoding"][f"{nr}/{lp}"] = ev["model"]
            grid.append(given_answer_rows(f"no-repeat {nr}, length penalty {lp}", ev))
    print(f"\nDecoding grid on dev ({best_name})\n")
    print(table(grid, QG_HEAD))
    reader_dir = build / "tune" / "reader"
    nlptool("train", "reader", str(data / "train.jsonl"), "--eval", str(data / "dev.jsonl"), "--out", str(reader_dir),
            "--model", args.base, "--epochs", str(args.reader_epochs), "--batch-size", "64", "--learning-rate", "3e-4", "--device", args.device,
            "--quiet")
    rm = json.loads((reader_dir / "metrics.json").read_text())
    print(f"\nReader on dev: {rm['heldout']} ({rm['seconds']} s)")
    results["reader"] = rm["heldout"]
    rd = load_reader(str(reader_dir), device=args.device)
    best_dec = max(results["decoding"].items(), key=lambda kv: kv[1]["bleu4"] + kv[1]["rouge_l"])[0]
    nr, lp = best_dec.split("/")
    settings = dict(json.loads((best_dir / "nlptool_qa_gen.json").read_text()), no_repeat_ngram=int(nr), length_penalty=float(lp))
    rows, out, _, info = round_trip_table(lm, rd, dev, settings)
    results["round_trip"] = out
    pick = max(THRESHOLDS[1:], key=lambda t: out[t]["f1"])
    print(f"\nRound trip on dev passages ({info}); decoding {best_dec}; chosen default --min-consistency {pick}\n")
    print(table(rows, RT_HEAD))
    results.update(best_variant=best_name, best_decoding=best_dec, min_consistency=pick)
    Path(args.json).write_text(json.dumps(results, indent=1, ensure_ascii=False, default=str))


def report(args) -> None:
    from nlptool.models import load_model
    from nlptool.qagen import check_generator, evaluate_qa_gen, read_qa_data
    from nlptool.qagen.reader import evaluate_reader, load_reader

    data = splits(Path(args.build))
    test, _ = read_qa_data([data / f"{args.split}.jsonl"])
    test = test[: args.limit] if args.limit else test
    lm = load_model(args.model, device=args.device)
    settings = check_generator(lm)
    ev = None
    if not args.round_trip_only:
        t0 = time.time()
        ev = evaluate_qa_gen(lm, test)
        qs = len(test) / (time.time() - t0)
        sent = dict(ev["template"])
        print(f"\n{args.split} split: {len(test)} questions on {ev['passages']} passages, given the gold "
              f"answers ({args.model}, settings {ev['settings']}, {qs:.1f} questions/s)\n")
        print(table([given_answer_rows(args.model, ev), given_answer_rows("template (answer -> 什么)", {"model": sent})],
                    QG_HEAD) + f"\n\ngold questions: {ev['gold']['mean_chars']} chars on average")
    rd = load_reader(args.reader, device=args.device)
    print(f"\nReader {args.reader} on the test questions: {evaluate_reader(rd, test)}")
    if args.num_pairs is None:
        from nlptool.qagen.data import DEFAULTS

        args.num_pairs = DEFAULTS["num_pairs"]
    words = None if args.sampled_answers else _tagger_words()
    rows, out, pairs, info = round_trip_table(lm, rd, test, settings, num_pairs=args.num_pairs, seed=args.seed,
                                              words=words)
    print(f"\nFull generation on the {args.split} passages ({info}, {args.num_pairs} samples per passage, seed {args.seed}, "
          f"answers {'as sampled' if args.sampled_answers else 'widened to whole words'}); "
          f"default --min-consistency {settings['min_consistency']}\n")
    print(table(rows, RT_HEAD))
    if args.halves:  # choose on A (even passages), report on B (odd)
        for name, r in (("A", 0), ("B", 1)):
            sub = [x for x in pairs if x["passage_index"] % 2 == r]
            n_sub = len(range(r, info["passages"], 2))
            print(f"\nhalf {name} ({n_sub} passages, {'even' if r == 0 else 'odd'} positions)\n")
            print(table(threshold_rows(sub, n_sub)[0], RT_HEAD))
    print("\nFirst five kept pairs (default threshold):\n")
    for x in [x for x in pairs if x["consistency"] >= settings["min_consistency"]][:5]:
        print(f"- Q: {x['question']}  A: {x['answer']}  (score {x['score']:.2f}, consistency {x['consistency']:.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps({"given_answers": ev, "round_trip": out, "generation": info, "pairs": pairs}, indent=1,
                                              ensure_ascii=False, default=str))
    print(f"\n{time.strftime('%Y-%m-%d %H:%M')}; `python benchmarks/bench_qa_gen.py report --model {args.model} --reader {args.reader}`")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("tune")
    t.add_argument("--base", default=str(ROOT / "nlptool" / "data" / "models" / "zh-bert-mini"))
    t.add_argument("--epochs", default="30")
    t.add_argument("--reader-epochs", default="15")
    t.add_argument("--json", default=str(ROOT / "build" / "qa-tune.json"))
    r = sub.add_parser("report")
    r.add_argument("--model", default="zh-qa-gen-mini")
    r.add_argument("--reader", default="zh-reader-mini")
    r.add_argument("--num-pairs", type=int, default=None, help="answer samples per passage (default: qa-gen's)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--json", default=None)
    r.add_argument("--round-trip-only", action="store_true", help="skip the given-answer evaluation (BLEU/ROUGE)")
    r.add_argument("--split", default="test", choices=["test", "dev"], help="the split to measure on (dev: for choosing)")
    r.add_argument("--sampled-answers", action="store_true",
                   help="answers as sampled, not widened to whole words (qa-gen before the widening)")
    r.add_argument("--halves", action="store_true",
                   help="also the round-trip table on half A (even passages: for choosing) and half B (odd: the check)")
    for p in (t, r):
        p.add_argument("--build", default=str(ROOT / "build"))
        p.add_argument("--device", default="auto")
        p.add_argument("--limit", type=int, default=None, help="first N questions only (smoke test)")
    args = ap.parse_args()
    tune(args) if args.mode == "tune" else report(args)


if __name__ == "__main__":
    main()

"""Benchmark `nlptool split-valid` (adversarial validation) on a real category shift.

Data: $NLPTOOL_SHARED_DATA/shift/online_shopping_10_cats.zip (default ../shared/data; 62,774 product reviews, CSV
`cat,label,review`, 10 categories; skipped cleanly when absent).

Split (per seed s):
  * source categories S = 平板, 水果, 洗发水, 衣服, 酒店 (50,000 reviews);
    other categories  T = 书籍, 手机, 热水器, 蒙牛, 计算机 (12,774 reviews);
  * train = all of S + a random 10 % of T (1,277 reviews, drawn with seed s) = 51,277 rows,
    written in the CSV's order; test = the other 90 % of T (11,497 rows). train + test = all
    62,774 reviews, so every run of the command is the "whole command on all reviews" measurement.
  * control: the same sizes drawn at random from all 62,774 reviews (no shift), seed s.

For each seed the script runs the real command in a subprocess
    python -m nlptool split-valid --train train.jsonl --test test.jsonl \
        --out-train out_train.jsonl --out-valid out_valid.jsonl --valid-size 0.05 \
        --report report.json --seed s --quiet
and records its wall time and peak resident memory (ru_maxrss of the child, via os.wait4).

Then the claim the method exists for: a sentiment classifier (TF-IDF over char 1-2-grams + logistic
regression) trained on out-train; its accuracy on the adversarial validation set (out-valid) is
compared with its accuracy on the test set. As the baseline, a random validation set of the same
size is drawn from train (seed s), the same classifier is trained on the rest of train, and its
accuracy on that random validation set is compared with its accuracy on the test set.
The table reports |acc(valid) − acc(test)| for both: the smaller gap is the validation set that
predicts test performance better.

Usage: python benchmarks/bench_split_valid.py [--seeds 0 1 2] [--valid-size 0.05]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(os.environ.get("NLPTOOL_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data"), "shift", "online_shopping_10_cats.zip")
SOURCE = ("平板", "水果", "洗发水", "衣服", "酒店")
SHARE = 0.10


def load_rows():
    with zipfile.ZipFile(DATA) as z:
        text = z.read("online_shopping_10_cats.csv").decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))[1:]
    return [{"cat": c, "label": int(lab), "text": t.lstrip("\ufeff")} for c, lab, t in rows]


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def read_jsonl(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def run_command(args):
    """Run the command; return (wall seconds, CPU seconds (user + system), peak RSS MiB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "nlptool", *args], cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"command failed with exit code {proc.returncode}: {' '.join(args)}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def sentiment_accuracy(train_rows, eval_sets):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    X = vec.fit_transform([r["text"] for r in train_rows])
    clf = LogisticRegression(C=4.0, solver="liblinear").fit(X, [r["label"] for r in train_rows])
    out = []
    for rows in eval_sets:
        pred = clf.predict(vec.transform([r["text"] for r in rows]))
        out.append(float(np.mean(pred == np.array([r["label"] for r in rows]))))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--valid-size", default="0.05")
    ap.add_argument("--no-control", action="store_true", help="skip the random-split control runs")
    args = ap.parse_args()
    if not os.path.exists(DATA):
        print(f"SKIP: {os.path.normpath(DATA)} is missing (the shared data folder is not on this machine)")
        return 0
    rows = load_rows()
    n_all = len(rows)
    src = [i for i, r in enumerate(rows) if r["cat"] in SOURCE]
    oth = [i for i, r in enumerate(rows) if r["cat"] not in SOURCE]
    print(f"{n_all:,} reviews; S = {', '.join(SOURCE)} ({len(src):,}); T = the other 5 categories ({len(oth):,}); "
          f"train = S + {SHARE:.0%} of T, test = rest of T; --valid-size {args.valid_size}\n")
    shift_rows, gap_rows, speed_rows = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-split-valid-") as tmp:
        for seed in args.seeds:
            rng = np.random.default_rng(seed)
            perm = rng.permutation(oth)
            n_share = int(round(SHARE * len(oth)))
            tr_idx = sorted(src + list(perm[:n_share]))
            te_idx = sorted(perm[n_share:])
            train, test = [rows[i] for i in tr_idx], [rows[i] for i in te_idx]
            f = {k: os.path.join(tmp, f"{k}.jsonl") for k in ("train", "test", "out_train", "out_valid")}
            f["report"] = os.path.join(tmp, "report.json")
            write_jsonl(f["train"], train)
            write_jsonl(f["test"], test)
            wall, cpu, rss = run_command([
                "split-valid", "--train", f["train"], "--test", f["test"], "--out-train", f["out_train"],
                "--out-valid", f["out_valid"], "--valid-size", args.valid_size, "--report", f["report"],
                "--seed", str(seed), "--quiet",
            ])
            rep = json.load(open(f["report"], encoding="utf-8"))
            speed_rows.append((seed, "shifted", len(train), len(test), wall, cpu, rss))
            # losslessness, independently of the command's own check
            with open(f["train"], "rb") as a, open(f["out_train"], "rb") as b, open(f["out_valid"], "rb") as c:
                lines_in, lines_tr, lines_va = a.read().splitlines(True), b.read().splitlines(True), c.read().splitlines(True)
            assert sorted(lines_in) == sorted(lines_tr + lines_va), "outputs are not a partition of the input"
            out_train, out_valid = read_jsonl(f["out_train"]), read_jsonl(f["out_valid"])
            share_t = float(np.mean([r["cat"] not in SOURCE for r in out_valid]))
            ctrl_auc = ctrl_ci = None
            if not args.no_control:
                cperm = rng.permutation(n_all)
                c_tr = sorted(cperm[: len(train)])
                c_te = sorted(cperm[len(train):])
                write_jsonl(f["train"], [rows[i] for i in c_tr])
                write_jsonl(f["test"], [rows[i] for i in c_te])
                cw, ccpu, crss = run_command([
                    "split-valid", "--train", f["train"], "--test", f["test"], "--out-train", f["out_train"],
                    "--out-valid", f["out_valid"], "--valid-size", args.valid_size, "--report", f["report"],
                    "--seed", str(seed), "--quiet",
                ])
                crep = json.load(open(f["report"], encoding="utf-8"))
                ctrl_auc, ctrl_ci = crep["auc"], crep["auc_ci95"]
                speed_rows.append((seed, "random", len(c_tr), len(c_te), cw, ccpu, crss))
            shift_rows.append((seed, rep["auc"], rep["auc_ci95"], rep["drift_score"], rep["shift"],
                               rep["p_test_mean"]["valid"], rep["p_test_mean"]["rest"], share_t,
                               len(out_valid), ctrl_auc, ctrl_ci))
            # sentiment classifier: adversarial split vs a random split of the same size
            acc_av, acc_av_test = sentiment_accuracy(out_train, [out_valid, test])
            k = len(out_valid)
            rperm = rng.permutation(len(train))
            r_valid = [train[i] for i in sorted(rperm[:k])]
            r_train = [train[i] for i in sorted(rperm[k:])]
            acc_rv, acc_rv_test = sentiment_accuracy(r_train, [r_valid, test])
            gap_rows.append((seed, None, acc_av, acc_av_test, acc_rv, acc_rv_test))
            print(f"seed {seed}: AUC {rep['auc']:.3f}, control {ctrl_auc}, wall {wall:.0f}s, cpu {cpu:.0f}s, "
                  f"peak {rss:.0f} MiB; gaps {abs(acc_av - acc_av_test):.4f} vs {abs(acc_rv - acc_rv_test):.4f}", flush=True)

    print("\n### Shift detection (out-of-fold adversarial AUC, bootstrap 95% CI)\n")
    print("| seed | AUC shifted split | drift score | verdict | mean p(test) valid / rest | share of T rows in valid "
          "| AUC random split (control) |")
    print("|---:|---|---:|---|---|---:|---|")
    for seed, auc, ci, ds, lvl, pv, pr, share_t, k, cauc, cci in shift_rows:
        ctrl = f"{cauc:.3f} ({cci[0]:.3f}-{cci[1]:.3f})" if cauc is not None else "-"
        print(f"| {seed} | {auc:.3f} ({ci[0]:.3f}-{ci[1]:.3f}) | {ds:.3f} | {lvl} | {pv:.3f} / {pr:.3f} | "
              f"{share_t:.1%} of {k:,} | {ctrl} |")
    print(f"\n(T rows make up {SHARE * len(oth) / (len(src) + SHARE * len(oth)):.1%} of train.)")

    print("\n### Sentiment accuracy: does the validation set predict test accuracy?\n")
    print("| seed | adversarial valid | test (trained on out-train) | gap | random valid | test (trained on rest) | gap |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    ga, gr = [], []
    for seed, _, av, avt, rv, rvt in gap_rows:
        ga.append(abs(av - avt))
        gr.append(abs(rv - rvt))
        print(f"| {seed} | {av:.4f} | {avt:.4f} | {abs(av - avt):.4f} | {rv:.4f} | {rvt:.4f} | {abs(rv - rvt):.4f} |")
    print(f"| mean | | | **{np.mean(ga):.4f}** | | | **{np.mean(gr):.4f}** |")

    print("\n### Speed: the whole command (subprocess: start-up, reading, features, 5 folds + final fit, "
          "bootstrap, writing, lossless check)\n")
    print("| seed | split | train rows | test rows | wall time (s) | CPU time (s) | peak RSS (MiB) |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for seed, kind, ntr, nte, wall, cpu, rss in speed_rows:
        print(f"| {seed} | {kind} | {ntr:,} | {nte:,} | {wall:.1f} | {cpu:.1f} | {rss:.0f} |")
    print(f"\nmachine: {os.cpu_count()} CPUs, niceness {os.nice(0)}, load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())

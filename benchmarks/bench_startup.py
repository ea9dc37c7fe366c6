"""Start-up cost of every command: one short line through a fresh process, as a cron job or a
pipe pays it on every call, beside the floors it cannot go below (starting Python, importing torch,
importing transformers).

    python benchmarks/bench_startup.py [--repeat 3] [--only similarity] [--baseline DIR]

Prints a table of median wall seconds (and CPU seconds of the child) per command, and each row's
ratio to the ``import torch`` floor. Wall times move with the machine's load; CPU seconds move less.
``--only`` times the rows whose name starts with one of the given words (comma-separated), beside
the two floors (``python``, ``import torch``), each row in turn within a round so that a change of
load hits them alike. ``--baseline DIR`` also times every ``nlptool`` row with the package of an
older tree (``git worktree add DIR COMMIT``; ``python -m nlptool`` run in DIR imports DIR's
``nlptool``), alternately with the current one in the same rounds: a before/after on one load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

PY = sys.executable
LINE = "长江是中国第一长河。"


def _run(cmd: list[str], stdin: str, cwd: str | None = None) -> tuple[float, float, int]:
    """Wall and CPU seconds of one run; exit code 99 when it wrote an error record (a timing of an
    error path is not a start-up measurement)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, input=stdin.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rc = proc.returncode
    if rc != 0:
        sys.stderr.write(f"{' '.join(cmd)}: exit {rc}: {proc.stderr.decode()[-300:]}\n")
    elif b'"error":' in proc.stdout:
        sys.stderr.write(f"{' '.join(cmd)}: wrote an error record: {proc.stdout.decode()[:300]}\n")
        rc = 99
    return wall, cpu, rc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated prefixes of row names (the floors are always timed)")
    ap.add_argument("--baseline", default="", metavar="DIR",
                    help="also time the nlptool rows with the nlptool package in DIR (an older checkout), alternately")
    args = ap.parse_args()
    if args.baseline and not os.path.isfile(os.path.join(args.baseline, "nlptool", "__main__.py")):
        ap.error(f"--baseline {args.baseline}: no nlptool/__main__.py there")
    tmp = tempfile.mkdtemp()
    pairs = os.path.join(tmp, "pairs.jsonl")
    with open(pairs, "w", encoding="utf-8") as fh:
        fh.write(json.dumps({"sentence1": "今天天气很好", "sentence2": "今天天气不错"}, ensure_ascii=False) + "\n")
    train_txt, test_txt = os.path.join(tmp, "train.txt"), os.path.join(tmp, "test.txt")
    with open(train_txt, "w", encoding="utf-8") as fh:
        fh.write("\n".join(["今天天气很好", "我喜欢这本书", "这部电影很精彩", "股票市场大涨", "酒店服务很差"] * 4) + "\n")
    with open(test_txt, "w", encoding="utf-8") as fh:
        fh.write("\n".join(["天气不错", "书很好看", "电影一般", "市场下跌", "服务不好", "天气晴朗"]) + "\n")
    nl = [PY, "-m", "nlptool"]
    rows = [
        ("python (no imports)", [PY, "-c", "pass"], ""),
        ("import torch", [PY, "-c", "import torch"], ""),
        ("import transformers.BertModel", [PY, "-c", "from transformers import BertModel"], ""),
        ("nlptool --help", nl + ["--help"], ""),
        ("tokenize-sample", nl + ["tokenize-sample", "-q"], LINE + "\n"),
        ("wordvec-dim", nl + ["wordvec-dim", "-N", "100000", "-q"], ""),
        ("segment (default method)", nl + ["segment", "-q"], LINE + "\n"),
        ("segment --method tagger", nl + ["segment", "--method", "tagger", "-q"], LINE + "\n"),
        ("segment --method masking", nl + ["segment", "--method", "masking", "-q"], LINE + "\n"),
        ("similarity", nl + ["similarity", pairs, "-q"], ""),
        ("similarity --pool mean", nl + ["similarity", pairs, "--pool", "mean", "-q"], ""),
        ("attribute", nl + ["attribute", "-q"], "这家酒店服务太差了\n"),
        ("qa-gen", nl + ["qa-gen", "-q", "--seed", "0"], LINE + "\n"),
        ("split-valid (tfidf, 20 + 6 lines)", nl + ["split-valid", "--train", train_txt, "--test", test_txt, "--weights",
                                                   os.path.join(tmp, "w.jsonl"), "--folds", "2", "--bootstrap", "0", "-q"], ""),
    ]
    if args.only:
        prefixes = tuple(p.strip() for p in args.only.split(",") if p.strip())
        rows = [r for r in rows if r[0] in ("python (no imports)", "import torch") or r[0].startswith(prefixes)]
    timed = [(name, cmd, stdin, None) for name, cmd, stdin in rows]
    if args.baseline:  # each nlptool row twice in a round: the baseline tree's package, then this one's
        timed = [t for name, cmd, stdin, _ in timed
                 for t in ([(f"{name} [baseline]", cmd, stdin, args.baseline)] if cmd[1:3] == ["-m", "nlptool"] else [])
                 + [(name, cmd, stdin, None)]]
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    print(f"| command (one line, fresh process) | wall s (median of {args.repeat}) | CPU s | x `import torch` | exit |")
    print("|---|---|---|---|---|")
    medians = {}
    runs: dict[str, list] = {name: [] for name, _, _, _ in timed}
    if args.only or args.baseline:  # rounds: every row once per round
        for _ in range(args.repeat):
            for name, cmd, stdin, cwd in timed:
                runs[name].append(_run(cmd, stdin, cwd))
    for name, cmd, stdin, cwd in timed:
        res = runs[name] if runs[name] else [_run(cmd, stdin, cwd) for _ in range(args.repeat)]
        walls, cpus, codes = [r[0] for r in res], [r[1] for r in res], {r[2] for r in res}
        medians[name] = statistics.median(walls)
        ratio = f"{medians[name] / medians['import torch']:.2f}x" if "import torch" in medians else ""
        print(f"| {name} | {medians[name]:.2f} | {statistics.median(cpus):.2f} | {ratio} | "
              f"{','.join(map(str, sorted(codes)))} |", flush=True)
    floor = medians["import torch"]
    print(f"\nover the `import torch` floor (aim: <= 1.3x), load average now {os.getloadavg()[0]:.2f}:")
    for name, _, _, _ in timed:
        if name not in ("python (no imports)", "import torch"):
            print(f"  {name}: {medians[name] / floor:.2f}x ({medians[name] - floor:+.2f} s)")


if __name__ == "__main__":
    main()

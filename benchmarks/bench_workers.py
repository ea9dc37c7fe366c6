"""Throughput of `nlptool segment --method masking` (Perturbed Masking, built-in zh-bert-mini) on
PKU test sentences: the local engine vs `--engine ray` with 1 and 2 CPU workers, and the check
that every engine's output is byte-for-byte the local one. Reads NLPTOOL_SHARED_DATA
(default ../shared/data). Usage: python benchmarks/bench_workers.py [N_LINES]"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("NLPTOOL_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))


def main(n: int = 200) -> None:
    src = os.path.join(DATA, "sighan2005", "pku_test.utf8")
    if not os.path.exists(src):
        print(f"skipped: {src} not found (set NLPTOOL_SHARED_DATA)")
        return
    tmp = tempfile.mkdtemp()
    inp = os.path.join(tmp, "in.txt")
    with open(src, encoding="utf-8") as fh, open(inp, "w", encoding="utf-8") as out:
        lines = [x.strip() for x in fh if x.strip()][:n]
        out.write("\n".join(lines) + "\n")
    chars = sum(map(len, lines))
    base = [sys.executable, "-m", "nlptool", "segment", inp, "--method", "masking", "--device", "cpu", "-q"]
    runs = [("local", []), ("ray, 1 worker", ["--engine", "ray", "--workers", "1", "--chunk-size", "50"]),
            ("ray, 2 workers", ["--engine", "ray", "--workers", "2", "--chunk-size", "50"])]
    ref = None
    print(f"{n} PKU test sentences, {chars:,} characters, {os.cpu_count()} CPU cores")
    print("| engine | wall s (incl. start-up) | chars/s | same bytes as local |\n|---|---|---|---|")
    for name, extra in runs:
        out = os.path.join(tmp, name.replace(" ", "_").replace(",", "") + ".jsonl")
        t = time.perf_counter()
        subprocess.run([*base, *extra, "-o", out], check=True, stderr=subprocess.DEVNULL)
        dt = time.perf_counter() - t
        data = open(out, "rb").read()
        ref = ref if ref is not None else data
        print(f"| {name} | {dt:.1f} | {chars / dt:,.0f} | {data == ref} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)

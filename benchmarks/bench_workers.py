"""Throughput per CPU worker of the record commands on each engine: the local CLI, `--engine ray`,
Spark (examples/spark_map_in_pandas.py) and Dask (examples/dask_map_partitions.py), and the check
that every engine's output equals the local one record for record (byte for byte where the engine
writes the CLI's lines).

Commands and inputs (real data from NLPTOOL_SHARED_DATA, default ../shared/data, read at run time):
`segment --method tagger` and `--method masking` and `tokenize-sample --seed 1` on SIGHAN 2005 PKU
test sentences (repeated when more lines are asked for than the file has), `similarity` on
Chinese STS-B valid pairs. Each input is JSON lines with an `id` (the 0-based line number) so
`tokenize-sample`'s per-record seed is the same on every engine.

Every run is a fresh process with OMP_NUM_THREADS=1 (one CPU thread per worker; Ray does the same
for its actors) and one worker by default. Each command runs twice per engine: on the first two
records (start-up: interpreter, engine, model load) and on all of them; "chars/s per worker" is
(chars - chars of the 2-record run) / (wall - start-up wall), the rate once started. "same as
local": bytes; records (the same JSON objects in order); records ~1e-6 (floats within 1e-6
relative: similarity's float32 scores change in their last digits with which pairs share a batch).

    python benchmarks/bench_workers.py [--engines local,ray,spark,dask] [--tasks tagger,masking,sample,similarity]
                                       [--workers 1] [--scale 1.0]

Engines whose package is missing (ray, pyspark + Java, dask) are reported as skipped.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("NLPTOOL_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
EXAMPLES = os.path.join(ROOT, "examples")

# name -> (CLI arguments, worker class and options, input, default records, Spark schemas)
TASKS = {
    "tagger": (["segment", "--method", "tagger"], ("Segmenter", {"method": "tagger"}), "pku", 5832,
               "words array<string>"),
    "masking": (["segment", "--method", "masking"], ("Segmenter", {"method": "masking"}), "pku", 200,
                "words array<string>"),
    "sample": (["tokenize-sample", "--seed", "1"], ("Sampler", {"seed": 1, "index_key": "id"}), "pku", 19440,
               "tokens array<string>, logp double"),
    "similarity": (["similarity"], ("Similarity", {}), "sts", 1458, "wmd double, wrd double, similarity double"),
}
IN_SCHEMA = {"pku": "id long, text string", "sts": "id long, sentence1 string, sentence2 string"}


def _example(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _worker(task: str):
    from nlptool import workers

    cls, options = TASKS[task][1]
    return getattr(workers, cls)(**options)


def engine_run(engine: str, task: str, inp: str, out: str, n_workers: int) -> None:
    """Run one command on Spark or Dask through the example's ``run`` (a child process of main)."""
    if engine == "spark":
        from pyspark.sql import SparkSession

        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        spark = (SparkSession.builder.master(f"local[{n_workers}]").config("spark.ui.enabled", "false")
                 .getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        schema = IN_SCHEMA[TASKS[task][2]]
        _example("spark_map_in_pandas").run(spark, inp, out, _worker(task), schema,
                                            f"{schema}, {TASKS[task][4]}, error string")
        spark.stop()
    elif engine == "dask":
        _example("dask_map_partitions").run(inp, out, _worker(task), workers=n_workers)
    else:
        raise SystemExit(f"unknown engine {engine}")


def _available(engine: str) -> str | None:
    """None when the engine can run here, else why not."""
    need = {"ray": "ray", "spark": "pyspark", "dask": "dask"}.get(engine)
    if need and importlib.util.find_spec(need) is None:
        return f"{need} not installed"
    if engine == "spark" and shutil.which("java") is None:
        return "no Java"
    return None


def _inputs(tmp: str, scale: float) -> dict[str, tuple[str, int]]:
    """Write each task's input (all records and the first two); return task -> (path, chars)."""
    pku = os.path.join(DATA, "sighan2005", "pku_test.utf8")
    sts = os.path.join(DATA, "sts", "STS-B.valid.data")
    with open(pku, encoding="utf-8") as fh:
        sents = [x.strip() for x in fh if x.strip()]
    with open(sts, encoding="utf-8") as fh:
        pairs = [x.rstrip("\n").split("\t")[:2] for x in fh if x.strip()]
    out = {}
    for task, (_, _, kind, n, _) in TASKS.items():
        n = max(3, int(n * scale))
        if kind == "pku":
            rows = [{"id": i, "text": sents[i % len(sents)]} for i in range(n)]
        else:
            rows = [{"id": i, "sentence1": a, "sentence2": b} for i, (a, b) in enumerate(pairs[:n])]
        for suffix, part in (("", rows), (".head", rows[:2])):
            with open(os.path.join(tmp, task + suffix + ".jsonl"), "w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in part)
        chars = [sum(len(v) for k, v in r.items() if k != "id") for r in rows]
        out[task] = (os.path.join(tmp, task + ".jsonl"), len(rows), sum(chars), sum(chars[:2]))
    return out


def _run(engine: str, task: str, inp: str, out: str, n_workers: int) -> tuple[float, list[bytes]]:
    """Wall seconds of one run and its output lines (files of a directory read in name order)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    if engine in ("local", "ray"):
        cmd = [sys.executable, "-m", "nlptool", *TASKS[task][0], inp, "-q", "-o", out]
        if engine == "ray":
            cmd += ["--engine", "ray", "--workers", str(n_workers)]  # the local engine's chunk size
    else:
        cmd = [sys.executable, os.path.abspath(__file__), "--run", engine, task, inp, out, str(n_workers)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    dt = time.perf_counter() - t
    files = [out] if os.path.isfile(out) else sorted(glob.glob(os.path.join(out, "*.json*")))
    lines = [x for f in files for x in open(f, "rb").read().splitlines()]
    return dt, lines


def _close(a, b, rel: float = 1e-6) -> bool:
    """Equal, except floats within ``rel`` (relative, or absolute near 0)."""
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= rel * max(1.0, abs(a), abs(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, rel) for x, y in zip(a, b))
    return a == b


def _same(local: list[bytes], other: list[bytes]) -> str:
    """How the output equals the local one: "bytes", "records" (the same JSON objects, in order),
    "records ~1e-6" (floats within 1e-6 relative), or how many records differ."""
    if other == local:
        return "bytes"

    def rec(line: bytes) -> dict:
        obj = json.loads(line)
        if obj.get("error", "") is None:  # Spark/pandas write a null error; the CLI writes none
            del obj["error"]
        return obj

    a, b = [rec(x) for x in local], [rec(x) for x in other]
    if a == b:
        return "records"
    if len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b)):
        return "records ~1e-6"
    return f"NO: {sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))} of {len(a)} differ"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default="local,ray,spark,dask")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every input's record count")
    args = ap.parse_args()
    if not os.path.isdir(DATA):
        print(f"skipped: {DATA} not found (set NLPTOOL_SHARED_DATA)")
        return
    tmp = tempfile.mkdtemp(prefix="bench-workers-")
    inputs = _inputs(tmp, args.scale)
    engines = args.engines.split(",")
    print(f"{os.cpu_count()} CPU cores, {args.workers} worker(s) per engine, OMP_NUM_THREADS=1")
    print("| command | engine | records | chars | wall s | start-up s | chars/s per worker | records/s | same as local |")
    print("|---|---|---|---|---|---|---|---|---|")
    for task in args.tasks.split(","):
        inp, n, chars, head_chars = inputs[task]
        local = None
        for engine in engines:
            why = _available(engine)
            label = " ".join(TASKS[task][0])
            if why:
                print(f"| `{label}` | {engine} | skipped: {why} | | | | | | |")
                continue
            out = os.path.join(tmp, f"{task}.{engine}")
            t0, _ = _run(engine, task, inp.replace(".jsonl", ".head.jsonl"), out + ".head", args.workers)
            dt, lines = _run(engine, task, inp, out, args.workers)
            local = lines if engine == "local" or local is None else local
            rate = (chars - head_chars) / (dt - t0) if dt > t0 else float("nan")
            rps = (n - 2) / (dt - t0) if dt > t0 else float("nan")
            print(f"| `{label}` | {engine} | {n:,} | {chars:,} | {dt:.1f} | {t0:.1f} | {rate:,.0f} | {rps:,.1f} | "
                  f"{_same(local, lines) if len(lines) == n else f'NO: {len(lines)} lines'} |", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--run":
        engine_run(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
    else:
        main()

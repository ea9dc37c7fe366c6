"""Record every CLI command's output bytes on the sample data and small fixtures, and compare later.

A refactoring that must not change behaviour (the command objects, the package layout) is checked
with it: record on the commit before, compare on the commit after, on the same machine::

    git worktree add /tmp/before <old commit>
    (cd /tmp/before && .venv/bin/python tests/cli_golden.py record /tmp/golden.json)   # or PYTHONPATH=/tmp/before
    .venv/bin/python tests/cli_golden.py compare /tmp/golden.json

Each case runs ``python -m nlptool ...`` in a scratch directory and records its exit code, stdout
bytes (SHA-256 and the first 300 characters) and the bytes of every output file it names.
Float outputs are compared byte for byte: run both sides on the same machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DICT = "我 10\n爱 10\n北京 20\n北 5\n京 5\n天安门 10\n天安 3\n门 4\n我爱 2\n"
PAIRS = "今天天气很好\t今天天气不错\n今天天气很好\t股市大跌\n桂林山水在哪个省\t桂林山水在哪个市\n我爱北京天安门\t北京天安门很美丽\n"
LIST_REFS = [{"sentence1": "今天天气很好", "sentence2": ["今天天气不错", "股市大跌"]},
             {"sentence1": "好", "sentence2": "坏", "id": 7},
             {"sentence1": 5, "sentence2": "坏"}]
REVIEWS = "这家酒店服务太差了\n房间很干净，早餐也不错\n\n一般般吧\n"
TRAIN = "\n".join(["今天天气很好", "股市大跌", "我爱北京天安门", "北京天安门很美丽", "这家酒店服务太差了",
                   "房间很干净", "早餐也不错", "我们去公园吧", "他们来到北京", "结婚的和尚未结婚的"] * 3) + "\n"
TEST = "今天天气不错\n我爱北京\n天安门广场\n公园很美\n"


def _fixtures(d: str) -> None:
    def w(name, text):
        with open(os.path.join(d, name), "w", encoding="utf-8") as fh:
            fh.write(text)

    with open(os.path.join(ROOT, "data", "sample_zh.txt"), encoding="utf-8") as fh:
        w("sample.txt", fh.read())
    with open(os.path.join(ROOT, "data", "sample_passages.jsonl"), encoding="utf-8") as fh:
        w("passages.jsonl", fh.read())
    w("dict.txt", DICT)
    w("pairs.tsv", PAIRS)
    w("refs.jsonl", "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in LIST_REFS))
    w("reviews.txt", REVIEWS)
    w("train.txt", TRAIN)
    w("test.txt", TEST)
    w("words.jsonl", json.dumps({"words": ["然而", "，", "这样", "的", "处理", "也", "衍生", "了", "一些", "问题", "。"]},
                                ensure_ascii=False) + "\n" + '{"text": "他们来到北京天安门广场。"}\n{"text": 3}\nnot json {\n')
    w("mixed.jsonl", '{"text": "我爱北京天安门", "id": 1}\n{"text": ""}\n{"nottext": "x"}\n{"text": "天安门"}\n')
    w("answers.jsonl", json.dumps({"text": "北京是中国的首都，也是政治和文化中心。", "answers": ["北京", "政治和文化中心"]},
                                  ensure_ascii=False) + "\n")
    w("queries.txt", "今天天气很好\n北京天安门\n")
    w("corpus.txt", "今天天气不错\n股市大跌\n我爱北京天安门\n北京天安门很美丽\n早餐也不错\n")
    w("udict.txt", "天安门广场 10\n")


#: (name, arguments after `nlptool`, output files it writes)
CASES: list[tuple[str, list[str], list[str]]] = [
    ("segment", ["segment", "sample.txt"], []),
    ("segment-text", ["segment", "sample.txt", "--format", "text"], []),
    ("segment-udict", ["segment", "sample.txt", "--user-dict", "udict.txt"], []),
    ("segment-dep", ["segment", "sample.txt", "--parse", "dependency", "--format", "conllu"], []),
    ("segment-const", ["segment", "sample.txt", "--parse", "constituency"], []),
    ("segment-words", ["segment", "words.jsonl", "--parse", "dependency"], []),
    ("segment-masking", ["segment", "sample.txt", "--method", "masking"], []),
    ("segment-masking-dep", ["segment", "words.jsonl", "--method", "masking", "--parse", "dependency"], []),
    ("segment-mixed-out", ["segment", "mixed.jsonl", "-o", "seg.jsonl"], ["seg.jsonl"]),
    ("segment-shard", ["segment", "sample.txt", "--shard", "1/2"], []),
    ("similarity", ["similarity", "pairs.tsv"], []),
    ("similarity-wmd", ["similarity", "pairs.tsv", "--metric", "wmd", "--uniform"], []),
    ("similarity-mean", ["similarity", "pairs.tsv", "--pool", "mean"], []),
    ("similarity-refs", ["similarity", "refs.jsonl"], []),
    ("similarity-layers", ["similarity", "pairs.tsv", "--layers", "1,-1", "--drop-punct"], []),
    ("similarity-sinkhorn", ["similarity", "pairs.tsv", "--solver", "sinkhorn", "--reg", "0.05"], []),
    ("similarity-search", ["similarity", "--query", "queries.txt", "--corpus", "corpus.txt", "--top-k", "2"], []),
    ("similarity-matrix", ["similarity", "corpus.txt", "--matrix", "m.npy", "--top-k", "2"], ["m.npy"]),
    ("attribute", ["attribute", "reviews.txt"], []),
    ("attribute-word", ["attribute", "reviews.txt", "--granularity", "word", "--target", "all"], []),
    ("attribute-html", ["attribute", "reviews.txt", "--html", "h.html", "-o", "a.jsonl"], ["h.html", "a.jsonl"]),
    ("attribute-terminal", ["attribute", "reviews.txt", "--format", "terminal"], []),
    ("qa-gen", ["qa-gen", "passages.jsonl", "--seed", "0"], []),
    ("qa-gen-answers", ["qa-gen", "answers.jsonl", "--seed", "0"], []),
    ("qa-gen-beam", ["qa-gen", "passages.jsonl", "--seed", "1", "--no-round-trip", "--num-pairs", "2"], []),
    ("tokenize-sample", ["tokenize-sample", "train.txt", "--dict", "dict.txt", "--seed", "3", "-k", "2"], []),
    ("tokenize-sample-builtin", ["tokenize-sample", "sample.txt", "--seed", "0"], []),
    ("tokenize-sample-nbest", ["tokenize-sample", "train.txt", "--dict", "dict.txt", "--nbest", "3", "--alpha", "inf"], []),
    ("tokenize-sample-wor", ["tokenize-sample", "train.txt", "--dict", "dict.txt", "-k", "3", "--without-replacement",
                             "--seed", "1", "--entropy", "--marginals"], []),
    ("tokenize-sample-mixed", ["tokenize-sample", "mixed.jsonl", "--dict", "dict.txt", "--seed", "0"], []),
    ("split-valid", ["split-valid", "--train", "train.txt", "--test", "test.txt", "--out-train", "tr.txt",
                     "--out-valid", "va.txt", "--weights", "w.jsonl", "--folds", "3", "--seed", "0"],
     ["tr.txt", "va.txt", "w.jsonl"]),
    ("wordvec-dim", ["wordvec-dim", "-N", "100000", "--table", "--rules"], []),
    ("wordvec-dim-corpus", ["wordvec-dim", "--corpus", "train.txt"], []),
    ("bad-option", ["segment", "sample.txt", "--device", "nonsense"], []),
    ("missing-input", ["similarity", "nothere.tsv"], []),
]


def _digest(data: bytes) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(), "head": data[:300].decode("utf-8", "replace"), "bytes": len(data)}


def run_all(only: set[str] | None = None) -> dict:
    """Run every case (or those named in ``only``) in a fresh scratch directory; the results by name."""
    out = {}
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", NO_COLOR="1")
    for name, args, files in CASES:
        if only and name not in only:
            continue
        with tempfile.TemporaryDirectory() as d:
            _fixtures(d)
            p = subprocess.run([sys.executable, "-m", "nlptool", *args, "-q"] if args[0] != "wordvec-dim" else
                               [sys.executable, "-m", "nlptool", *args], cwd=d, env=env, capture_output=True,
                               stdin=subprocess.DEVNULL, timeout=900)
            rec = {"exit": p.returncode, "stdout": _digest(p.stdout), "files": {}}
            for f in files:
                path = os.path.join(d, f)
                rec["files"][f] = _digest(open(path, "rb").read()) if os.path.exists(path) else None
            out[name] = rec
            print(f"{name}: exit {p.returncode}, {len(p.stdout)} bytes", file=sys.stderr)
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("record", "compare"):
        print(__doc__, file=sys.stderr)
        return 2
    only = set(argv[2:]) or None
    got = run_all(only)
    if argv[0] == "record":
        with open(argv[1], "w", encoding="utf-8") as fh:
            json.dump(got, fh, ensure_ascii=False, indent=1)
        return 0
    want = json.load(open(argv[1], encoding="utf-8"))
    bad = 0
    for name, rec in got.items():
        ref = want.get(name)
        if ref is None:
            print(f"NEW   {name}")
            continue
        same = (ref["exit"] == rec["exit"] and ref["stdout"]["sha256"] == rec["stdout"]["sha256"]
                and {k: v and v["sha256"] for k, v in ref["files"].items()} == {k: v and v["sha256"] for k, v in rec["files"].items()})
        print(f"{'same ' if same else 'DIFF '} {name}")
        if not same:
            bad += 1
            print(f"   before: exit {ref['exit']} {ref['stdout']['head']!r}\n   after:  exit {rec['exit']} {rec['stdout']['head']!r}")
    print(f"{len(got) - bad}/{len(got)} identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A question-pair dev set built from the CMRC 2018 questions we may use (no public paraphrase data).

    python benchmarks/question_pairs.py [--out build/question-pairs.jsonl] [--seed 0]

Each source question q (from ``../shared/data/qa``, CMRC 2018 trial + dev part) gives one positive
pair (same intent, surface changed) and one negative pair (intent changed, most characters kept, or a
different question about the same passage), in the spirit of PAWS (Zhang, Baldridge & He, NAACL
2019: pairs with high lexical overlap whose labels differ) and of the question-matching sets such
as LCQMC whose negatives share most words.

Positive operations (a paraphrase a user writes; 1-2 of them per pair):

* an interrogative replaced by an equivalent one (``为什么`` / ``为何``, ``什么时候`` / ``何时``,
  ``哪个国家`` / ``哪国``, ``多少`` / ``几``, ...);
* a polite or filler frame added (``请问…``, ``我想知道…``, ``…呢？``) or the final ``？`` dropped;
* ``X是什么`` rewritten as ``什么是X`` (and back).

Negative operations (one per pair):

* one content word (a noun, place, person, verb or number by jieba's POS tags) replaced by another
  word of the same tag taken from a different question (``桂林山水在哪个省`` / ``…哪个市``);
* the interrogative replaced by one that asks for something else (``哪一年`` -> ``哪里``);
* another question of the same passage (shares the topic words, asks a different thing).

The labels follow from the operations, not from a model; nothing here was tuned on a scorer's
output. Used by ``benchmarks/bench_question_pairs.py`` to choose ``similarity``'s character weight.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED  # noqa: E402

# equivalent interrogatives (either direction)
SYNONYMS = [
    ("为什么", "为何"), ("什么时候", "何时"), ("哪个国家", "哪国"), ("多少", "几"), ("怎么", "如何"),
    ("哪里", "什么地方"), ("哪一年", "哪年"), ("谁", "什么人"), ("是否", "是不是"), ("哪个", "哪一个"),
    ("什么", "啥"), ("何地", "哪里"), ("多长", "多久"), ("哪位", "哪个人"),
]
# interrogatives that ask for different things
ASK = ["哪一年", "哪里", "谁", "什么", "多少", "为什么", "怎样", "哪个国家", "什么时候", "几个"]
FRAMES = [("请问", ""), ("我想知道", ""), ("", "呢"), ("谁知道", ""), ("你知道", "吗")]
CONTENT_TAGS = {"n", "nr", "ns", "nt", "nz", "v", "m", "t", "vn"}


def read_questions(paths):
    """[(passage id, question)] of SQuAD-format files, in file order."""
    out = []
    for p in paths:
        data = json.loads(Path(p).read_text(encoding="utf-8"))
        for a, art in enumerate(data["data"]):
            for g, para in enumerate(art["paragraphs"]):
                for qa in para["qas"]:
                    q = qa["question"].strip()
                    if q:
                        out.append((f"{Path(p).name}:{a}:{g}", q))
    return out


def _strip_q(q: str) -> tuple[str, str]:
    m = re.search(r"[？?]+$", q)
    return (q[: m.start()], q[m.start():]) if m else (q, "")


def positive(q: str, rng: random.Random) -> str | None:
    body, mark = _strip_q(q)
    ops = []
    syn = [(a, b) for a, b in SYNONYMS if a in body] + [(b, a) for a, b in SYNONYMS if b in body]
    if syn:
        ops.append("syn")
    if re.fullmatch(r"(.{2,})是什么", body) or re.fullmatch(r"什么是(.{2,})", body):
        ops.append("swap")
    ops.append("frame")
    if mark:
        ops.append("mark")
    k = 1 if rng.random() < 0.5 else 2
    # a random subset, applied in a fixed order (rewrites before the frame, so a frame is never
    # split by a rewrite)
    chosen = set(rng.sample(ops, min(k, len(ops))))
    ops = [op for op in ("syn", "swap", "frame", "mark") if op in chosen]
    out = body
    done = 0
    for op in ops:
        if done >= k:
            break
        if op == "syn" and syn:
            a, b = rng.choice(syn)
            if a in out:
                out = out.replace(a, b, 1)
                done += 1
        elif op == "swap":
            m1, m2 = re.fullmatch(r"(.{2,})是什么", out), re.fullmatch(r"什么是(.{2,})", out)
            if m1:
                out, done = f"什么是{m1.group(1)}", done + 1
            elif m2:
                out, done = f"{m2.group(1)}是什么", done + 1
        elif op == "frame":
            pre, post = rng.choice(FRAMES)
            out, done = pre + out + post, done + 1
        elif op == "mark" and mark:
            mark, done = "", done + 1
    res = out + mark
    return res if res != q and done else None


def negative(q: str, pid: str, rng: random.Random, by_tag: dict, by_passage: dict) -> tuple[str, str] | None:
    import jieba.posseg as pseg

    choices = ["word", "word", "ask", "passage"]
    rng.shuffle(choices)
    for how in choices:
        if how == "word":
            toks = [(w.word, w.flag) for w in pseg.cut(q)]
            cand = [i for i, (w, f) in enumerate(toks) if f in CONTENT_TAGS and len(w) >= 1 and w in q]
            if not cand:
                continue
            i = rng.choice(cand)
            pool = [w for w in by_tag.get(toks[i][1], []) if w != toks[i][0]]
            if not pool:
                continue
            new = rng.choice(pool)
            return "".join(new if j == i else w for j, (w, _) in enumerate(toks)), "word"
        if how == "ask":
            hits = [a for a in ASK if a in q]
            if not hits:
                continue
            a = max(hits, key=len)
            b = rng.choice([x for x in ASK if x != a and x not in a and a not in x])
            return q.replace(a, b, 1), "ask"
        if how == "passage":
            others = [x for x in by_passage.get(pid, []) if x != q]
            if others:
                return rng.choice(others), "passage"
    return None


def build(seed: int = 0, paths=None) -> list[dict]:
    """The pairs: ``{"sentence1", "sentence2", "label" (1 same intent, 0 not), "op"}``, two per
    usable source question, in a fixed order for a seed."""
    import jieba
    import jieba.posseg as pseg

    jieba.setLogLevel(60)
    paths = paths or [SHARED / "qa" / "cmrc2018_trial.json", SHARED / "qa" / "cmrc2018_dev_part.json"]
    qs = read_questions(paths)
    rng = random.Random(seed)
    by_tag: dict[str, list[str]] = {}
    by_passage: dict[str, list[str]] = {}
    for pid, q in qs:
        by_passage.setdefault(pid, []).append(q)
        for w in pseg.cut(q):
            if w.flag in CONTENT_TAGS and len(w.word) >= 2:
                by_tag.setdefault(w.flag, []).append(w.word)
    for k in by_tag:
        by_tag[k] = sorted(set(by_tag[k]))
    out = []
    for pid, q in qs:
        p = positive(q, rng)
        n = negative(q, pid, rng, by_tag, by_passage)
        if p is None or n is None or n[0] == q:
            continue
        out.append({"sentence1": q, "sentence2": p, "label": 1, "op": "paraphrase"})
        out.append({"sentence1": q, "sentence2": n[0], "label": 0, "op": n[1]})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "build" / "question-pairs.jsonl"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    pairs = build(args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        for r in pairs:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(pairs)} pairs -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

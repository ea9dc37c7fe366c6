"""nlptool.workers: pickle before/after use, one model load per process, one row per input row
with errors in a column, and the same results as the CLI (the same library function)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from typer.testing import CliRunner

from nlptool import workers
from nlptool.cli import app

runner = CliRunner()
TEXTS = ["我爱北京天安门", "北京我爱", 5, None, "天安门"]


def test_every_argument_has_a_default():
    for cls in (workers.Segmenter, workers.Similarity, workers.Sampler, workers.Attributor, workers.QAGenerator):
        w = cls()
        assert pickle.loads(pickle.dumps(w)).config == w.config


def test_worker_defaults_are_the_cli_defaults():
    """Every constructor argument named like an option of its command has that option's default
    (``Segmenter()`` is ``nlptool segment``: the tagger, its default method)."""
    import enum
    import inspect

    import typer

    commands = typer.main.get_command(app).commands
    pairs = {"segment": workers.Segmenter, "similarity": workers.Similarity, "tokenize-sample": workers.Sampler,
             "attribute": workers.Attributor, "qa-gen": workers.QAGenerator}
    checked = 0
    for name, cls in pairs.items():
        options = {p.name: p.default for p in commands[name].params}
        for arg, p in inspect.signature(cls.__init__).parameters.items():
            if arg in options:
                d = options[arg].value if isinstance(options[arg], enum.Enum) else options[arg]
                assert d == p.default, (name, arg, d, p.default)
                checked += 1
    assert checked > 40 and workers.Segmenter().config["method"] == "tagger"


def test_sampler_pickles_loads_once_and_matches_the_cli(dict_path, tmp_path):
    w = workers.Sampler(dict_path=dict_path, seed=3, num_samples=2)
    before = workers.LOAD_COUNTS["Sampler"]
    blob = pickle.dumps(w)
    batch = {"text": np.array(TEXTS, dtype=object), "id": np.arange(len(TEXTS)),
             "_index": np.arange(len(TEXTS))}
    out = w(batch)
    out2 = pickle.loads(pickle.dumps(w))(batch)  # pickles after first use; same process: no new load
    w(batch)
    pickle.loads(blob)(batch)
    assert workers.LOAD_COUNTS["Sampler"] - before == 1
    assert "_state" not in pickle.loads(pickle.dumps(w)).__dict__ or pickle.loads(pickle.dumps(w))._state is None
    assert len(pickle.dumps(w)) < 2000  # configuration only, no model
    assert list(out["id"]) == list(range(len(TEXTS)))
    assert [e is None for e in out["error"]] == [True, True, False, True, True]  # None text = empty record
    assert "expected a string" in out["error"][2]
    assert [list(map(list, s)) if s is not None else None for s in out["samples"]] == \
        [list(map(list, s)) if s is not None else None for s in out2["samples"]]
    # the CLI on the same lines (indices 0..4) gives the same samples
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(json.dumps({"text": t}, ensure_ascii=False) for t in TEXTS) + "\n", encoding="utf-8")
    r = runner.invoke(app, ["tokenize-sample", str(f), "--dict", dict_path, "--seed", "3", "-k", "2", "-q"])
    cli = [json.loads(x) for x in r.stdout.splitlines()]
    for j, obj in enumerate(cli):
        if "error" in obj:
            assert out["error"][j] is not None
        else:
            assert out["samples"][j] == obj["samples"] and out["logp"][j] == obj["logp"]


def test_sampler_dataframe_keeps_rows_and_columns(dict_path):
    pd = pytest.importorskip("pandas", reason="pandas not installed (pip install 'nlptool[ray]')")
    df = pd.DataFrame({"text": TEXTS, "k": list("abcde")}, index=[10, 11, 12, 13, 14])
    out = workers.Sampler(dict_path=dict_path, seed=0)(df)
    assert list(out.index) == [10, 11, 12, 13, 14] and list(out["k"]) == list("abcde")
    assert list(out.columns[:2]) == ["text", "k"] and out.columns[-1] == "error"
    assert out["tokens"].iloc[0] and "".join(out["tokens"].iloc[0]) == "我爱北京天安门"
    assert out["tokens"].iloc[2] is None and out["error"].iloc[2]
    bad = workers.Sampler(dict_path=dict_path)(pd.DataFrame({"other": ["x"]}))
    assert "missing column 'text'" in bad["error"].iloc[0]


def test_segmenter_masking_matches_the_cli(tiny_bert_dir, tmp_path, monkeypatch):
    from nlptool import engine

    # the CLI builds the same Segmenter, so an earlier CLI test may have loaded this configuration
    monkeypatch.setattr(engine, "_CACHE", {})
    w = workers.Segmenter(method="masking", model=tiny_bert_dir, device="cpu")
    before = workers.LOAD_COUNTS["Segmenter"]
    texts = ["我爱北京天安门", "", "北京"]
    out = w({"text": np.array(texts, dtype=object)})
    w2 = pickle.loads(pickle.dumps(w))
    out2 = w2({"text": np.array(texts, dtype=object)})
    assert workers.LOAD_COUNTS["Segmenter"] - before == 1
    assert list(out["words"]) == list(out2["words"])
    f = tmp_path / "in.txt"
    f.write_text("\n".join(texts) + "\n", encoding="utf-8")
    r = runner.invoke(app, ["segment", str(f), "--method", "masking", "-m", tiny_bert_dir, "--device", "cpu", "-q"])
    assert [json.loads(x)["words"] for x in r.stdout.splitlines()] == list(out["words"])


def test_library_exception_for_one_row_is_that_rows_error(dict_path, monkeypatch):
    from nlptool.tokenize_sample import unigram

    real = unigram.tokenize

    def flaky(model, text, *a, **k):
        if text == "北京我爱":
            raise ValueError("cannot take this one")
        return real(model, text, *a, **k)

    monkeypatch.setattr(unigram, "tokenize", flaky)
    out = workers.Sampler(dict_path=dict_path)({"text": np.array(["我爱北京天安门", "北京我爱", "天安门"], dtype=object)})
    assert [e for e in out["error"]] == [None, "cannot take this one", None]
    assert out["tokens"][0] and out["tokens"][2] and out["tokens"][1] is None


def test_bad_configuration_is_refused():
    from nlptool.errors import UsageError

    with pytest.raises(UsageError):
        workers.Segmenter(method="nope")
    with pytest.raises(UsageError):
        workers.Sampler(ids=True)
    with pytest.raises(UsageError):
        workers.Similarity(solver="sinkhorn")


def test_docs_show_the_examples_verbatim():
    """docs/scale-out.md shows every file of examples/ whole (the runnable and tested versions)."""
    import glob
    import os

    root = os.path.join(os.path.dirname(__file__), "..")
    doc = open(os.path.join(root, "docs", "scale-out.md"), encoding="utf-8").read()
    files = sorted(glob.glob(os.path.join(root, "examples", "*.py")))
    assert len(files) == 3
    for f in files:
        assert "```python\n" + open(f, encoding="utf-8").read() + "```" in doc, f

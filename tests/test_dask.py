"""examples/dask_map_partitions.py on Dask's local multiprocessing scheduler: one output line per
input line, in input order, byte for byte the CLI's line for every good row, and a bad row's
reason in its "error" field."""

from __future__ import annotations

import glob
import importlib.util
import json
import os

import pytest
from typer.testing import CliRunner

from nlptool import workers
from nlptool.cli import app

pytest.importorskip("dask", reason="dask not installed (pip install 'nlptool[dask]'); the Dask example untested")
pytest.importorskip("pandas", reason="pandas not installed (pip install 'nlptool[dask]')")
pytestmark = pytest.mark.slow
runner = CliRunner()
EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "dask_map_partitions.py")


def _example():
    spec = importlib.util.spec_from_file_location("dask_map_partitions", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # not put in sys.modules: cloudpickle ships its functions by value
    return mod


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _lines(out_dir):
    return [x for f in sorted(glob.glob(os.path.join(out_dir, "*.jsonl")))
            for x in open(f, encoding="utf-8").read().splitlines()]


def test_dask_sampler_equals_the_cli_with_errors_in_a_column(tmp_path, dict_path):
    d = dict_path
    texts = ["我爱北京天安门", "北京我爱", 5, "天安门", "", "我爱北京"] * 10
    inp = _write(tmp_path / "in.jsonl", [{"id": i, "text": t, "tag": f"r{i}"} for i, t in enumerate(texts)])
    out = tmp_path / "out"
    # small blocks: several partitions on two processes; per-record seeds from the "id" column
    _example().run(inp, str(out), workers.Sampler(dict_path=str(d), seed=7, num_samples=2, index_key="id"),
                   workers=2, blocksize="600B")
    assert len(glob.glob(str(out / "*.jsonl"))) > 2
    got = _lines(out)
    r = runner.invoke(app, ["tokenize-sample", inp, "--dict", str(d), "--seed", "7", "-k", "2", "-q"])
    assert r.exit_code == 0, r.output
    cli = r.stdout.splitlines()
    assert len(got) == len(cli) == len(texts)
    for text, g, c in zip(texts, got, cli):
        if isinstance(text, str):
            assert g == c  # byte for byte
        else:
            g, c = json.loads(g), json.loads(c)
            assert g["error"] == "column 'text' holds int, expected a string" and "error" in c
            assert (g["id"], g["tag"], g["text"]) == (c["id"], c["tag"], c["text"]) and "samples" not in g


def test_dask_segmenter_masking_equals_the_cli(tmp_path, tiny_bert_dir):
    texts = ["我爱北京天安门。", "今天天气很好", "北京", "他说：“我们走吧！”"] * 6
    inp = _write(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    out = tmp_path / "out"
    _example().run(inp, str(out), workers.Segmenter(method="masking", model=tiny_bert_dir, device="cpu"),
                   workers=2, blocksize="300B")
    r = runner.invoke(app, ["segment", inp, "--method", "masking", "-m", tiny_bert_dir, "--device", "cpu", "-q"])
    assert r.exit_code == 0, r.output
    assert _lines(out) == r.stdout.splitlines() and len(r.stdout.splitlines()) == len(texts)

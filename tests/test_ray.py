"""--engine ray on a local Ray (2 CPUs): byte-for-byte the local engine's output."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from nlptool.cli import app

ray = pytest.importorskip("ray", reason="ray not installed (pip install 'nlptool[ray]'); --engine ray untested")
pytestmark = pytest.mark.slow
runner = CliRunner()
LINES = ["我爱北京天安门", '{"text": "北京我爱"}', '{"text": 5}', "{bad", "", "天安门"] * 20


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    if not ray.is_initialized():
        ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture()
def inputs(tmp_path, dict_path):
    d = dict_path
    f = tmp_path / "in.txt"
    f.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return str(d), str(f)


def _same(args, tmp_path, extra=("--engine", "ray", "--workers", "2", "--chunk-size", "16")):
    a, b = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    r1 = runner.invoke(app, [*args, "-o", str(a)])
    r2 = runner.invoke(app, [*args, *extra, "-o", str(b)])
    assert r1.exit_code == 0 and r2.exit_code == 0, (r1.output, r2.output)
    assert a.read_bytes() == b.read_bytes()
    return a.read_text(encoding="utf-8").splitlines()


def test_tokenize_sample_ray_equals_local(inputs, tmp_path):
    d, f = inputs
    lines = _same(["tokenize-sample", f, "--dict", d, "--seed", "5", "-k", "3", "-q"], tmp_path)
    assert len(lines) == len(LINES) and sum("error" in json.loads(x) for x in lines) == 40


def test_segment_ray_equals_local(inputs, tmp_path, tiny_bert_dir):
    _, f = inputs
    _same(["segment", f, "--method", "masking", "-m", tiny_bert_dir, "--device", "cpu", "-q"], tmp_path)


def test_similarity_ray_equals_local(tmp_path):
    f = tmp_path / "pairs.jsonl"
    rows = [{"sentence1": "今天天气很好", "sentence2": "今天天气不错"}, {"sentence1": "我爱北京", "sentence2": 3},
            {"sentence1": "猫在睡觉", "sentence2": ["狗在睡觉", "猫睡了"]}] * 4
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    _same(["similarity", str(f), "--device", "cpu", "-q"], tmp_path, extra=("--engine", "ray", "--workers", "2", "--chunk-size", "4"))


def test_output_dir_holds_the_local_lines(inputs, tmp_path):
    d, f = inputs
    local = runner.invoke(app, ["tokenize-sample", f, "--dict", d, "--seed", "5", "-q"]).stdout.splitlines()
    out = tmp_path / "shards"
    r = runner.invoke(app, ["tokenize-sample", f, "--dict", d, "--seed", "5", "-q", "--output-dir", str(out),
                            "--workers", "1", "--chunk-size", "32"])
    assert r.exit_code == 0, r.output
    got = [x for name in sorted(os.listdir(out)) for x in (out / name).read_text(encoding="utf-8").splitlines()]
    assert sorted(got) == sorted(local)


def test_output_dir_under_quiet_prints_nothing(inputs, tmp_path):
    """-q silences Ray's own INFO/WARNING lines (and its processes'): stderr is empty."""
    import subprocess
    import sys

    d, f = inputs
    out = tmp_path / "shards"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.run([sys.executable, "-m", "nlptool", "tokenize-sample", f, "--dict", d, "--seed", "5", "-q",
                        "--output-dir", str(out), "--workers", "1"], capture_output=True, cwd=tmp_path,
                       env={k: v for k, v in dict(os.environ, PYTHONPATH=repo).items() if k != "RAY_ADDRESS"},
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stderr == b""
    assert sum(len((out / n).read_text(encoding="utf-8").splitlines()) for n in os.listdir(out)) > 0


def test_strict_stops_with_exit_3_and_text_format_refused(inputs, tmp_path):
    d, f = inputs
    r = runner.invoke(app, ["tokenize-sample", f, "--dict", d, "--engine", "ray", "--strict", "-q"])
    assert r.exit_code == 3
    r = runner.invoke(app, ["tokenize-sample", f, "--dict", d, "--engine", "ray", "--format", "text", "-q"])
    assert r.exit_code == 2 and "jsonl" in r.stderr


def test_ray_data_map_batches_actor_pool(tmp_path, dict_path):
    import ray.data

    from nlptool import workers

    p = dict_path
    ds = ray.data.from_items([{"text": t, "_index": i} for i, t in enumerate(["我爱北京天安门", "北京", "天安门"] * 10)])
    out = ds.map_batches(workers.Sampler, fn_constructor_kwargs={"dict_path": str(p), "seed": 1}, batch_size=8,
                         concurrency=2, batch_format="pandas").take_all()
    assert len(out) == 30 and all(r["error"] is None for r in out)
    local = workers.Sampler(dict_path=str(p), seed=1)
    ref = local({"text": [r["text"] for r in out], "_index": [r["_index"] for r in out]})
    assert [list(r["tokens"]) for r in out] == [list(t) for t in ref["tokens"]]


def test_ray_data_example_equals_the_cli(tmp_path, dict_path):
    import importlib.util

    from nlptool import workers

    spec = importlib.util.spec_from_file_location(
        "ray_data_map_batches", os.path.join(os.path.dirname(__file__), "..", "examples", "ray_data_map_batches.py"))
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    p = dict_path
    # ids are strings (Arrow's JSON reader fails the whole read on a column of mixed types); "7" -> "seven"
    texts = ["我爱北京天安门", "北京我爱", "天安门", ""] * 5
    ids = [str(i) if i != 7 else "seven" for i in range(len(texts))]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in zip(ids, texts)),
                   encoding="utf-8")
    example.run(str(inp), str(tmp_path / "out"), workers.Sampler, {"dict_path": str(p), "seed": 4, "index_key": "id"},
                workers=2)
    got = {}
    for name in os.listdir(tmp_path / "out"):
        for line in (tmp_path / "out" / name).read_text(encoding="utf-8").splitlines():
            row = {k: v for k, v in json.loads(line).items() if v is not None}  # pandas writes "error": null
            got[row["id"]] = row
    assert sorted(got) == sorted(ids)
    assert got["seven"]["error"] == "column 'id' is not an integer" and "tokens" not in got["seven"]
    r = runner.invoke(app, ["tokenize-sample", str(inp), "--dict", str(p), "--seed", "4", "-q"])
    for k, c in enumerate(json.loads(x) for x in r.stdout.splitlines()):
        if k != 7:
            assert got[ids[k]] == c  # the CLI seeds record k with (4, k); the worker with (4, int(id))

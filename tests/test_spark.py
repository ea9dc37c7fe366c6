"""examples/spark_map_in_pandas.py: the mapInPandas function as a plain iterator of pandas
DataFrames (pandas only), and the example on a real local-mode Spark (skipped without pyspark or
a Java it supports): one row per input row, the CLI's results, a bad row's reason in "error"."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from nlptool import workers
from nlptool.cli import app

pd = pytest.importorskip("pandas", reason="pandas not installed (pip install 'nlptool[spark]')")
runner = CliRunner()
EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "spark_map_in_pandas.py")
TEXTS = ["我爱北京天安门", "北京我爱", "天安门", "", "我爱北京"] * 4
SCHEMA_IN = "id string, text string"
SCHEMA_OUT = "id string, text string, tokens array<string>, logp double, error string"


def _example():
    spec = importlib.util.spec_from_file_location("spark_map_in_pandas", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # imports pyspark only when run as a script
    return mod


def _cli(tmp_path, dict_path):
    f = tmp_path / "cli_in.jsonl"
    f.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in TEXTS), encoding="utf-8")
    r = runner.invoke(app, ["tokenize-sample", str(f), "--dict", dict_path, "--seed", "2", "-q"])
    assert r.exit_code == 0, r.output
    return [json.loads(x) for x in r.stdout.splitlines()]


def _check(rows, cli):
    """``rows``: output dicts in input order; row 5 had the id "five" (not an integer)."""
    assert len(rows) == len(TEXTS)
    for i, (row, c) in enumerate(zip(rows, cli)):
        assert row["text"] == TEXTS[i]
        if i == 5:
            assert row["error"] == "column 'id' is not an integer" and row.get("tokens") is None
        else:
            assert row.get("error") is None and list(row["tokens"]) == c["tokens"] and row["logp"] == c["logp"]


def _frame(lo, hi):
    return pd.DataFrame({"id": [str(i) if i != 5 else "five" for i in range(lo, hi)], "text": TEXTS[lo:hi]})


def test_map_in_pandas_function_on_an_iterator_of_frames(tmp_path, dict_path):
    worker = workers.Sampler(dict_path=dict_path, seed=2, index_key="id")
    fn = workers.spark_udf(worker)
    outs = list(fn(iter([_frame(0, 7), _frame(7, 8), _frame(8, len(TEXTS))])))
    assert [len(o) for o in outs] == [7, 1, len(TEXTS) - 8]
    names = [f.split()[0] for f in SCHEMA_OUT.split(", ")]
    assert all(list(o.columns) == names for o in outs)  # Spark matches the schema by column name
    rows = [r for o in outs for r in o.to_dict("records")]
    _check(rows, _cli(tmp_path, dict_path))
    flat = workers.json_columns(outs[0], ["tokens"])
    assert json.loads(flat["tokens"].iloc[0]) == outs[0]["tokens"].iloc[0]


def _java_major() -> int | None:
    java = shutil.which("java")
    if not java:
        return None
    try:
        text = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


@pytest.mark.slow
def test_spark_local_mode_runs_the_example(tmp_path, dict_path, monkeypatch):
    pyspark = pytest.importorskip("pyspark", reason="pyspark not installed (pip install 'nlptool[spark]')")
    need = 17 if int(pyspark.__version__.split(".")[0]) >= 4 else 8
    java = _java_major()
    if java is None or java < need:
        pytest.skip(f"pyspark {pyspark.__version__} needs Java {need}+ (found: {java or 'none'})")
    from pyspark.sql import SparkSession

    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": str(i) if i != 5 else "five", "text": t}, ensure_ascii=False) + "\n"
                           for i, t in enumerate(TEXTS)), encoding="utf-8")
    out = tmp_path / "out"
    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "2").getOrCreate())
    try:
        _example().run(spark, str(inp), str(out), workers.Sampler(dict_path=dict_path, seed=2, index_key="id"),
                       SCHEMA_IN, SCHEMA_OUT)
    finally:
        spark.stop()
    rows = [json.loads(x) for f in sorted(glob.glob(str(out / "part-*"))) for x in open(f, encoding="utf-8")]
    _check(rows, _cli(tmp_path, dict_path))

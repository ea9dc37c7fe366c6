"""Start-up guard: each command runs one line with its built-in model in a fresh process and
imports no heavy library it does not use (transformers, scikit-learn, pandas, ...). A regression here
costs every cron job and shell call seconds of start-up (docs/benchmarks.md, start-up)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Never imported at inference by any command below.
NEVER = ("transformers", "huggingface_hub", "accelerate", "sklearn", "pandas", "networkx", "scipy.stats")

CASES = [
    # (command line, stdin, extra modules it must not import)
    (["segment"], "长江是中国第一长河。\n", ("ot", "scipy", "jieba", "captum")),
    (["segment", "--method", "masking"], "长江是中国第一长河。\n", ("ot", "scipy", "captum")),
    # the biaffine parser (zh-parse-mini): plain torch, no hub, no transport
    (["segment", "--parse", "dependency"], "长江是中国第一长河。\n", ("ot", "scipy", "captum", "jieba")),
    # POT and the scipy it needs, but not what pot() keeps out (nlptool/similarity/transport.py:
    # the probes, ot.datasets with scipy.stats, numpy.f2py with charset_normalizer)
    (["similarity"], "今天天气很好\t今天天气不错\n",
     ("captum", "jieba", "ot.datasets", "numpy.f2py", "charset_normalizer")),
    (["similarity", "--pool", "mean"], "今天天气很好\t今天天气不错\n", ("ot", "scipy", "captum", "jieba")),
    (["attribute"], "这家酒店的服务很好。\n", ("ot", "jieba")),
    (["qa-gen"], "长江是中国第一长河，发源于青藏高原的唐古拉山脉，全长6300余千米。\n", ("ot", "captum", "jieba")),
    (["tokenize-sample"], "长江是中国第一长河。\n", ("torch", "ot", "captum")),
]

#: The modules whose code ran: a module imported lazily (``importlib.util.LazyLoader``) and never
#: used is in ``sys.modules`` but costs nothing, so it is not listed.
PROBE = """
import atexit, json, runpy, sys
def _dump():
    ran = [n for n, m in list(sys.modules.items()) if type(m).__name__ != "_LazyModule"]
    sys.__stderr__.write("MODULES " + json.dumps(sorted(ran)) + "\\n")
atexit.register(_dump)
sys.argv = ["nlptool", *json.loads(sys.argv[1])]
runpy.run_module("nlptool", run_name="__main__")
"""


@pytest.mark.parametrize("args,stdin,extra", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_one_line_imports_no_heavy_library_it_does_not_use(args, stdin, extra, tmp_path):
    res = subprocess.run([sys.executable, "-c", PROBE, json.dumps([*args, "-q"])], input=stdin, capture_output=True,
                         text=True, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip(), "no output line"
    line = next(x for x in res.stderr.splitlines() if x.startswith("MODULES "))
    loaded = set(json.loads(line[len("MODULES "):]))
    bad = sorted(m for m in loaded if any(m == p or m.startswith(p + ".") for p in (*NEVER, *extra)))
    assert not bad, f"{' '.join(args)} imported {bad[:10]}"

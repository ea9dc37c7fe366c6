"""The garbage-collector levers of start-up (docs/benchmarks.md, "Start-up"): the CLI imports torch
with the collector paused and then frozen (:func:`nlptool.threads.import_torch`), and freezes what
is alive once a command has finished (:func:`nlptool.cli.main`), so that the final collection at
exit skips it. The collector's state is always restored, exit codes do not change, and a Python
user of the library is not touched."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import pytest

from nlptool.threads import import_torch


def _python(code: str, **kw) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object last, returned here."""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, **kw)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


#: Records whether the collector was on while torch's modules were being found.
WATCH = """
import gc, json, sys
seen = set()
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            seen.add(gc.isenabled())
        return None
sys.meta_path.insert(0, Watch())
"""


@pytest.mark.parametrize("enabled", [True, False], ids=["gc-enabled", "gc-disabled"])
def test_import_torch_pauses_the_collector_and_restores_its_state(enabled):
    out = _python(WATCH + f"""
if not {enabled}:
    gc.disable()
assert "torch" not in sys.modules
from nlptool.threads import import_torch
torch = import_torch()
print(json.dumps({{"seen": sorted(seen), "enabled": gc.isenabled(), "frozen": gc.get_freeze_count(),
                  "same": torch is sys.modules["torch"], "threads": torch.get_num_threads()}}))
""")
    assert out["seen"] == [False], "the collector ran during import torch"
    assert out["enabled"] is enabled  # a caller who had disabled it keeps it disabled
    assert out["frozen"] > 50_000  # torch's objects are in the permanent generation
    assert out["same"] and out["threads"] >= 1


@pytest.mark.parametrize("enabled", [True, False], ids=["gc-enabled", "gc-disabled"])
def test_a_failed_import_restores_the_collector_and_freezes_nothing(enabled, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    was, frozen = gc.isenabled(), gc.get_freeze_count()
    try:
        gc.enable() if enabled else gc.disable()
        with pytest.raises(ImportError):
            import_torch()
        assert gc.isenabled() is enabled
        assert gc.get_freeze_count() == frozen
    finally:
        gc.enable() if was else gc.disable()


def test_torch_imported_already_is_returned_untouched(monkeypatch):
    sentinel = object()
    monkeypatch.setitem(sys.modules, "torch", sentinel)
    was, frozen = gc.isenabled(), gc.get_freeze_count()
    try:
        gc.disable()
        assert import_torch() is sentinel
        assert not gc.isenabled() and gc.get_freeze_count() == frozen
    finally:
        gc.enable() if was else gc.disable()


def test_the_library_from_python_does_not_freeze():
    """A Python user of a command object: the collector stays on, nothing is frozen."""
    out = _python("""
import gc, json
from nlptool.segment import Segmenter
res = Segmenter()(["长江是中国第一长河。"])
print(json.dumps({"enabled": gc.isenabled(), "frozen": gc.get_freeze_count(), "n": len(res)}))
""")
    assert out == {"enabled": True, "frozen": 0, "n": 1}


#: The CLI as ``python -m nlptool`` runs it, reporting the collector's state at interpreter exit.
PROBE = """
import atexit, gc, json, runpy, sys
atexit.register(lambda: sys.__stderr__.write("GC " + json.dumps([gc.isenabled(), gc.get_freeze_count()]) + "\\n"))
sys.argv = ["nlptool", *json.loads(sys.argv[1])]
runpy.run_module("nlptool", run_name="__main__")
"""


@pytest.mark.parametrize("args,stdin,code", [
    (["segment", "-q"], "长江是中国第一长河。\n", 0),  # torch through the thread rule
    (["tokenize-sample", "-q"], "长江是中国第一长河。\n", 0),  # no torch
    (["segment", "--no-such-option"], "", 2),  # usage error
    (["segment", "no-such-file.txt", "-q"], "", 2),  # a missing input
    (["segment", "--format", "conllu", "-q"], "长江\n", 2),  # a rule of the command object (no --parse)
], ids=["segment", "tokenize-sample", "bad-option", "missing-file", "usage-rule"])
def test_the_cli_freezes_before_exit_with_its_exit_code_unchanged(args, stdin, code, tmp_path):
    res = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], input=stdin, capture_output=True,
                         text=True, cwd=tmp_path, timeout=600)
    assert res.returncode == code, res.stderr[-2000:]
    enabled, frozen = json.loads(next(x for x in res.stderr.splitlines() if x.startswith("GC "))[3:])
    assert enabled is True  # the pause during import torch was undone
    assert frozen > 0
    if code == 0:
        assert res.stdout.strip() and "Traceback" not in res.stderr
    else:
        assert res.stderr.strip().splitlines()[0].startswith("error:") and "Traceback" not in res.stderr

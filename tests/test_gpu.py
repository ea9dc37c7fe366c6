"""scripts/gpu_check.py (``make gpu-check``): its verdict logic on hand-made examples, its CPU half
end to end (``--quick``: prints the table and "no CUDA", exits 0), and the CUDA-vs-CPU comparisons
of the library functions, which need CUDA and skip with a printed reason without it."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = mod
    spec.loader.exec_module(mod)
    return mod


gc = _load_script()


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def require_cuda():
    if not cuda_available():
        msg = "CUDA is not available on this machine (no GPU or a CPU-only torch): the GPU comparison is not run"
        print(f"SKIP: {msg}")
        pytest.skip(msg)


# ------------------------------------------------------------------------- verdict logic


def _masking(words, impacts, fallback=1.0):
    return {"words": words, "impacts": impacts, "fallback": fallback, "ratio": 1.0}


def test_masking_identical_passes():
    cpu = _masking([["大肠", "杆菌"]], [[[2.0, 0.5, 2.5]]])
    v = gc.seg_masking_compare(cpu, _masking([["大肠", "杆菌"]], [[[2.0, 0.5, 2.5]]]), 1e-3)
    assert v.ok and "identical" in v.text


def test_masking_flip_accepted_only_at_the_threshold():
    # clause d = (1.0, 0.999, 1.001): mean 1.0, the middle neighbour's ratio 0.999 is 1e-3 from the
    # rule's threshold 1.0, so fp16 noise may flip it; d = (3, 0.2, 3) has every ratio far from 1.
    words_c, words_g = [["大肠", "杆菌"]], [["大肠杆菌"]]  # the boundary at offset 2 flipped
    near = _masking(words_c, [[[1.0, 0.999, 1.001]]])
    assert gc._masking_margins(near) == pytest.approx([0.0, 1e-3, 1e-3], abs=1e-12)
    assert gc.seg_masking_compare(near, _masking(words_g, [[[1.0, 0.9995, 1.001]]]), 1e-3).ok
    far = _masking(words_c, [[[3.0, 0.2, 3.0]]])
    v = gc.seg_masking_compare(far, _masking(words_g, [[[3.0, 0.2, 3.0]]]), 1e-3)
    assert not v.ok and v.text.startswith("FAIL")


def test_masking_impacts_beyond_tolerance_fail():
    cpu = _masking([["a"]], [[[2.0, 4.0]]])
    gpu = _masking([["a"]], [[[2.0, 4.2]]])  # 0.2 / 4 = 5e-2 relative
    assert gc.rel_diff([2.0, 4.0], [2.0, 4.2]) == pytest.approx(0.05)
    assert not gc.seg_masking_compare(cpu, gpu, 3e-2).ok
    assert gc.seg_masking_compare(cpu, gpu, 6e-2).ok


def test_tagger_flip_needs_a_probability_near_one_half():
    cpu = {"words": [["他", "说"]], "impacts": [[[0.4995]]]}
    gpu = {"words": [["他说"]], "impacts": [[[0.5005]]]}
    assert gc.seg_tagger_compare(cpu, gpu, 2e-3).ok
    cpu_far = {"words": [["他", "说"]], "impacts": [[[0.1]]]}
    assert not gc.seg_tagger_compare(cpu_far, {"words": [["他说"]], "impacts": [[[0.1]]]}, 2e-3).ok


def test_tagger_lexicon_decode_may_move_at_most_one_percent_of_boundaries():
    words = [["他", "说", "的"] * 100]  # 299 boundaries
    cpu = {"words": words, "impacts": [[[0.1] * 299]], "lexicon_words": words}
    moved = [["他说", "的"] + ["他", "说", "的"] * 99]  # one boundary moved
    assert gc.seg_tagger_compare(cpu, {**cpu, "lexicon_words": moved}, 2e-3).ok
    many = [["他说的"] * 10 + ["他", "说", "的"] * 90]  # 20 moved
    v = gc.seg_tagger_compare(cpu, {**cpu, "lexicon_words": many}, 2e-3)
    assert not v.ok and "20 of 299" in v.text


def test_cut_offsets_by_hand():
    assert gc.cut_offsets(["大肠", "杆菌", "是"]) == {2, 4}
    assert gc.cut_offsets([]) == set() and gc.cut_offsets(["一"]) == set()


def test_rel_diff_non_finite_is_infinite():
    assert gc.rel_diff([1.0], [float("nan")]) == math.inf
    with pytest.raises(ValueError):
        gc.rel_diff([1.0, 2.0], [1.0])


def test_loss_rules():
    assert gc._loss_ok([3.0, 2.5, 2.0])[0]
    assert gc._loss_ok([3.0, 3.05, 3.0])[0]  # flat within 2 %: "decreasing-ish"
    assert not gc._loss_ok([2.0, 2.5, 3.0])[0]
    assert not gc._loss_ok([2.0, float("inf"), 1.0])[0]
    assert not gc._loss_ok([])[0]
    assert gc.train_compare({"losses": [4.0, 3.0]}, {"losses": [4.4, 3.0]}, 0.1).diff.startswith("1.0e-01")


def test_similarity_and_qagen_verdicts():
    cpu = {"wrd": [0.3, 0.0], "wmd": [1.0, 0.0], "model": "m"}
    assert gc.similarity_compare(cpu, {"wrd": [0.305, 0.0], "wmd": [1.005, 0.0], "model": "m"}, 1e-2).ok
    assert not gc.similarity_compare(cpu, {"wrd": [0.33, 0.0], "wmd": [1.0, 0.0], "model": "m"}, 1e-2).ok
    assert not gc.similarity_compare(cpu, {"wrd": [0.3, 0.01], "wmd": [1.0, 0.0], "model": "m"}, 1e-2).ok
    p = {"question": "q", "answer": "长江", "answer_start": 0, "score": -1.0}
    q = dict(p, question="r")
    a = {"pairs": [[p]], "model": "m"}
    b = {"pairs": [[q]], "model": "m"}
    assert gc.qa_gen_compare(exact=True)(a, a, 0).ok
    assert not gc.qa_gen_compare(exact=True)(a, b, 0).ok

    class C:
        passages = ["长江是中国第一长河"]

    assert gc.qa_gen_compare(exact=False)(a, b, 0, C()).ok  # differs, documented, still a passage span
    assert not gc.qa_gen_compare(exact=False)(a, {"pairs": [[dict(q, answer_start=1)]], "model": "m"}, 0, C()).ok


def test_parse_student_verdict():
    cpu = {"heads": [[2, 0]] * 100, "logp": [[[-0.1, -2.0], [-0.5, -1.0]]] * 100}
    assert gc.parse_student_compare(cpu, cpu, 1e-3).ok
    near = {"heads": [[2, 0]] * 99 + [[0, 1]], "logp": [[[-0.1, -2.0005], [-0.5, -1.0]]] * 100}
    assert gc.parse_student_compare(cpu, near, 1e-3).ok  # one tree of 100 may flip
    assert not gc.parse_student_compare(cpu, {**near, "heads": [[2, 0]] * 98 + [[0, 1]] * 2}, 1e-3).ok
    assert not gc.parse_student_compare(cpu, {**cpu, "logp": [[[-0.2, -2.0], [-0.5, -1.0]]] * 100}, 1e-3).ok


def test_tables():
    rows = [gc.Row("a|b", 2.0, 0.5, "1e-3", "ok"), gc.Row("c", 1.0, None, "", "skipped: ot missing")]
    md = gc.markdown_table(rows).splitlines()
    assert md[0].count("|") == 7 and len(md) == 4
    assert "a\\|b" in md[2] and "4.0x" in md[2] and "| — |" in md[3]
    assert "4.0x" in gc.text_table(rows)


# ------------------------------------------------------------------------- the CPU half


@pytest.mark.slow
def test_cpu_half_quick(tmp_path):
    """The CPU half as CI runs it: every row present, nothing failed, "no CUDA", exit 0."""
    if cuda_available():
        pytest.skip("CUDA is available: this test covers the CPU-only path (test_gpu_rows covers CUDA)")
    md = tmp_path / "gpu.md"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--markdown", str(md)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "no CUDA" in proc.stdout
    table = md.read_text(encoding="utf-8")
    names = [c.command for c in gc.checks({})]
    for name in names:
        assert name.replace("|", "\\|") in table
    assert "FAIL" not in table
    assert "CPU-only by design" in table


# ------------------------------------------------------------------------- CUDA vs CPU

INFERENCE = [c for c in gc.checks({}) if not c.command.startswith("train ") and c.compare is not None]


@pytest.mark.parametrize("check", INFERENCE, ids=[c.command for c in INFERENCE])
def test_gpu_rows(check, tmp_path):
    """The library function on CUDA against the CPU, with the tolerance of its row (docs/gpu.md)."""
    require_cuda()
    ctx = gc.Ctx(quick=True, tmp=tmp_path)
    gc.make_inputs(ctx)
    try:
        cpu = check.run(ctx, "cpu", False)
        gpu = check.run(ctx, "cuda", check.fp16)
    except gc.Skip as exc:
        print(f"SKIP: {exc}")
        pytest.skip(str(exc))
    v = check.compare(cpu, gpu, check.tol, ctx) if check.wants_ctx else check.compare(cpu, gpu, check.tol)
    assert v.ok, v.text


@pytest.mark.slow
def test_gpu_training_mixed_precision(tmp_path):
    """A few steps of `nlptool train mlm` on CUDA (bf16/fp16 mixed precision): finite, decreasing-ish loss."""
    require_cuda()
    ctx = gc.Ctx(quick=True, tmp=tmp_path)
    data = gc.write_train_data(ctx)
    ctx.half = "gpu"
    res = gc.train_run("mlm", data)(ctx, "cuda", None)
    ok, how = gc._loss_ok(res["losses"])
    assert ok, how

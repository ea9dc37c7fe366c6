"""CLI and I/O behaviour of `nlptool segment` (file, stdin and JSONL agree; bad input; pipes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from nlptool.cli import app

runner = CliRunner()
TEXTS = ["我们的国家很美丽。", "", "今天天气不错，我们去公园吧"]


def _run(args, input=None):
    return runner.invoke(app, args, input=input)


def _jsonl(out: str):
    return [json.loads(x) for x in out.splitlines() if x.strip()]


@pytest.fixture()
def model_args(tiny_bert_dir):
    return ["--method", "masking", "--model", tiny_bert_dir, "--quiet", "--device", "cpu"]


def test_file_stdin_and_jsonl_agree(tmp_path, model_args):
    f = tmp_path / "in.txt"
    f.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    a = _run(["segment", str(f), *model_args])
    b = _run(["segment", "-", *model_args], input="\n".join(TEXTS) + "\n")
    c = _run(["segment", *model_args], input="\n".join(TEXTS) + "\n")
    j = tmp_path / "in.jsonl"
    j.write_text("\n".join(json.dumps({"id": i, "content": t}, ensure_ascii=False) for i, t in enumerate(TEXTS)) + "\n", encoding="utf-8")
    d = _run(["segment", str(j), "--text-key", "content", *model_args])
    assert a.exit_code == b.exit_code == c.exit_code == d.exit_code == 0, a.output + d.output
    ra, rb, rc, rd = map(_jsonl, (a.stdout, b.stdout, c.stdout, d.stdout))
    assert len(ra) == len(TEXTS)
    assert [r["words"] for r in ra] == [r["words"] for r in rb] == [r["words"] for r in rc] == [r["words"] for r in rd]
    assert ra[1]["words"] == []  # empty line: empty result, not an error
    assert [r["id"] for r in rd] == [0, 1, 2]  # fields pass through
    assert all("".join(r["words"]) == t for r, t in zip(ra, TEXTS))
    assert "我们" in a.stdout  # ensure_ascii=False


def test_bad_records_yield_error_records_in_order(tmp_path, model_args):
    f = tmp_path / "bad.jsonl"
    f.write_bytes(
        '{"text": "我们"}\n'.encode()
        + b"{not json\n"
        + b'{"other": 1}\n'
        + b'{"text": 5}\n'
        + b"\xff\xfe bad utf8\n"
        + '{"text": "国家", "k": [1]}\n'.encode()
    )
    r = _run(["segment", str(f), *model_args])
    assert r.exit_code == 0, r.output
    out = _jsonl(r.stdout)
    assert len(out) == 6
    assert out[0]["words"] and out[5]["words"] and out[5]["k"] == [1]
    for i, why in [(1, "invalid JSON"), (2, "missing key 'text'"), (3, "expected a string"), (4, "invalid UTF-8")]:
        assert why in out[i]["error"]
        assert out[i]["line"] == i + 1
        assert f"line {i + 1}" in out[i]["error"]


def test_strict_stops_with_file_and_line(tmp_path, model_args):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"text": "我们"}\n{oops\n', encoding="utf-8")
    r = _run(["segment", str(f), "--strict", *model_args])
    assert r.exit_code == 3
    assert f"{f}:2" in r.stderr and "invalid JSON" in r.stderr


def test_text_and_parse_formats(tmp_path, model_args):
    r = _run(["segment", "--format", "text", *model_args], input="我们的国家\n\n")
    assert r.exit_code == 0
    assert r.stdout.splitlines()[1] == ""
    assert r.stdout.splitlines()[0].replace(" ", "") == "我们的国家"
    r = _run(["segment", "--parse", "dependency", "--format", "conllu", *model_args], input="我们的国家很美丽。\n")
    assert r.exit_code == 0, r.output
    rows = [x.split("\t") for x in r.stdout.splitlines() if x and not x.startswith("#")]
    assert all(len(x) == 10 for x in rows)
    assert sum(x[6] == "0" for x in rows) == 1
    given = json.dumps({"words": ["我们", "的", "国家"], "text": "x"}, ensure_ascii=False)
    r = _run(["segment", "--parse", "constituency", *model_args], input=given + "\n")
    out = _jsonl(r.stdout)[0]
    assert out["words"] == ["我们", "的", "国家"] and out["tree"].count("(") == 2
    r = _run(["segment", "--parse", "dependency", *model_args], input='{"words": ["我们", "的", "国家"]}\n')
    out = _jsonl(r.stdout)[0]  # a words list without a text field is parsed, not an error
    assert "error" not in out and out["heads"].count(0) == 1


def test_usage_errors(model_args):
    r = _run(["segment", "--threshold", "abc", *model_args], input="x\n")
    assert r.exit_code == 2 and "--threshold" in r.stderr
    r = _run(["segment", "/nonexistent/file.txt", *model_args])
    assert r.exit_code == 2 and "no such file" in r.stderr
    r = _run(["segment", "--device", "cuda:7", "--quiet"], input="x\n")
    assert r.exit_code == 2 and "CUDA" in r.stderr
    r = _run(["segment", "--model", "./no/such/dir", "--quiet"], input="x\n")
    assert r.exit_code == 1 and "no such directory" in r.stderr


def test_offline_hub_id_is_one_line_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = _run(["segment", "--method", "masking", "--model", "someone/not-cached-model-xyz", "--quiet"], input="x\n")
    assert r.exit_code == 1
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "offline" in lines[0] and "Fix" in lines[0]
    # the tagger has its own format: a hub id is refused in one line
    r = _run(["segment", "--method", "tagger", "--model", "someone/not-cached-model-xyz", "--quiet"], input="x\n")
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.exit_code == 1 and len(lines) == 1 and "train segmenter" in lines[0]


def _cli(*args, **kw):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "nlptool", *args], capture_output=True, env=env, **kw)


def test_broken_pipe_is_quiet(tmp_path, tiny_bert_dir):
    f = tmp_path / "big.txt"
    f.write_text("我们的国家很美丽\n" * 3000, encoding="utf-8")
    p = subprocess.Popen(
        f"{sys.executable} -m nlptool segment {f} --method masking --model {tiny_bert_dir} --quiet --chunk-size 50 | head -1",
        shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = p.communicate(timeout=600)
    assert len(out.decode().splitlines()) == 1
    assert b"Traceback" not in err and b"BrokenPipe" not in err


def test_tty_stdin_is_a_usage_error(tiny_bert_dir):
    import pty

    master, slave = pty.openpty()
    try:
        r = _cli("segment", "--method", "masking", "--model", tiny_bert_dir, "--quiet", stdin=slave, timeout=120)
    finally:
        os.close(slave)
        os.close(master)
    assert r.returncode == 2
    assert b"no input" in r.stderr


def test_help_is_fast_and_torch_free():
    code = "import sys, nlptool.cli; print('torch' in sys.modules, 'transformers' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "False False", r.stderr
    r = _cli("segment", "--help")
    assert r.returncode == 0 and b"--threshold" in r.stdout


def test_pipe_segment_into_parse(tmp_path, tiny_bert_dir):
    """`nlptool segment | nlptool segment --parse dependency`: the second parses the first's words."""
    f = tmp_path / "in.txt"
    f.write_text("我们的国家很美丽。\n\n今天天气不错\n", encoding="utf-8")
    py = sys.executable
    cmd = (f"{py} -m nlptool segment {f} --method masking --model {tiny_bert_dir} -q | "
           f"{py} -m nlptool segment --parse dependency --method masking --model {tiny_bert_dir} -q")
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    out = [json.loads(x) for x in p.stdout.splitlines()]
    assert len(out) == 3
    first = _jsonl(_run(["segment", str(f), "--method", "masking", "--model", tiny_bert_dir, "-q"]).stdout)
    for a, b in zip(first, out):
        assert a["words"] == b["words"]
        kept = [h for w, h in zip(b["words"], b["heads"]) if w.strip()]
        assert kept.count(0) == (1 if kept else 0)


def test_layer_out_of_range_is_one_usage_error_before_any_record():
    """`segment --layer 99` is a usage error (exit 2, one line), not a record error."""
    from typer.testing import CliRunner

    from nlptool.cli import app

    res = CliRunner().invoke(app, ["segment", "--method", "masking", "--layer", "99", "-q"], input="你好\n")
    assert res.exit_code == 2 and res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1 and "--layer 99" in res.stderr


def test_parse_with_the_builtin_tagger_works_from_any_directory(tmp_path, monkeypatch):
    """The built-in segmenter names its teacher BERT by built-in name, so `segment --parse` finds it
    from any working directory (it used to be a path relative to the checkout)."""
    monkeypatch.chdir(tmp_path)
    r = _run(["segment", "--parse", "dependency", "--format", "conllu", "-q", "--device", "cpu"],
             input="他们来到北京天安门广场。\n")
    assert r.exit_code == 0, r.output
    rows = [line.split("\t") for line in r.stdout.splitlines() if line and not line.startswith("#")]
    assert "".join(row[1] for row in rows) == "他们来到北京天安门广场。"
    assert sum(row[6] == "0" for row in rows) == 1  # one root


def test_builtin_teacher_never_resolves_to_a_planted_directory(tmp_path, monkeypatch):
    """A directory planted at ./nlptool/data/models/zh-bert-mini in the working directory is not
    the built-in teacher: built-in models resolve inside the installed package only."""
    from nlptool.models import builtin_name_of, load_model, related_model
    from nlptool.segment.api import teacher_of

    planted = tmp_path / "nlptool" / "data" / "models" / "zh-bert-mini"
    planted.mkdir(parents=True)
    (planted / "config.json").write_text("{}", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    tagger = load_model("zh-seg-mini", kind="char-tagger", device="cpu")
    assert teacher_of(tagger) == "zh-bert-mini"
    assert builtin_name_of("nlptool/data/models/zh-bert-mini") == "zh-bert-mini"
    assert related_model("./teacher", "/models/seg") == "/models/seg/teacher"
    assert related_model("org/bert", "/models/seg") == "org/bert"
    r = _run(["segment", "--parse", "dependency", "-q", "--device", "cpu"], input="今天天气很好\n")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["heads"]


@pytest.mark.parametrize("value", ["bogus", "gpu", "tpu:0"])
def test_a_bad_device_is_a_usage_error_at_parse_time(value):
    """--device is checked when the options are parsed: exit 2, one line, no model loaded."""
    r = _run(["segment", "--device", value], input="好\n")
    assert r.exit_code == 2
    assert "--device" in r.output and "expected auto, cpu, cuda or cuda:N" in r.output


def test_segmenter_owns_the_rules_and_the_text_formats():
    """The rules and renderings the CLI relies on live in the Segmenter (no model needed)."""
    import math
    import pickle

    from nlptool.errors import UsageError
    from nlptool.segment import DEFAULT_METHOD, DEFAULT_MODELS, Segmenter, conllu_block

    for bad, why in [("abc", "a number"), ("nan", "a finite number"), (math.inf, "a finite number")]:
        with pytest.raises(UsageError, match=f"--threshold .*or {why}$"):
            Segmenter(threshold=bad)
    assert Segmenter(method="masking", threshold="0.5").config["threshold"] == 0.5
    assert Segmenter().config["method"] == DEFAULT_METHOD and DEFAULT_METHOD in DEFAULT_MODELS
    with pytest.raises(UsageError, match="--format conllu needs --parse dependency"):
        Segmenter(parse="constituency").check_format("conllu")
    s = Segmenter(parse="dependency")
    s.check_format("conllu")
    assert pickle.loads(pickle.dumps(s)) == s and s.alternatives() == ["words"]
    obj = {"text": "我 爱\n你", "words": ["我", " ", "爱\n", "你"], "heads": [0, 1, 1, 3]}
    assert s.render(obj, "text") == "我 爱\\n 你"
    assert s.render({"error": "bad"}, "text") == ""
    block = s.render(obj, "conllu")
    assert block == conllu_block(obj) and block.endswith("_\n")  # the writer's newline makes the blank line
    assert block.splitlines() == ["# text = 我 爱\\n你", "1\t我\t_\t_\t_\t_\t0\troot\t_\t_",
                                  "2\t爱\\n\t_\t_\t_\t_\t1\tdep\t_\t_", "3\t你\t_\t_\t_\t_\t2\tdep\t_\t_"]
    assert s.render({"error": "x\ny"}, "conllu") == "# error = x\\ny\n"

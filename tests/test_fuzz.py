"""Property-based fuzzing of the record contract: the shared reader and the cheap CLI
commands (tokenize-sample with a tiny dictionary; segment and similarity with a tiny BERT built in
the test) are driven with generated lines (arbitrary bytes, deep JSON, lone surrogates, huge
lines, empty lines, random keys, NaN-looking numbers) and must keep the contract:

* the exit code is in the documented set (0, or 3 with --strict);
* no traceback on stderr;
* exactly one output line per input line, in order (with --strict: the records before the first
  bad one), every one valid JSON without NaN/Infinity;
* the input file is untouched.

Example counts: HYPOTHESIS_PROFILE=ci (default, small, `make test`) or fuzz (`make fuzz`).
A counterexample found here becomes a fixed regression test in tests/test_io.py.
"""

from __future__ import annotations

import json

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the test extra")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from nlptool.jsonl import output_record, safe_json_line  # noqa: E402
from nlptool.records import jsonl_objects, read_records
from nlptool.cli import app  # noqa: E402

runner = CliRunner()

CJK = "好人北京天安门我爱的了是在"


def _deep(n: int) -> bytes:
    return ('{"text":' * n + '"x"' + "}" * n).encode()


_text = st.text(alphabet=st.sampled_from(list(CJK) + list("ab \t[]{}/\\\"'\u2028\r") + ["\x00", "\x85", "😀"]),
                max_size=30)
_json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_text, kids, max_size=3), max_leaves=8)

LINE = st.one_of(
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" ")),           # arbitrary bytes
    _text.map(lambda t: t.encode("utf-8")),                                   # plain text lines
    st.builds(lambda t, extra: json.dumps({"text": t, **extra}, ensure_ascii=False).encode(),
              _text, st.dictionaries(_text, _json_value, max_size=3)),        # records, random keys
    st.dictionaries(_text, _json_value, max_size=3).map(lambda d: json.dumps(d).encode()),  # maybe no "text"
    st.integers(1, 3000).map(_deep),                                          # deep JSON
    st.sampled_from([b'{"text": "\\ud800"}', b'{"text": "a\\udfffb"}', b'{"text": "\\ud83d\\ude00"}',
                     b'{"text": NaN}', b'{"text": 1e999}', b"{", b"[]", b'"s"', b"", b"\r", b"\xef\xbb\xbf",
                     b'{"text": "a\\nb"}', b'{"[/]": 1, "text": "[red]x[/]"}']),
    st.integers(1, 3).map(lambda k: ("好人" * (3000 * k)).encode()),           # long lines
)
LINES = st.lists(LINE, min_size=1, max_size=8)


def _file(tmp_path_factory, lines: list[bytes]):
    d = tmp_path_factory.mktemp("fuzz")
    p = d / "in.txt"
    data = b"\n".join(lines) + b"\n"
    p.write_bytes(data)
    return p, data


def _strict_json(line: str):
    return json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c} in output"))


def _check(res, n_lines: int, strict: bool, inp, data):
    assert "Traceback" not in res.output, res.output[-2000:]
    assert inp.read_bytes() == data, "input file changed"
    out = res.stdout.splitlines()
    for line in out:
        _strict_json(line)
    if strict:
        assert res.exit_code in (0, 3), res.output[-1000:]
        if res.exit_code == 3:
            assert len(out) < n_lines and len(res.stderr.strip().splitlines()) == 1
        else:
            assert len(out) == n_lines
    else:
        assert res.exit_code == 0, res.output[-1000:]
        assert len(out) == n_lines, (len(out), n_lines, res.stderr[-500:])
        errs = [o for o in map(_strict_json, out) if "error" in o]
        assert all(isinstance(o["error"], str) and "line" in o for o in errs)


# ------------------------------------------------------------------ the reader


@given(LINES)
def test_read_records_one_record_per_line(tmp_path_factory, lines):
    p, data = _file(tmp_path_factory, lines)
    recs = list(read_records([str(p)]))
    assert len(recs) == len(lines)
    assert [r.line for r in recs] == list(range(1, len(lines) + 1))
    for r in recs:
        assert (r.error is None) == bool(r.texts) or r.error is None
        if r.error is None:
            assert isinstance(r.text, str)
            r.text.encode("utf-8")  # valid Unicode text: no lone surrogate gets through
            assert safe_json_line(output_record(r, {"n": 1}))
        else:
            assert isinstance(r.error, str) and "\n" not in r.error
    assert p.read_bytes() == data


@given(LINES)
def test_jsonl_objects_never_raise_anything_but_input_data_error(lines):
    from nlptool.errors import InputDataError

    try:
        for n, obj in jsonl_objects(lines, "t.jsonl"):
            assert isinstance(obj, dict) and 1 <= n <= len(lines)
    except InputDataError as exc:
        assert exc.source == "t.jsonl" and "\n" not in str(exc)


# ------------------------------------------------------------------ the CLI

TINY_DICT = "好 100\n人 80\n好人 50\n北京 40\n北 10\n京 10\na 5\nb 5\n"


@pytest.fixture(scope="module")
def tiny_dict(tmp_path_factory):
    p = tmp_path_factory.mktemp("dict") / "dict.txt"
    p.write_text(TINY_DICT, encoding="utf-8")
    return str(p)


@given(LINES, st.booleans(), st.sampled_from(["auto", "text", "jsonl"]))
def test_tokenize_sample_contract(tmp_path_factory, tiny_dict, lines, strict, fmt):
    p, data = _file(tmp_path_factory, lines)
    args = ["tokenize-sample", str(p), "--dict", tiny_dict, "--seed", "1", "-q", "--input-format", fmt]
    res = runner.invoke(app, args + (["--strict"] if strict else []))
    _check(res, len(lines), strict, p, data)


SHORT_LINES = st.lists(LINE.filter(lambda b: len(b) < 400), min_size=1, max_size=5)


@settings(max_examples=6)
@given(SHORT_LINES, st.booleans())
def test_segment_contract_tiny_model(tmp_path_factory, tiny_bert_dir, lines, strict):
    p, data = _file(tmp_path_factory, lines)
    args = ["segment", str(p), "--method", "masking", "-m", tiny_bert_dir, "--device", "cpu", "--threshold", "0.5", "-q"]
    res = runner.invoke(app, args + (["--strict"] if strict else []))
    _check(res, len(lines), strict, p, data)


PAIR = st.builds(lambda a, b: json.dumps({"sentence1": a, "sentence2": b}, ensure_ascii=False).encode(), _text, _text)


@settings(max_examples=6)
@given(st.lists(st.one_of(PAIR, LINE.filter(lambda b: len(b) < 400)), min_size=1, max_size=5))
def test_similarity_contract_tiny_model(tmp_path_factory, tiny_bert_dir, lines):
    p, data = _file(tmp_path_factory, lines)
    res = runner.invoke(app, ["similarity", str(p), "-m", tiny_bert_dir, "--device", "cpu", "-q"])
    _check(res, len(lines), False, p, data)

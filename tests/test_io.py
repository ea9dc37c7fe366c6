"""The I/O layer (nlptool/io.py): the one output writer, path checks, the record reader's contract
on hostile lines (deep JSON, lone surrogates, bad bytes, NaN/Infinity, over-long lines), each checked
against a hand-built expectation."""

from __future__ import annotations

import errno
import json
import os
import stat

import pytest

from nlptool.engine import map_records
from nlptool.jsonl import JsonlWriter
from nlptool.paths import atomic_dir, atomic_output, guard_inputs, validate_paths
from nlptool.records import jsonl_objects, read_records
from nlptool.errors import InputDataError, UsageError


@pytest.fixture(autouse=True)
def _no_guard():
    guard_inputs(False)
    yield
    guard_inputs(False)


def _write(path, data: bytes):
    path.write_bytes(data)
    return str(path)


# ------------------------------------------------------------------ atomic_output


def test_atomic_output_replaces_whole_file_and_honours_umask(tmp_path):
    out = tmp_path / "o.txt"
    old = os.umask(0o027)
    try:
        with atomic_output(out) as fh:
            fh.write("a\n")
            assert not out.exists()  # nothing at the target until the block succeeds
    finally:
        os.umask(old)
    assert out.read_text() == "a\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~0o027
    assert [p.name for p in tmp_path.iterdir()] == ["o.txt"]  # no temp file left


def test_atomic_output_keeps_old_file_on_failure_and_keeps_existing_mode(tmp_path):
    out = tmp_path / "o.txt"
    out.write_text("old\n")
    os.chmod(out, 0o640)
    with pytest.raises(RuntimeError):
        with atomic_output(out) as fh:
            fh.write("half")
            raise RuntimeError("boom")
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["o.txt"]
    with atomic_output(out) as fh:
        fh.write("new\n")
    assert out.read_text() == "new\n" and stat.S_IMODE(out.stat().st_mode) == 0o640


def test_atomic_output_disk_full_leaves_old_file_and_names_path(tmp_path, monkeypatch):
    out = tmp_path / "o.txt"
    out.write_text("old\n")
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as ei:
        with atomic_output(out) as fh:
            fh.write("new\n")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert ei.value.errno == errno.ENOSPC and ei.value.filename == str(out)
    assert out.read_text() == "old\n" and len(list(tmp_path.iterdir())) == 1


def test_atomic_output_writes_through_symlink(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("old\n")
    link = tmp_path / "l.txt"
    link.symlink_to(target.name)
    with atomic_output(link) as fh:
        fh.write("new\n")
    assert link.is_symlink() and os.readlink(link) == "t.txt"
    assert target.read_text() == "new\n"


def test_atomic_output_writes_through_fifo_and_device_node(tmp_path):
    import threading

    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    got = []
    t = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    t.start()
    with atomic_output(fifo) as fh:
        fh.write("x\n")
    t.join(10)
    assert got == [b"x\n"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    if os.geteuid() != 0:
        pytest.skip("mknod of a character device needs root")
    null = tmp_path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    with atomic_output(null) as fh:
        fh.write("gone\n")
    assert stat.S_ISCHR(os.lstat(null).st_mode)  # still the device node, not a regular file
    full = tmp_path / "full"
    os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    with pytest.raises(OSError) as ei:
        with atomic_output(full) as fh:
            fh.write("x\n")
    assert ei.value.errno == errno.ENOSPC and stat.S_ISCHR(os.lstat(full).st_mode)


def test_atomic_output_refuses_directory_missing_dir_and_inputs(tmp_path):
    with pytest.raises(UsageError, match="is a directory"):
        with atomic_output(tmp_path):
            pass
    with pytest.raises(UsageError, match="does not exist"):
        with atomic_output(tmp_path / "nodir" / "x"):
            pass
    inp = tmp_path / "in.txt"
    inp.write_text("keep\n")
    hard = tmp_path / "hard.txt"
    os.link(inp, hard)
    sym = tmp_path / "sym.txt"
    sym.symlink_to(inp)
    for alias in (inp, hard, sym):
        with pytest.raises(UsageError, match="also an input"):
            with atomic_output(alias, inputs=[str(inp)]):
                pass
    assert inp.read_text() == "keep\n"


def test_guard_remembers_inputs_checked(tmp_path):
    inp = tmp_path / "in.txt"
    inp.write_text("keep\n")
    guard_inputs(True)
    list(read_records([str(inp)]))
    with pytest.raises(UsageError, match="also an input"):
        with JsonlWriter(str(inp)) as w:
            w.write({"a": 1})
    assert inp.read_text() == "keep\n"


def test_atomic_dir_whole_or_nothing(tmp_path):
    out = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as d:
            open(os.path.join(d, "half.bin"), "w").write("x")
            raise RuntimeError("training failed")
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(out) as d:
        open(os.path.join(d, "config.json"), "w").write("{}")
    assert sorted(os.listdir(out)) == ["config.json"]
    with atomic_dir(out) as d:  # into an existing directory: moved in on success, nothing else deleted
        open(os.path.join(d, "v2.json"), "w").write("{}")
    assert sorted(os.listdir(out)) == ["config.json", "v2.json"] and [p.name for p in tmp_path.iterdir()] == ["model"]
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        with atomic_dir(afile):
            pass


def test_validate_paths(tmp_path):
    a = tmp_path / "a.txt"
    a.write_text("x\n")
    with pytest.raises(UsageError, match="no such file"):
        validate_paths([str(tmp_path / "nope")], [])
    with pytest.raises(UsageError, match="is a directory"):
        validate_paths([str(tmp_path)], [])
    with pytest.raises(UsageError, match="two outputs"):
        validate_paths([str(a)], [str(tmp_path / "o"), str(tmp_path / "." / "o")])
    with pytest.raises(UsageError, match="one output can be '-'"):
        validate_paths([str(a)], ["-", "-"])
    validate_paths([str(a), "-"], [str(tmp_path / "new.jsonl"), "-"])


# ------------------------------------------------------------------ reading


def test_read_records_checks_paths_eagerly(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        read_records([str(tmp_path / "missing.txt")])  # no next(): raised by the call itself
    with pytest.raises(UsageError, match="input format"):
        read_records([str(tmp_path)], input_format="xml")


def test_deep_json_surrogates_and_bad_bytes_become_error_records(tmp_path):
    deep = '{"text":' * 5000 + '"x"' + "}" * 5000
    lines = [
        b"ok",
        deep.encode(),
        b'{"text": "\\ud800"}',
        b'{"text": "\\ud83d\\ude00"}',  # a valid surrogate pair: the emoji
        b'{"text": ' + b"[" * 150 + b"]" * 150 + b"}",
        b"\xff\xfe",
        b'{"text": "a\\nb"}',
        b"",
        b"after",
    ]
    f = _write(tmp_path / "in.jsonl", b"\n".join(lines) + b"\n")
    recs = list(read_records([f]))
    assert len(recs) == len(lines)
    assert [r.line for r in recs] == list(range(1, len(lines) + 1))
    ok = [r.error is None for r in recs]
    assert ok == [True, False, False, True, False, False, True, True, True]
    assert "nested too deeply" in recs[1].error and "surrogate" in recs[2].error
    assert "nested too deeply" in recs[4].error and "UTF-8" in recs[5].error
    assert recs[3].text == "\U0001F600" and recs[6].text == "a\nb" and recs[8].text == "after"
    with pytest.raises(InputDataError) as ei:
        list(read_records([f], strict=True))
    assert ei.value.line == 2


def test_jsonl_objects_same_contract():
    good = ['{"a": 1}\n', "\n", '{"b": 2}\n']
    assert [n for n, _ in jsonl_objects(good, "t.jsonl")] == [1, 3]
    for bad, what in ((['{"a": 1}\n', '{"t":' * 3000 + "1" + "}" * 3000 + "\n"], "nested"),
                      (['{"t": "\\udc00"}\n'], "surrogate"),
                      ([b'{"t": 1}\n', b"\xff\n"], "UTF-8"),
                      (['[1]\n'], "JSON object")):
        with pytest.raises(InputDataError, match=what) as ei:
            list(jsonl_objects(bad, "t.jsonl"))
        assert ei.value.line == len(bad) and ei.value.source == "t.jsonl"


def test_map_records_writes_records_before_a_strict_stop(tmp_path):
    f = _write(tmp_path / "in.txt", '好\n{"x": 1}\n坏\n'.encode())
    out = []
    with pytest.raises(InputDataError) as ei:
        for obj in map_records(read_records([f], strict=True), lambda rs: [{"n": len(r.text)} for r in rs],
                                   strict=True):
            out.append(obj)
    assert out == [{"text": "好", "n": 1}] and ei.value.line == 2


def test_map_records_isolates_a_record_the_library_cannot_take(tmp_path):
    f = _write(tmp_path / "in.txt", "a\nbad\nc\n".encode())

    def batch(recs):
        if any(r.text == "bad" for r in recs):
            raise TypeError("tokenizer cannot take it")
        return [{"ok": r.text} for r in recs]

    out = list(map_records(read_records([f]), batch))
    assert [o.get("ok") for o in out] == ["a", None, "c"]
    assert "TypeError: tokenizer cannot take it" in out[1]["error"] and out[1]["line"] == 2


# ------------------------------------------------------------------ writing records


def test_jsonl_writer_never_writes_nan_or_infinity_or_surrogates(tmp_path):
    out = tmp_path / "o.jsonl"
    with JsonlWriter(out) as w:
        w.write({"id": 1, "wmd": float("nan"), "sim": 0.5})
        w.write({"id": 2, "v": [1.0, float("inf")]})
        w.write({"id": 3, "t": "\ud800"})
        w.write({"id": 4, "ok": 1.5})
    lines = out.read_text(encoding="utf-8").splitlines()
    objs = [json.loads(x, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}")) for x in lines]
    assert len(objs) == 4
    assert objs[0]["id"] == 1 and "wmd" not in objs[0] and objs[0]["sim"] == 0.5 and "wmd" in objs[0]["error"]
    assert "v" in objs[1]["error"] and "t" in objs[2]["error"] and objs[3] == {"id": 4, "ok": 1.5}


def test_write_text_one_line_per_record(tmp_path):
    out = tmp_path / "o.txt"
    texts = ["a\nb", "c\r\nd", "e\u2028f", "plain"]
    with JsonlWriter(out) as w:
        for t in texts:
            w.write_text(t)
    got = out.read_text(encoding="utf-8")
    assert got.count("\n") == 4 and len(got.splitlines()) == 4
    assert got.splitlines()[0] == "a\\nb" and got.splitlines()[1] == "c\\r\\nd"


def test_json_output_keeps_one_record_on_one_line_for_splitlines(tmp_path):
    # found by tests/test_fuzz.py: an input line "\x85" (NEL) came out raw and split the record
    out = tmp_path / "o.jsonl"
    with JsonlWriter(out) as w:
        w.write({"text": "a\x85b\u2028c\u2029d"})
    text = out.read_text(encoding="utf-8")
    assert len(text.splitlines()) == 1 and json.loads(text) == {"text": "a\x85b\u2028c\u2029d"}


def test_over_long_line_is_an_error_record_read_in_bounded_pieces(tmp_path, monkeypatch):
    import nlptool.records

    monkeypatch.setattr(nlptool.records, "MAX_LINE_BYTES", 100)
    f = _write(tmp_path / "in.txt", b"ok\n" + b"x" * 5000 + b"\n" + b"y" * 100 + b"\n" + b"z" * 101)
    recs = list(read_records([f]))
    assert [r.error is None for r in recs] == [True, False, True, False]
    assert "5,000 bytes" in recs[1].error and recs[2].text == "y" * 100 and "101 bytes" in recs[3].error
    raw = list(read_records([f], keep_raw=True))  # lossless copying keeps every byte
    assert b"".join(r.raw for r in raw) == open(f, "rb").read()


def test_dev_stdout_on_a_pipe_is_written_through(tmp_path):
    """`-o /dev/stdout | cat`: the path resolves to a pipe (/proc/self/fd/1), which is written
    through; the atomic temp-and-rename is for regular files only."""
    import subprocess
    import sys

    code = "from nlptool.paths import atomic_output\nwith atomic_output('/dev/stdout') as fh:\n    fh.write('ok\\n')\n"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "ok\n"
    assert list(tmp_path.iterdir()) == []


def test_a_write_protected_output_is_refused_not_renamed_over(tmp_path):
    import errno
    import os

    import pytest

    target = tmp_path / "ro.txt"
    target.write_text("keep\n", encoding="utf-8")
    os.chmod(target, 0o444)
    with pytest.raises(PermissionError) as exc:
        with atomic_output(target) as fh:
            fh.write("new\n")
    assert exc.value.errno == errno.EACCES
    assert target.read_text(encoding="utf-8") == "keep\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ro.txt"]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_json_numbers_make_the_line_bad_input(tmp_path, number):
    """Python's json reads NaN/Infinity; JSON has no such numbers: the record is an error record
    (exit 3 under --strict), never accepted with the value silently dropped."""
    f = tmp_path / "in.jsonl"
    f.write_text('{"text": "好", "v": %s}\n{"text": "坏"}\n' % number, encoding="utf-8")
    recs = list(read_records([str(f)]))
    assert recs[0].error and f"{number} is not a JSON number" in recs[0].error
    assert recs[1].error is None and recs[1].text == "坏"


def test_a_saved_model_directory_follows_the_umask(tmp_path):
    """A file saved with mode 0600 inside atomic_dir (as safetensors does) gets 0o666 & ~umask."""
    import os

    from nlptool.paths import atomic_dir

    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "m") as d:
            p = os.path.join(d, "model.safetensors")
            with open(p, "w") as fh:
                fh.write("x")
            os.chmod(p, 0o600)
    finally:
        os.umask(old)
    assert oct((tmp_path / "m" / "model.safetensors").stat().st_mode & 0o777) == oct(0o644)


@pytest.mark.parametrize("line,why", [("好 -5", "not a positive number"), ("x nan", "not a positive number"),
                                      ("x 1e309", "not a positive number"), ("a 1 n extra", "4 fields")])
def test_bad_user_dictionary_lines_are_refused_with_their_line(tmp_path, line, why):
    from nlptool.errors import InputDataError
    from nlptool.segment.api import read_user_dict

    f = tmp_path / "u.txt"
    f.write_text("北京 3\n" + line + "\n", encoding="utf-8")
    with pytest.raises(InputDataError) as exc:
        read_user_dict(f)
    assert exc.value.line == 2 and why in str(exc.value)
    f.write_bytes(b"ok 1\n\xff\xfe\x00junk\n")
    with pytest.raises(InputDataError) as exc:
        read_user_dict(f)
    assert exc.value.line == 2


def test_an_input_records_own_error_and_line_survive_a_second_stage():
    """Chained stages: the earlier stage's "error"/"line" pass through a good record and are kept as
    input_error/input_line on an error record."""
    from typer.testing import CliRunner

    from nlptool.cli import app

    lines = ['{"text": "好", "error": "stage 1", "line": 7}', '{"t": "x", "error": "stage 1", "line": 9}']
    r = CliRunner().invoke(app, ["tokenize-sample", "--alpha", "inf", "-q"], input="\n".join(lines) + "\n")
    assert r.exit_code == 0, r.output
    good, bad = [json.loads(x) for x in r.stdout.splitlines()]
    assert good["error"] == "stage 1" and good["line"] == 7 and good["tokens"] == ["好"]
    assert bad["input_error"] == "stage 1" and bad["input_line"] == 9
    assert bad["line"] == 2 and "missing key 'text'" in bad["error"]

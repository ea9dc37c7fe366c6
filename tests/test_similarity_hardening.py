"""`nlptool similarity` on hostile inputs and outputs: the --matrix
file goes through the safe writer like every output, non-finite or overflowing numbers in
--vectors / --idf / --whiten files are bad input (exit 3, file and line), a list of references
names the bad element, and `--matrix m.npy | head -1` still writes the matrix."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest

from nlptool.similarity import Similarity, score_pairs
from nlptool.similarity.embedders import StaticEmbedder
from nlptool.similarity.transport import MAX_SUPPORT
from nlptool.similarity.vectors import load_word2vec, save_word2vec

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXTS = ["一个女人在弹吉他。", "一个男人在跳舞。", "他说中文。", "孩子在骑马。", "一个人在弹吉他。"]


def run(args, input=None):
    from typer.testing import CliRunner

    from nlptool.cli import app

    return CliRunner().invoke(app, ["similarity", *args], input=input)


@pytest.fixture()
def texts(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return path


def matrix_args(tiny_bert_dir, texts, out):
    return [str(texts), "--matrix", str(out), "--model", tiny_bert_dir, "--device", "cpu", "--top-k", "2", "-q"]


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


# --------------------------------------------------------------------------- 1. --matrix: the safe writer


def test_matrix_file_is_what_np_save_writes_and_symlinks_are_followed(tiny_bert_dir, texts, tmp_path):
    r = run(matrix_args(tiny_bert_dir, texts, tmp_path / "m.npy"))
    assert r.exit_code == 0, r.output
    data = (tmp_path / "m.npy").read_bytes()
    m = np.load(tmp_path / "m.npy")
    assert m.shape == (5, 5) and m[0, 0] == 0.0 and m[0, 1] > 0
    assert data == npy_bytes(m)  # streamed header + rows = numpy's own bytes
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temp file left
    (tmp_path / "link.npy").symlink_to("target.npy")
    r = run(matrix_args(tiny_bert_dir, texts, tmp_path / "link.npy"))
    assert r.exit_code == 0, r.output
    assert os.path.islink(tmp_path / "link.npy") and (tmp_path / "target.npy").read_bytes() == data


def test_matrix_written_through_a_device_node_and_a_fifo(tiny_bert_dir, texts, tmp_path):
    r = run(matrix_args(tiny_bert_dir, texts, tmp_path / "m.npy"))
    assert r.exit_code == 0, r.output
    expected = (tmp_path / "m.npy").read_bytes()
    null = tmp_path / "null.npy"
    try:
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    r = run(matrix_args(tiny_bert_dir, texts, null))
    assert r.exit_code == 0, r.output
    assert stat.S_ISCHR(os.stat(null).st_mode)  # written through, not replaced by a regular file
    fifo = tmp_path / "m.fifo.npy"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    r = run(matrix_args(tiny_bert_dir, texts, fifo))
    reader.join(timeout=60)
    assert r.exit_code == 0, r.output
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and got == [expected]


def test_matrix_path_refused_at_parse_time(tiny_bert_dir, texts, tmp_path, monkeypatch):
    # nothing may load or run: a refused path is a usage error before the model
    monkeypatch.setattr(Similarity, "load", lambda self: pytest.fail("the model loaded before the path check"))
    before = texts.read_bytes()
    inp = tmp_path / "in.npy"
    inp.write_bytes(before)
    r = run(matrix_args(tiny_bert_dir, inp, inp))  # output = input
    assert r.exit_code == 2 and "is also an input file" in r.output
    assert inp.read_bytes() == before
    for order in (["--matrix", "s.npy", "-o", "s.npy"], ["-o", "s.npy", "--matrix", "s.npy"]):
        args = [a if a != "s.npy" else str(tmp_path / "s.npy") for a in order]
        r = run([str(texts), *args, "--model", tiny_bert_dir, "-q"])  # output = output
        assert r.exit_code == 2 and "given to both" in r.output, r.output
        assert not (tmp_path / "s.npy").exists()
    for bad, msg in ((tmp_path / "nodir" / "x.npy", "does not exist"), (tmp_path, "is a directory"),
                     (tmp_path / "m.txt", "must end in .npy"), ("-", "must end in .npy")):
        r = run(matrix_args(tiny_bert_dir, texts, bad))
        assert r.exit_code == 2 and msg in r.output, r.output


def test_matrix_directory_checked_by_the_parser():
    from typer.main import get_command

    from nlptool.cli import app
    from nlptool.errors import UsageError

    cmd = get_command(app).commands["similarity"]
    with pytest.raises(UsageError):
        cmd.make_context("similarity", ["--matrix", "/nonexistent-dir-of-nlptool/x.npy"])


def test_library_matrix_closed_early_leaves_nothing(tiny_bert_dir, texts, tmp_path):
    sim = Similarity(model=tiny_bert_dir, device="cpu", top_k=2)
    out = tmp_path / "m.npy"
    it = sim.matrix(sim.read_texts([str(texts)]), str(out), block_rows=1)
    next(it)
    it.close()  # whole or not at all
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".")]
    with pytest.raises(Exception, match="must end in .npy"):
        sim.matrix(["a"], str(tmp_path / "m.txt"))


# --------------------------------------------------------------------------- 5. --matrix | head -1


def test_closed_stdout_still_finishes_the_matrix(tiny_bert_dir, tmp_path):
    # long lines, many blocks: after the reader goes away ~150 KB are still to be written, so the
    # command meets EPIPE in the middle of the run (not only at its final flush)
    texts = [("第%d句" % i) + "".join(TEXTS)[(i % 7):][:40] for i in range(240)]
    path = tmp_path / "f.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "m.npy"
    p = subprocess.Popen([sys.executable, "-m", "nlptool", "similarity", str(path), "--matrix", str(out),
                          "--pool", "mean", "--chunk-size", "4", "--model", tiny_bert_dir, "--device", "cpu", "-q"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                         env=dict(os.environ, PYTHONPATH=REPO))
    first = p.stdout.readline()
    p.stdout.close()  # `| head -1`
    err = p.stderr.read()
    assert p.wait(timeout=300) == 0, err
    assert json.loads(first)["index"] == 0 and err == b""
    m = np.load(out)
    assert m.shape == (240, 240) and np.allclose(np.diag(m), 0.0, atol=1e-9)


# --------------------------------------------------------------------------- 2. non-finite numbers in files


def write_vectors(path, rows, binary=False):
    if binary:
        save_word2vec(path, [w for w, _ in rows], np.array([v for _, v in rows], dtype=np.float32), binary=True)
    else:
        path.write_text(f"{len(rows)} 2\n" + "".join(f"{w} {a} {b}\n" for w, (a, b) in rows), encoding="utf-8")


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "1e308"])
def test_vectors_with_non_finite_numbers_are_bad_input(tmp_path, bad):
    vec = tmp_path / "v.txt"
    write_vectors(vec, [("good", ("1", "0")), ("bad", (bad, "1")), ("ok", ("0", "1"))])
    pairs = tmp_path / "p.tsv"
    pairs.write_text("good\tbad\ngood\tok\n", encoding="utf-8")
    r = run([str(pairs), "--vectors", str(vec), "-q"])
    assert r.exit_code == 3, r.output
    assert f"{vec}:3:" in r.output and "'bad'" in r.output and r.stdout == ""


def test_binary_vectors_with_nan_are_bad_input_and_large_finite_ones_work(tmp_path):
    vec = tmp_path / "v.bin"
    write_vectors(vec, [("good", (1.0, 0.0)), ("bad", (np.nan, 1.0))], binary=True)
    with pytest.raises(Exception, match="record 2 of 2 .*'bad'.*finite") as exc:
        load_word2vec(vec)
    assert type(exc.value).__name__ == "InputDataError"
    # large but finite float32 values give the right distances (no overflow in the norms)
    big = tmp_path / "big.txt"
    write_vectors(big, [("good", ("1", "0")), ("big", ("3e38", "3e38"))])
    pairs = tmp_path / "p.tsv"
    pairs.write_text("good\tbig\n", encoding="utf-8")
    r = run([str(pairs), "--vectors", str(big), "-q"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    assert row["wrd"] == pytest.approx(1 - np.sqrt(0.5), abs=1e-9)
    assert row["wmd"] == pytest.approx(np.hypot(3e38 - 1, 3e38), rel=1e-6)


@pytest.mark.parametrize("bad", ["1e308", "-1e308", "nan", "inf", "-1"])
def test_idf_tables_with_bad_weights_are_bad_input(tmp_path, bad):
    vec = tmp_path / "v.txt"
    write_vectors(vec, [("good", ("1", "0")), ("bad", ("0", "1"))])
    idf = tmp_path / "idf.tsv"
    idf.write_text(f"good\t1.5\n\nbad\t{bad}\n", encoding="utf-8")  # line 3, after an empty line
    pairs = tmp_path / "p.tsv"
    pairs.write_text("good\tbad\n", encoding="utf-8")
    r = run([str(pairs), "--vectors", str(vec), "--idf", str(idf), "-q"])
    assert r.exit_code == 3, r.output
    assert f"{idf}:3:" in r.output and "'bad'" in r.output and r.stdout == ""
    idf.write_text("good\t1.5\nbad\t0\n", encoding="utf-8")  # a zero weight is a weight
    assert run([str(pairs), "--vectors", str(vec), "--idf", str(idf), "-q"]).exit_code == 0


# --------------------------------------------------------------------------- 3. --whiten never unpickles


def _pickled_npz(path, marker):
    class Boom:  # unpickling it would create the marker directory
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    np.savez(path, mu=np.array([Boom()], dtype=object), w=np.eye(2))


def test_whiten_files_that_are_not_a_whitening(tiny_bert_dir, tmp_path):
    pairs = tmp_path / "p.tsv"
    pairs.write_text("一个女人在弹吉他。\t一个男人在跳舞。\n", encoding="utf-8")
    marker = tmp_path / "unpickled"
    _pickled_npz(tmp_path / "pk.npz", marker)
    (tmp_path / "random.bin").write_bytes(np.random.default_rng(0).bytes(4000))
    (tmp_path / "junk.npz").write_bytes(b"not a zip archive")
    np.save(tmp_path / "a.npy", np.zeros(3))
    np.savez(tmp_path / "nan.npz", mu=np.full(32, np.nan), w=np.eye(32))
    np.savez(tmp_path / "huge.npz", mu=np.zeros(32), w=np.eye(32) * 1e308)
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    np.savez(tmp_path / "shape.npz", mu=np.zeros(32), w=np.zeros(5))
    cases = {"pk.npz": "pickled", "random.bin": "random.bin:1: not UTF-8", "junk.npz": "not a .npz archive",
             "a.npy": "a .npy array or a pickle", "nan.npz": "NaN", "huge.npz": "huge",
             "other.npz": "no array 'mu'", "shape.npz": "shape (5,)"}
    for name, msg in cases.items():
        r = run([str(pairs), "--model", tiny_bert_dir, "--device", "cpu", "--whiten", str(tmp_path / name), "-q"])
        assert r.exit_code == 3, (name, r.output)
        assert msg in r.output and "allow_pickle" not in r.output and "Error:" not in r.output, (name, r.output)
        assert len(r.output.strip().splitlines()) == 1
    assert not marker.exists()
    np.savez(tmp_path / "ok.npz", mu=np.zeros(32), w=np.eye(32)[:, :8])  # a good one still loads
    r = run([str(pairs), "--model", tiny_bert_dir, "--device", "cpu", "--whiten", str(tmp_path / "ok.npz"), "-q"])
    assert r.exit_code == 0, r.output


# --------------------------------------------------------------------------- 4. list-reference mode


def test_list_reference_errors_name_the_reference(tmp_path):
    vec = tmp_path / "v.txt"
    write_vectors(vec, [("good", ("1", "0")), ("bad", ("0", "1"))])
    rows = [{"sentence1": "good", "sentence2": ["good", 5]},
            {"sentence1": "good", "sentence2": ["good", None]},
            {"sentence1": "good", "sentence2": ["good", ["bad"]]},
            {"sentence1": "good", "sentence2": ["bad", "", "good"]},
            {"sentence1": "", "sentence2": ["good", "bad"]},
            {"sentence1": "good", "sentence2": ["bad", "good"]}]
    path = tmp_path / "refs.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in rows), encoding="utf-8")
    r = run([str(path), "--vectors", str(vec), "-q"])
    assert r.exit_code == 0, r.output
    errors = [json.loads(x).get("error") for x in r.stdout.splitlines()]
    assert errors[0] == f"line 1 of {path}: sentence2[1] is a number, expected a string"
    assert errors[1].startswith(f"line 2 of {path}: sentence2[1] is null, expected a string")
    assert errors[2] == f"line 3 of {path}: sentence2[1] is a list, expected a string"
    assert errors[3] == f"line 4 of {path}: sentence2[1]: no tokens (empty text)"
    assert errors[4] == f"line 5 of {path}: first text: no tokens (empty text)"
    assert errors[5] is None
    r = run([str(path), "--vectors", str(vec), "-q", "--strict"])
    assert r.exit_code == 3 and f"{path}:1: sentence2[1] is a number, expected a string" in r.output
    # --b-key names the field; Python callers (one row per dict) get the same message
    r = run(["-", "--vectors", str(vec), "--b-key", "refs", "-q"], input='{"sentence1": "good", "refs": ["good", null]}\n')
    assert "refs[1] is null" in json.loads(r.stdout)["error"]
    out = Similarity(vectors=str(vec))([{"sentence1": "good", "sentence2": ["good", True]}])
    assert out[0]["error"] == "sentence2[1] is a boolean, expected a string"


def test_list_references_keep_the_approximate_warning(tmp_path):
    from nlptool.similarity.vectors import WordVectors

    n = MAX_SUPPORT + 40
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(n)]
    wv = WordVectors(words, {w: i for i, w in enumerate(words)}, rng.normal(size=(n, 4)).astype(np.float32))
    emb = StaticEmbedder(wv)
    long, short, other = " ".join(words), "w1 w2 w3", "w7 w8"
    pair = score_pairs(emb, [long], [short])[0]
    assert pair["warning"].startswith("approximate")
    # the first text is long: every reference is approximate, one message as in pair mode
    multi = score_pairs(emb, [long], [[short, other]], b_key="sentence2")[0]
    assert multi["warning"] == pair["warning"] and multi["wrd"][0] == pair["wrd"]
    # only one reference is long: the warning names it
    multi = score_pairs(emb, [short], [[other, long]], b_key="sentence2")[0]
    assert multi["warning"] == "sentence2[1]: " + pair["warning"]
    assert "warning" not in score_pairs(emb, [short], [[other, short]])[0]

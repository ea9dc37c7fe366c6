"""Inputs users have (docs/io.md, *Reading*): gzip/bzip2/xz files and stdin read transparently,
CSV/TSV with a header (``--input-format csv|tsv``, ``auto`` on ``*.csv``), and the columns of a
headerless pair TSV after the pair passed through. Each checked through the CLI on the cheapest
command (``tokenize-sample --alpha inf``: deterministic, no model) against the same data given
plainly, or against a hand-built expectation."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma

import pytest
from typer.testing import CliRunner

from nlptool.cli import app
from nlptool.errors import InputDataError, UsageError
from nlptool.records import read_records

LINES = ["我爱北京", '{"text": "天安门", "id": 7}', "北京天安门", "", '{"id": 1}', "我"]
PLAIN = ("\n".join(LINES) + "\n").encode()

COMPRESS = {"gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress}
SUFFIX = {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz"}


def cli(args, input=None):
    return CliRunner().invoke(app, args, input=input)


def tok(dict_path, *args, input=None):
    return cli(["tokenize-sample", "--dict", dict_path, "--alpha", "inf", "-q", *args], input=input)


def rows(res):
    return [json.loads(x) for x in res.stdout.splitlines()]


@pytest.fixture()
def plain_out(tmp_path, dict_path):
    p = tmp_path / "in.txt"
    p.write_bytes(PLAIN)
    res = tok(dict_path, str(p))
    assert res.exit_code == 0, res.output
    out = rows(res)
    assert len(out) == len(LINES) and out[0]["tokens"] == ["我爱", "北京"] and out[1]["id"] == 7
    assert "error" in out[4] and out[4]["line"] == 5  # the missing key, on line 5
    return str(p), out


# ------------------------------------------------------------------ compressed input


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz"])
@pytest.mark.parametrize("named", [True, False])
def test_compressed_file_reads_as_the_plain_file(tmp_path, dict_path, plain_out, kind, named):
    """By magic bytes: the same output with or without the usual extension; line numbers (the
    error record of line 5) are those of the decompressed text."""
    path, expect = plain_out
    p = tmp_path / (("in.txt" + SUFFIX[kind]) if named else "in.data")
    p.write_bytes(COMPRESS[kind](PLAIN))
    res = tok(dict_path, str(p))
    assert res.exit_code == 0, res.output
    got = rows(res)
    assert got[4]["error"] == expect[4]["error"].replace(path, str(p))
    got[4].pop("error"), expect[4].pop("error")
    assert got == expect


def test_compressed_stdin_and_concatenated_members(dict_path, plain_out):
    _, expect = plain_out
    half = PLAIN.index(b"\n", len(PLAIN) // 2) + 1
    data = gzip.compress(PLAIN[:half]) + gzip.compress(PLAIN[half:])  # `cat a.gz b.gz`
    res = tok(dict_path, "-", input=data)
    assert res.exit_code == 0, res.output
    got = rows(res)
    assert [r.get("tokens") for r in got] == [r.get("tokens") for r in expect]
    assert got[4]["line"] == 5 and "<stdin>" in got[4]["error"]


def test_compressed_strict_names_the_decompressed_line(tmp_path, dict_path):
    p = tmp_path / "in.jsonl.gz"
    p.write_bytes(gzip.compress('{"text": "我"}\n{"text": "北京"}\n{"text": 1}\n'.encode()))
    res = tok(dict_path, str(p), "--strict")
    assert res.exit_code == 3
    assert f"{p}:3:" in res.output and "Traceback" not in res.output
    assert [r["tokens"] for r in rows(res)] == [["我"], ["北京"]]


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz"])
def test_truncated_archive_is_one_error_line_exit_3(tmp_path, dict_path, kind):
    data = ("我爱北京\n" * 20000).encode()
    p = tmp_path / ("big" + SUFFIX[kind])
    p.write_bytes(COMPRESS[kind](data)[:-40])
    res = tok(dict_path, str(p))
    assert res.exit_code == 3, res.output
    err = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(err) == 1 and err[0].startswith(f"error: {p}:") and "corrupt or truncated" in err[0]
    assert "Traceback" not in res.output
    out = rows(res)  # the records before the damage are written, each whole
    assert all(r["tokens"] == ["我爱", "北京"] for r in out) and len(out) < 20000


def test_corrupt_gzip_stream_is_bad_input_not_a_traceback(tmp_path, dict_path):
    z = bytearray(gzip.compress(("北京天安门\n" * 500).encode()))
    z[len(z) // 2] ^= 0xFF  # a flipped byte inside the deflate data (or the CRC check then fails)
    p = tmp_path / "bad.txt"  # no .gz: found by its bytes
    p.write_bytes(bytes(z))
    res = tok(dict_path, str(p))
    assert res.exit_code == 3 and "gzip data is corrupt" in res.stderr and f"gzip -t {p}" in res.stderr
    assert "Traceback" not in res.output and "UTF-8" not in res.output


def test_compressed_reading_is_streamed_with_the_line_cap(tmp_path, monkeypatch):
    import nlptool.records

    monkeypatch.setattr(nlptool.records, "MAX_LINE_BYTES", 100)
    data = b"ok\n" + b"x" * 5000 + b"\n" + b"y" * 100 + b"\n"
    p = tmp_path / "in.gz"
    p.write_bytes(gzip.compress(data))
    recs = list(read_records([str(p)]))
    assert [r.error is None for r in recs] == [True, False, True]
    assert "5,000 bytes" in recs[1].error and recs[2].text == "y" * 100
    raw = list(read_records([str(p)], keep_raw=True))  # lossless copying gets the decompressed bytes
    assert b"".join(r.raw for r in raw) == data


def test_a_text_that_only_starts_like_bzip2_is_text(tmp_path):
    p = tmp_path / "in.txt"
    p.write_bytes(b"BZh is not a stream\n")  # "BZh" must be followed by a block-size digit
    assert [r.text for r in read_records([str(p)])] == ["BZh is not a stream"]


# ------------------------------------------------------------------ CSV / TSV with a header

CSV = ('id,text,label\n'
       '1,我爱北京,pos\n'
       '2,"北京,天安门",neg\n'          # a quoted comma
       '3,"我\n爱",pos\n'               # a quoted line break: one record over lines 4-5
       '\n'                            # a blank line: an empty record
       '5,"北京"x,neg\n'                # malformed: text after the closing quote
       '6,我\n'                         # too few fields
       '7,"天安门",""\n')


def test_csv_one_output_per_record_fields_pass_through(tmp_path, dict_path):
    p = tmp_path / "in.txt"
    p.write_text(CSV, encoding="utf-8")
    res = tok(dict_path, str(p), "--input-format", "csv")
    assert res.exit_code == 0, res.output
    out = rows(res)
    assert len(out) == 7  # 9 lines: less the header, less the second line of record 3
    assert out[0] == {"id": "1", "text": "我爱北京", "label": "pos", "tokens": ["我爱", "北京"],
                      "logp": out[0]["logp"]}
    assert out[1]["text"] == "北京,天安门" and out[1]["id"] == "2"
    assert out[2]["text"] == "我\n爱" and out[2]["label"] == "pos"
    assert out[3]["tokens"] == [] and "error" not in out[3]
    assert out[4]["line"] == 7 and "malformed CSV record" in out[4]["error"] and f"line 7 of {p}" in out[4]["error"]
    assert out[5]["line"] == 8 and "expected 3 comma-separated fields" in out[5]["error"]
    assert out[6] == {"id": "7", "text": "天安门", "label": "", "tokens": ["天安门"], "logp": out[6]["logp"]}
    res = tok(dict_path, str(p), "--input-format", "csv", "--strict")
    assert res.exit_code == 3 and f"{p}:7:" in res.stderr and len(rows(res)) == 4


def test_auto_reads_a_csv_file_as_csv_and_stdin_needs_the_format(tmp_path, dict_path):
    p = tmp_path / "reviews.csv"
    p.write_text(CSV, encoding="utf-8")
    explicit = tok(dict_path, str(p), "--input-format", "csv")
    auto = tok(dict_path, str(p))
    assert auto.exit_code == 0 and auto.stdout == explicit.stdout
    gz = tmp_path / "reviews.csv.gz"
    gz.write_bytes(gzip.compress(CSV.encode()))
    assert tok(dict_path, str(gz)).stdout == explicit.stdout.replace(str(p), str(gz))
    stdin = tok(dict_path, "--input-format", "csv", input=CSV)
    assert stdin.exit_code == 0 and stdin.stdout == explicit.stdout.replace(str(p), "<stdin>")
    as_text = tok(dict_path, str(p), "--input-format", "text")
    assert len(rows(as_text)) == CSV.count("\n") and rows(as_text)[0]["text"] == "id,text,label"


def test_auto_csv_without_the_text_column_is_a_usage_error_before_work(tmp_path, dict_path):
    p = tmp_path / "notes.csv"
    p.write_text("我爱北京,天安门\n北京,我\n", encoding="utf-8")  # text with commas, named .csv
    res = tok(dict_path, str(p))
    assert res.exit_code == 2 and res.stdout == ""
    assert "no column 'text' in the CSV header ('我爱北京', '天安门')" in res.stderr
    assert "--text-key" in res.stderr and "--input-format text" in res.stderr
    with pytest.raises(UsageError, match="no column"):
        read_records([str(p)])  # the call itself, before a model loads
    assert len(rows(tok(dict_path, str(p), "--input-format", "text"))) == 2
    q = tmp_path / "reviews.csv"
    q.write_text("id,review\n1,我爱北京\n", encoding="utf-8")
    res = tok(dict_path, str(q), "--text-key", "review")
    assert res.exit_code == 0 and rows(res) == [{"id": "1", "review": "我爱北京", "tokens": ["我爱", "北京"],
                                                 "logp": rows(res)[0]["logp"]}]


def test_auto_csv_named_file_holding_jsonl_is_read_as_before(tmp_path, dict_path):
    p = tmp_path / "x.csv"
    p.write_text('{"text": "我爱北京"}\n北京\n', encoding="utf-8")
    assert [r["tokens"] for r in rows(tok(dict_path, str(p)))] == [["我爱", "北京"], ["北京"]]


def test_csv_header_problems(tmp_path, dict_path):
    p = tmp_path / "dup.csv"
    p.write_text("text,text\na,b\n", encoding="utf-8")
    res = tok(dict_path, str(p))
    assert res.exit_code == 2 and "'text' appears twice" in res.stderr
    res = tok(dict_path, "--input-format", "csv", input="id,review\n1,x\n")  # stdin: found on reading
    assert res.exit_code == 2 and "<stdin>: no column 'text'" in res.stderr
    q = tmp_path / "bad.csv"
    q.write_bytes(b"id,te\xffxt\n1,x\n")
    res = tok(dict_path, str(q))
    assert res.exit_code == 3 and f"{q}:1: CSV header: invalid UTF-8" in res.stderr
    e = tmp_path / "empty.csv"
    e.write_bytes(b"")
    res = tok(dict_path, str(e))
    assert res.exit_code == 0 and res.stdout == ""


def test_csv_record_with_bad_bytes_or_unclosed_quote(tmp_path):
    p = tmp_path / "in.csv"
    p.write_bytes(b'\xef\xbb\xbfid,text\n1,"a\n\xff b"\n2,ok\n3,"never closed\n4,x\n')
    recs = list(read_records([str(p)]))
    assert [r.line for r in recs] == [2, 4, 5]
    assert "line 3: invalid UTF-8 at byte 0" in recs[0].error  # a record over lines 2-3
    assert recs[1].error is None and recs[1].data == {"id": "2", "text": "ok"}  # the BOM is not in the name
    assert "malformed CSV record (lines 5-6)" in recs[2].error
    with pytest.raises(InputDataError) as ei:
        list(read_records([str(p)], strict=True))
    assert ei.value.line == 2


def test_tsv_with_a_header(tmp_path, dict_path):
    p = tmp_path / "in.tsv"
    p.write_text("text\tid\n我爱北京\t1\n北京, 天安门\t2\n", encoding="utf-8")
    res = tok(dict_path, str(p), "--input-format", "tsv")
    assert res.exit_code == 0, res.output
    assert [(r["id"], r["text"]) for r in rows(res)] == [("1", "我爱北京"), ("2", "北京, 天安门")]
    res = tok(dict_path, str(p))  # auto never guesses a header for .tsv: lines are texts
    assert len(rows(res)) == 3 and rows(res)[0]["text"] == "text\tid"


def test_csv_shard_counts_records_and_keep_raw_keeps_the_record_lines(tmp_path, dict_path):
    p = tmp_path / "in.csv"
    p.write_text(CSV, encoding="utf-8")
    whole = rows(tok(dict_path, str(p)))
    parts = [rows(tok(dict_path, str(p), "--shard", f"{i}/2")) for i in range(2)]
    assert [parts[j % 2][j // 2] for j in range(len(whole))] == whole
    raw = [r.raw for r in read_records([str(p)], keep_raw=True)]
    assert raw[2] == '3,"我\n爱",pos\n'.encode() and b"".join(raw) == CSV.encode()[len("id,text,label\n"):]


def test_bad_input_format_lists_the_formats(dict_path):
    res = tok(dict_path, "--input-format", "xml", input="我\n")
    assert res.exit_code == 2 and "'csv'" in res.stderr and "'tsv'" in res.stderr


# ------------------------------------------------------------------ pair TSV: columns after the pair


def test_pair_tsv_extra_columns_pass_through(tmp_path):
    p = tmp_path / "pairs.tsv"
    p.write_text("a\tb\t4.2\tx\ty\nc\td\n\te\t\n", encoding="utf-8")
    recs = list(read_records([str(p)], keys=["sentence1", "sentence2"]))
    assert [r.data for r in recs] == [
        {"sentence1": "a", "sentence2": "b", "label": "4.2", "col4": "x", "col5": "y"},
        {"sentence1": "c", "sentence2": "d"},
        {"sentence1": "", "sentence2": "e", "label": ""},
    ]
    assert recs[0].texts == {"sentence1": "a", "sentence2": "b"}  # not texts: nothing embeds them
    recs = list(read_records([str(p)], keys=["label", "gold"]))  # a key named label: col3 instead
    assert recs[0].data == {"label": "a", "gold": "b", "col3": "4.2", "col4": "x", "col5": "y"}


def test_similarity_tsv_keeps_the_gold_score_like_the_jsonl_pair(tmp_path):
    """`similarity pairs.tsv` (s1, s2, score, source) gives what the same pairs as JSONL
    {sentence1, sentence2, label, col4} give: the score and the extra column pass through."""
    import numpy as np

    from nlptool.similarity.vectors import save_word2vec

    words = ["一个", "女人", "人", "在", "弹", "吉他", "男人", "跳舞"]
    vec = tmp_path / "vec.txt"
    save_word2vec(vec, words, np.random.default_rng(3).normal(size=(len(words), 8)).astype(np.float32))
    pairs = [("一个女人在弹吉他", "一个男人在跳舞", "1.5", "sts"), ("一个人在跳舞", "一个男人在跳舞", "4.2", "lcqmc")]
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join("\t".join(p) + "\n" for p in pairs), encoding="utf-8")
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("".join(json.dumps(dict(zip(["sentence1", "sentence2", "label", "col4"], p)),
                                        ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")
    r_tsv = cli(["similarity", str(tsv), "--vectors", str(vec), "-q"])
    r_json = cli(["similarity", str(jsonl), "--vectors", str(vec), "-q"])
    assert r_tsv.exit_code == 0, r_tsv.output
    assert r_json.exit_code == 0, r_json.output
    assert r_tsv.stdout == r_json.stdout
    out = rows(r_tsv)
    assert [(r["label"], r["col4"]) for r in out] == [("1.5", "sts"), ("4.2", "lcqmc")] and "wrd" in out[0]


def test_a_line_reader_refuses_csv_lines_instead_of_reading_the_header_as_text():
    """The ray engine's --output-dir parses lines one at a time (records._parse_line): a CSV/TSV
    line there is an error record, never a header silently taken for a text."""
    from nlptool.records import _parse_line

    rec = _parse_line(b"id,text\n", "in.csv", 1, "csv", ["text"], False, ())
    assert rec.error and "header row" in rec.error and rec.texts == {}


def test_output_dir_refuses_what_it_cannot_read_line_by_line(tmp_path):
    """--output-dir (Ray, one line at a time) refuses CSV/TSV and compressed files before Ray starts."""
    import gzip as _gzip

    from nlptool.errors import UsageError
    from nlptool.ray_engine import write_dir

    gz = tmp_path / "in.txt"  # compressed, whatever its name
    gz.write_bytes(_gzip.compress("你好\n".encode()))
    csv_file = tmp_path / "in.csv"
    csv_file.write_text("text\n你好\n", encoding="utf-8")
    plain = tmp_path / "plain.txt"
    plain.write_text("你好\n", encoding="utf-8")
    for inputs, fmt, needle in [([gz], "auto", "a gzip file"), ([csv_file], "auto", "read as CSV"),
                                ([plain], "csv", "--input-format csv"), ([plain], "tsv", "--input-format tsv")]:
        with pytest.raises(UsageError, match=needle):
            write_dir([str(p) for p in inputs], str(tmp_path / "out"), object(), input_format=fmt)
    assert not (tmp_path / "out").exists()


def test_count_lines_finds_compression_by_magic_bytes(tmp_path):
    import gzip as _gzip

    from nlptool.cli.console import count_lines

    disguised = tmp_path / "in.txt"
    disguised.write_bytes(_gzip.compress(b"a\nb\nc\n"))
    plain = tmp_path / "p.txt"
    plain.write_bytes(b"a\nb\nc")
    assert count_lines([str(disguised)]) is None and count_lines([str(plain)]) == 3

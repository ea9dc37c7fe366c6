"""nlptool.corpus: markup stripping, the CJK filter, de-duplication and the overlap check, on hand examples."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from nlptool import corpus as C


def test_strip_roff_keeps_text_and_macro_arguments():
    page = "\n".join([
        '.\\" a comment that must vanish',
        '.TH LS 1 2022 "GNU coreutils" 用户命令',
        ".SH 名称",
        "ls \\- 列出目录内容",
        ".PP",
        "\\fBls\\fP [\\fI\\,选项\\/\\fP]... \\(em 完",
        '.B "粗体 文本"',
    ])
    lines = [x.strip() for x in C.strip_roff(page).splitlines() if x.strip()]
    assert lines == ["名称", "ls - 列出目录内容", "ls [选项]... — 完", "粗体 文本"]


def test_html_to_text_blocks_entities_and_skipped_elements():
    html = ("<html><head><title>标题</title><style>p{}</style></head><body>"
            "<p>第一段&nbsp;文字&amp;符号<b>加粗</b>继续</p><pre>code 代码块</pre>"
            "<ul><li>列表一</li><li>列表二</li></ul><script>var x='脚本';</script></body></html>")
    assert C.html_to_text(html).splitlines() == ["标题", "第一段 文字&符号加粗继续", "列表一", "列表二"]


def test_strip_rst_roles_links_directives_and_adornments():
    rst = "\n".join([
        ".. SPDX-License-Identifier: GPL-2.0",
        ".. include:: ../disclaimer-zh_CN.rst",
        "",
        ":Original: Documentation/process/howto.rst",
        "",
        "如何参与开发",
        "============",
        "",
        "请阅读 :ref:`提交补丁 <submittingpatches>` 和 `内核网站 <https://kernel.org>`_ ，",
        "使用 ``make`` 命令和 **重要** 的 *选项*。",
    ])
    lines = [x for x in C.strip_rst(rst).splitlines() if x.strip()]
    assert lines == ["如何参与开发", "请阅读 提交补丁 和 内核网站 ，", "使用 make 命令和 重要 的 选项。"]


def test_join_wrapped_rejoins_chinese_but_not_across_paragraphs_or_ascii():
    lines = ["这是一个被折行的", "句子。", "", "新段落开始", "English next", "结尾，", "继续"]
    assert C.join_wrapped(lines) == ["这是一个被折行的句子。", "", "新段落开始", "English next", "结尾，继续"]


def test_keep_line_counts_cjk_by_hand():
    assert C.cjk_count("使用 make 命令") == 4
    # 4 ideographs: too few, whatever the ratio
    assert not C.keep_line("使用命令")
    # 6 ideographs of 6 + 4 ASCII non-space = 0.6 CJK
    assert C.keep_line("配置文件路径 ab/c")
    # 5 ideographs among 5 + 10 ASCII = 0.33: mostly ASCII
    assert not C.keep_line("请运行命令 --verbose=1")
    assert C.cjk_ratio("   ") == 0.0
    # CJK punctuation counts toward the ratio
    assert C.cjk_ratio("你好，世界。") == 1.0


def test_dedupe_first_occurrence_in_order_and_across_calls():
    seen: set[str] = set()
    assert list(C.dedupe(["甲", "乙", "甲", "丙", "乙"], seen)) == ["甲", "乙", "丙"]
    assert list(C.dedupe(["丙", "丁"], seen)) == ["丁"]


def _brute_overlap(line, pieces, texts, n=8):
    key = C.overlap_key(line)
    ps = [C.overlap_key(p) for p in pieces]
    ts = [C.overlap_key(t) for t in texts]
    return any(len(p) >= n and p in key for p in ps) or (len(key) >= n and any(key in t for t in ts))


def test_overlap_index_matches_brute_force():
    pieces = ["今天天气很好适合出门", "房间很干净，服务也很好", "短句"]
    texts = pieces + ["这是一个很长的评测段落，里面有很多句子。第二句也在这里面出现。"]
    index = C.OverlapIndex(pieces, texts, min_len=8)
    lines = [
        "我说今天天气很好适合出门散步",      # contains a piece
        "房间很干净,服务也很好!",             # full-width/half-width comma: NFKC makes it contain the piece
        "第二句也在这里面出现",              # inside a text
        "短句",                             # piece shorter than 8: ignored both ways
        "完全无关的一句话而已啊",            # no overlap
        "这是一个很长的评测",               # inside a text (9 chars)
        "今天天气很好适合",                  # 8 chars, inside a text
        "今天 天气 很好 适合 出门",          # whitespace removed before comparing
    ]
    got = [index.overlaps(x) for x in lines]
    assert got == [_brute_overlap(x, pieces, texts) for x in lines]
    assert got == [True, True, True, False, False, True, True, True]


def test_copyright_licenses_reads_files_star_paragraph():
    text = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            "Files: debian/*\nCopyright: x\nLicense: GPL-2+\n\n"
            "Files: *\nCopyright: y\nLicense: GFDL-1.2+\n\n"
            "License: GFDL-1.2+\n text\n")
    assert C.copyright_licenses(text) == {"main": "GFDL-1.2+", "all": ["GFDL-1.2+", "GPL-2+"]}


def test_document_lines_by_suffix(tmp_path):
    page = tmp_path / "ls.1.gz"
    with gzip.open(page, "wt", encoding="utf-8") as fh:
        fh.write(".SH 描述\n列出目录中的\n文件信息。\n")
    assert C.document_lines(page) == ["描述", "列出目录中的文件信息。"]
    html = tmp_path / "a.html"
    html.write_text("<p>帮助<i>页面</i></p><p>第二段</p>", encoding="utf-8")
    assert C.document_lines(html) == ["帮助页面", "第二段"]


def test_evaluation_texts_reads_every_source(shared_data):
    ev = C.evaluation_texts(shared_data)
    assert set(ev) == {"sighan2005", "ud", "sts", "cmrc2018", "chnsenticorp", "shift"}
    assert len(ev["ud"][0]) == 500
    assert len(ev["sts"][0]) == 2 * (5231 + 1458)
    assert all(" " not in x for x in ev["sighan2005"][0][:50])


def test_built_corpus_has_no_overlap(shared_data):
    """The corpus the stage script trains on (build/corpus) holds no evaluation line; a sample is
    re-checked by brute force as well."""
    root = Path(__file__).resolve().parents[1] / "build" / "corpus"
    if not (root / "READY").exists():
        pytest.skip(f"{root}/READY missing: run scripts/build_corpus.py --out build/corpus")
    stats = json.loads((root / "stats.json").read_text(encoding="utf-8"))
    assert stats["overlap_check"]["final_check_overlaps"] == {"corpus.txt": 0, "heldout.txt": 0}
    heldout = (root / "heldout.txt").read_text(encoding="utf-8").splitlines()
    assert heldout and not any(len(x) == 0 for x in heldout)
    ev = C.evaluation_texts(shared_data)
    texts = {C.overlap_key(t) for _, ts in ev.values() for t in ts}
    joined = "\n".join(texts)
    for line in heldout[:100]:
        key = C.overlap_key(line)
        assert len(key) < 8 or key not in joined, line

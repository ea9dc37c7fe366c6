"""The documented examples are true: every ``console`` block of README.md and docs/*.md is run and
its output compared with what the page shows.

A ``console`` block holds ``$ command`` lines, each followed by what it prints. A command may go on
over lines ending in ``\\`` and may carry a here-document (``<<'EOF'`` ... ``EOF``). The page's
output lines are compared with what the command prints:

* a line that starts a JSON value (``{`` or ``[``) is compared as JSON; the value may be wrapped over
  several lines and may be followed by a ``# comment``. A number equals the actual value rounded to
  the decimals the page shows (``4.55`` matches 4.5490...). ``...`` stands for elided content: as an
  object member (other keys), a list item (any number of items) or a value (any value). Keys are
  compared in order;
* any other line is compared as text, exactly (trailing blanks aside); a line ``...`` stands for any
  number of lines;
* stdout must be shown whole (elided with ``...`` where the page says so); a shown line that is not
  the next stdout line must be one of the lines on stderr (messages are shown selectively). A line
  ending in ``(stderr)`` is looked for on stderr only;
* the command must exit 0, or non-zero when the page shows an ``error:`` line for it.

Each block runs in one ``bash -c`` (its commands share a working directory and files, as in a
terminal) in a temporary directory holding the repository's ``data/`` files the block names, with
this venv's ``bin`` first on PATH, offline (``HF_HUB_OFFLINE=1``), built-in models only.
``../shared/data`` (the shared evaluation data beside the repository) resolves to the shared data
directory when the block names it; a block naming a shared file that is absent, or calling ``jq``
where it is not installed, is skipped with the reason.

A block that cannot run here (it needs a GPU, a Ray cluster, data the page does not provide) is
marked in the page, on the line just before its opening fence, with ``<!-- not run: REASON -->``.

When a page drifts, re-run its commands and paste the true output into the page; never loosen
this test to accept a stale page.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<reason>\S.*?)\s*-->$")
HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")
SHARED_PATH = re.compile(r"\.\./shared/data/[^\s'\"|;&)<>]+")
STDERR_MARK = re.compile(r"\s+\(stderr\)$")
BLOCK_TIMEOUT_S = 900


# ---------------------------------------------------------------- reading the pages

@dataclass
class Command:
    text: str                      # the command, continuation lines and here-document included
    line: int                      # the page's line of its ``$``
    shown: list[tuple[int, str]] = field(default_factory=list)   # (page line, text) of its output


@dataclass
class Block:
    page: Path
    line: int                      # the page's line of the opening fence
    lang: str
    body: list[tuple[int, str]]
    not_run: str | None = None

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def commands(self) -> list[Command]:
        return parse_commands(self.body)


def read_blocks(page: Path) -> list[Block]:
    """Every fenced block of a markdown page, with its language and the ``not run`` marker of the
    line just before it."""
    lines = page.read_text(encoding="utf-8").split("\n")
    blocks, current, previous = [], None, ""
    for no, line in enumerate(lines, 1):
        if current is None:
            if line.startswith("```"):
                m = NOT_RUN.match(previous.strip())
                current = Block(page, no, line[3:].strip(), [], m.group("reason") if m else None)
            elif line.strip():
                previous = line
        elif line.startswith("```"):
            blocks.append(current)
            current, previous = None, ""
        else:
            current.body.append((no, line))
    assert current is None, f"{page}: a code block opened at line {current.line} is never closed"
    return blocks


def parse_commands(body: list[tuple[int, str]]) -> list[Command]:
    """The ``$`` commands of a console block and the output lines shown after each."""
    commands: list[Command] = []
    i = 0
    while i < len(body):
        no, line = body[i]
        i += 1
        if not line.startswith("$ "):
            assert commands or not line.strip(), f"line {no}: output before the first `$ command`"
            if commands:
                commands[-1].shown.append((no, line))
            continue
        text = [line[2:]]
        while text[-1].endswith("\\") and i < len(body):
            text.append(body[i][1])
            i += 1
        for m in HEREDOC.finditer("\n".join(text)):
            end = m.group(2)
            while i < len(body):
                text.append(body[i][1])
                i += 1
                if text[-1].strip() == end:
                    break
            else:
                raise AssertionError(f"line {no}: here-document {end} is never closed")
        commands.append(Command("\n".join(text), no))
    for c in commands:  # blank lines separate examples; they are not output
        while c.shown and not c.shown[-1][1].strip():
            c.shown.pop()
    return commands


ALL_BLOCKS = [b for page in PAGES for b in read_blocks(page)]
CONSOLE = [b for b in ALL_BLOCKS if b.lang == "console"]
RUN = [b for b in CONSOLE if b.not_run is None]


# ---------------------------------------------------------------- a JSON reader that takes `...`

class Num(str):
    """A number as the page writes it (its digits say how precisely it is shown)."""


class Elided:
    def __repr__(self) -> str:
        return "..."


ELIDED = Elided()


class ShownObject(list):
    """An object as shown: its (key, value) pairs in order; ``open`` when it has a ``...`` member."""
    open = False


_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_WS = re.compile(r"\s*")


class _Reader:
    def __init__(self, s: str):
        self.s, self.i = s, 0

    def ws(self) -> None:
        self.i = _WS.match(self.s, self.i).end()

    def peek(self, t: str) -> bool:
        self.ws()
        return self.s.startswith(t, self.i)

    def take(self, t: str) -> None:
        if not self.peek(t):
            raise ValueError(f"expected {t!r} at column {self.i + 1}")
        self.i += len(t)

    def value(self):
        self.ws()
        s, i = self.s, self.i
        if s.startswith("...", i):
            self.i += 3
            return ELIDED
        if s.startswith("{", i):
            return self.obj()
        if s.startswith("[", i):
            return self.array()
        if s.startswith('"', i):
            text, self.i = json.decoder.scanstring(s, i + 1)
            return text
        for word, val in (("true", True), ("false", False), ("null", None)):
            if s.startswith(word, i):
                self.i += len(word)
                return val
        m = _NUMBER.match(s, i)
        if not m or m.end() == i:
            raise ValueError(f"no JSON value at column {i + 1}")
        self.i = m.end()
        return Num(m.group())

    def obj(self) -> ShownObject:
        self.take("{")
        out = ShownObject()
        if self.peek("}"):
            self.i += 1
            return out
        while True:
            if self.peek("..."):
                self.i += 3
                out.open = True
            else:
                self.ws()
                if not self.s.startswith('"', self.i):
                    raise ValueError(f"expected a key at column {self.i + 1}")
                key, self.i = json.decoder.scanstring(self.s, self.i + 1)
                self.take(":")
                out.append((key, self.value()))
            if self.peek("}"):
                self.i += 1
                return out
            self.take(",")

    def array(self) -> list:
        self.take("[")
        out: list = []
        if self.peek("]"):
            self.i += 1
            return out
        while True:
            out.append(self.value())
            if self.peek("]"):
                self.i += 1
                return out
            self.take(",")


def read_shown_json(text: str):
    """The JSON value a page shows (``...`` allowed; a trailing ``# comment`` ignored).

    Raises:
        ValueError: not such a value.
    """
    r = _Reader(text)
    v = r.value()
    if v is ELIDED or not re.fullmatch(r"\s*(#.*)?", text[r.i:], re.S):
        raise ValueError("not a JSON value")
    return v


def _depth(text: str) -> int:
    """Open brackets minus closed ones outside strings."""
    depth, in_str, esc = 0, False, False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
    return depth


def json_mismatch(shown, actual, path: str = "") -> str | None:
    """None when ``actual`` (parsed JSON) is what the page shows, else where and how it differs."""
    where = path or "the value"
    if shown is ELIDED:
        return None
    if isinstance(shown, Num):
        if isinstance(actual, bool) or not isinstance(actual, (int, float)):
            return f"{where}: the page shows {shown}, the command printed {json.dumps(actual, ensure_ascii=False)}"
        want = Decimal(shown)
        half_ulp = Decimal(5).scaleb(want.as_tuple().exponent - 1)
        if abs(Decimal(repr(actual)) - want) > half_ulp:
            return f"{where}: the page shows {shown}, the command printed {actual!r}"
        return None
    if isinstance(shown, ShownObject):
        if not isinstance(actual, dict):
            return f"{where}: the page shows an object, the command printed {json.dumps(actual, ensure_ascii=False)}"
        keys = [k for k, _ in shown]
        missing = [k for k in keys if k not in actual]
        if missing:
            return f"{where}: keys {missing} are not in the output (its keys: {list(actual)})"
        if not shown.open and set(actual) != set(keys):
            return f"{where}: the output has keys the page does not show: {[k for k in actual if k not in keys]}"
        order = [k for k in actual if k in keys]
        if order != keys:
            return f"{where}: keys in another order: page {keys}, output {order}"
        for k, v in shown:
            bad = json_mismatch(v, actual[k], f"{path}.{k}" if path else k)
            if bad:
                return bad
        return None
    if isinstance(shown, list):
        if not isinstance(actual, list):
            return f"{where}: the page shows a list, the command printed {json.dumps(actual, ensure_ascii=False)}"
        if not _list_matches(shown, actual, path):
            if ELIDED not in shown and len(shown) != len(actual):
                return f"{where}: the page shows {len(shown)} items, the command printed {len(actual)}"
            for n, (s, a) in enumerate(zip(shown, actual)):
                if s is ELIDED:
                    break
                bad = json_mismatch(s, a, f"{path}[{n}]")
                if bad:
                    return bad
            return f"{where}: the items differ: the command printed {json.dumps(actual, ensure_ascii=False)}"
        return None
    if shown != actual or type(shown) is not type(actual):
        return (f"{where}: the page shows {json.dumps(shown, ensure_ascii=False)}, "
                f"the command printed {json.dumps(actual, ensure_ascii=False)}")
    return None


def _list_matches(shown: list, actual: list, path: str) -> bool:
    if not shown:
        return not actual
    head, rest = shown[0], shown[1:]
    if head is ELIDED:
        return any(_list_matches(rest, actual[k:], path) for k in range(len(actual) + 1))
    return bool(actual) and json_mismatch(head, actual[0], path) is None and _list_matches(rest, actual[1:], path)


# ---------------------------------------------------------------- comparing a command's output

@dataclass
class Shown:
    line: int          # page line where it starts
    text: str          # as on the page (lines joined for a wrapped JSON value)
    value: object = None   # the parsed JSON value, or None for a text line
    is_json: bool = False
    stderr_only: bool = False
    any_lines: bool = False   # a `...` line


def shown_items(shown: list[tuple[int, str]]) -> list[Shown]:
    items, i = [], 0
    while i < len(shown):
        no, line = shown[i]
        i += 1
        stderr_only = bool(STDERR_MARK.search(line)) and not line.lstrip().startswith(("{", "["))
        line = STDERR_MARK.sub("", line) if stderr_only else line
        if line.strip() == "...":
            items.append(Shown(no, line, any_lines=True))
            continue
        if line.startswith(("{", "[")):
            j, text = i, line
            while _depth(text) > 0 and j < len(shown):
                text += "\n" + shown[j][1]
                j += 1
            try:
                items.append(Shown(no, text, read_shown_json(text), is_json=True, stderr_only=stderr_only))
                i = j
                continue
            except ValueError:
                pass  # not JSON (numpy's printout, say): compared as text
        items.append(Shown(no, line.rstrip(), stderr_only=stderr_only))
    return items


def line_matches(item: Shown, actual: str) -> bool:
    if item.is_json:
        try:
            value = json.loads(actual)
        except ValueError:
            return False
        return json_mismatch(item.value, value) is None
    return item.text == actual.rstrip()


def _cut(text: str, n: int = 600) -> str:
    return text if len(text) <= n else text[:n] + f"... ({len(text)} characters)"


def output_mismatch(items: list[Shown], out: str, err: str) -> str | None:
    """None when the page's lines are the command's output (module docstring), else why not."""
    out_lines, err_lines = out.splitlines(), err.splitlines()
    o = e = 0
    skipping = False
    for item in items:
        if item.any_lines:
            skipping = True
            continue
        if not item.stderr_only:
            candidates = range(o, len(out_lines)) if skipping else range(o, min(o + 1, len(out_lines)))
            j = next((j for j in candidates if line_matches(item, out_lines[j])), None)
            if j is not None:
                o, skipping = j + 1, False
                continue
        j = next((j for j in range(e, len(err_lines)) if line_matches(item, err_lines[j])), None)
        if j is not None:
            e = j + 1
            continue
        detail = ""
        if item.is_json and o < len(out_lines):
            try:
                detail = "\n  " + _cut(json_mismatch(item.value, json.loads(out_lines[o])) or "")
            except ValueError:
                detail = "\n  (the stdout line is not JSON)"
        return (f"page line {item.line} is not what the command printed:\n  page:   {_cut(item.text)}"
                f"\n  stdout line {o + 1}: {_cut(out_lines[o]) if o < len(out_lines) else '(none left)'}{detail}")
    if o < len(out_lines) and not skipping:
        return f"the command printed lines the page does not show, from stdout line {o + 1}: {_cut(out_lines[o])}"
    return None


# ---------------------------------------------------------------- running a block

def shared_data_dir() -> Path:
    """``$NLPTOOL_SHARED_DATA``, default ``../shared/data`` beside the repository (as conftest.py)."""
    return Path(os.environ.get("NLPTOOL_SHARED_DATA") or ROOT.parent / "shared" / "data").resolve()


def _venv_bin() -> Path:
    return Path(sys.prefix) / "bin"


def _prepare(block: Block, tmp: Path) -> Path:
    """The working directory for a block: data/ files it names, ../shared/data when it names it."""
    run = tmp / "run"
    run.mkdir()
    text = "\n".join(c.text for c in block.commands)
    for f in sorted((ROOT / "data").rglob("*")):
        rel = f.relative_to(ROOT).as_posix()
        if f.is_file() and rel in text:
            (run / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, run / rel)
    shared = SHARED_PATH.findall(text)
    if shared:
        data = shared_data_dir()
        missing = [p for p in shared if not (data / p[len("../shared/data/"):]).exists()]
        if missing:
            msg = f"{block.name}: shared data not found: {', '.join(sorted(set(missing)))} (set NLPTOOL_SHARED_DATA)"
            print(f"SKIP: {msg}")
            pytest.skip(msg)
        (tmp / "shared").mkdir()
        (tmp / "shared" / "data").symlink_to(data, target_is_directory=True)
    if re.search(r"(^|[|;&]\s*)jq\b", text, re.M) and not shutil.which("jq"):
        pytest.skip(f"{block.name}: jq is not installed")
    return run


def run_block(block: Block, tmp: Path) -> list[tuple[str, str, int]]:
    """Run a block's commands, in order, in one bash; (stdout, stderr, exit code) of each."""
    run = _prepare(block, tmp)
    res = tmp / "res"
    res.mkdir()
    script = ["cd " + json.dumps(str(run))]
    for n, c in enumerate(block.commands):
        script.append(f"{{\n{c.text}\n}} >'{res}/{n}.out' 2>'{res}/{n}.err' </dev/null\necho $? >'{res}/{n}.rc'")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NLPTOOL_", "PYTEST_"))}
    env.update(PATH=f"{_venv_bin()}{os.pathsep}{env.get('PATH', '')}", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               LC_ALL="C.UTF-8", PYTHONUTF8="1", HOME=str(tmp))
    env.pop("VIRTUAL_ENV", None)
    if "HF_HOME" not in os.environ:
        env["HF_HOME"] = str(tmp / "hf")  # nothing cached: built-in models only
    subprocess.run(["bash", "-c", "\n".join(script)], env=env, cwd=run, timeout=BLOCK_TIMEOUT_S, check=False)
    out = []
    for n in range(len(block.commands)):
        rc = (res / f"{n}.rc").read_text().strip()
        out.append(((res / f"{n}.out").read_text(encoding="utf-8", errors="replace"),
                    (res / f"{n}.err").read_text(encoding="utf-8", errors="replace"), int(rc)))
    return out


# ---------------------------------------------------------------- the tests

def test_pages_have_console_examples():
    """The parser sees the examples (a change of fence style would otherwise test nothing)."""
    assert len(RUN) >= 8, [b.name for b in CONSOLE]
    assert sum(len(b.commands) for b in RUN) >= 30


def test_examples_are_console_blocks():
    """A block that shows `$ command` lines is a console block, so this test runs it."""
    bad = [b.name for b in ALL_BLOCKS if b.lang != "console" and any(line.startswith("$ ") for _, line in b.body)]
    assert not bad, f"show `$ command` examples in ```console blocks (or drop the `$ `): {bad}"


def test_not_run_markers_are_justified():
    """Exclusions are few, explicit and on console blocks only."""
    for b in ALL_BLOCKS:
        if b.not_run is not None:
            assert b.lang == "console", f"{b.name}: a `not run` marker on a {b.lang or 'plain'} block"
            assert len(b.not_run) >= 15, f"{b.name}: say why it is not run"
    assert len(CONSOLE) - len(RUN) <= 10, [b.name for b in CONSOLE if b.not_run]


def _samples_unseeded(cmd: str) -> bool:
    for part in re.split(r"\|", cmd):
        if "nlptool tokenize-sample" in part and "--seed" not in part:
            if "--nbest" not in part and not re.search(r"--alpha\s+inf\b", part):
                return True
    return False


def test_sampling_examples_are_seeded():
    """A documented sample is reproducible only with --seed (tokenize-sample draws from the OS otherwise)."""
    bad = [f"{b.name} ({c.line})" for b in CONSOLE for c in b.commands if _samples_unseeded(c.text)]
    assert not bad, f"add --seed to these examples: {bad}"


@pytest.mark.slow
@pytest.mark.parametrize("block", RUN, ids=[b.name for b in RUN])
def test_console_example(block: Block, tmp_path: Path):
    if not (_venv_bin() / "nlptool").exists():
        pytest.skip(f"no nlptool console script in {_venv_bin()} (pip install -e .)")
    results = run_block(block, tmp_path)
    for cmd, (out, err, rc) in zip(block.commands, results):
        where = f"{block.name.split(':')[0]}:{cmd.line}: $ {cmd.text}"
        items = shown_items(cmd.shown)
        expects_error = any(i.text.startswith("error:") for i in items)
        if expects_error and rc == 0:
            pytest.fail(f"{where}\nthe page shows an error, but the command exited 0; stdout:\n{out}")
        if not expects_error and rc != 0:
            pytest.fail(f"{where}\nexited {rc}; stderr:\n{err[-3000:]}")
        bad = output_mismatch(items, out, err)
        if bad:
            pytest.fail(f"{where}\n{bad}\n(re-run the command and paste its true output into the page)"
                        f"\nfull stdout:\n{_cut(out, 4000)}")


# ---------------------------------------------------------------- the comparison itself

def test_comparison_rules():
    """The rules the examples are held to, on hand-made cases (so a loose comparison cannot hide)."""
    items = shown_items([(1, '{"a": 4.55, "b": [1, ...], ...}  # note'), (2, "done")])
    assert output_mismatch(items, '{"a": 4.5490001, "b": [1, 2, 3], "c": "x"}\ndone\n', "") is None
    assert output_mismatch(items, '{"a": 4.56, "b": [1, 2], "c": "x"}\ndone\n', "")        # 4.56 is not 4.55
    assert output_mismatch(items, '{"b": [1], "a": 4.55}\ndone\n', "")                      # key order
    assert output_mismatch(items, '{"a": 4.55, "b": [2]}\ndone\n', "")                      # first item
    assert output_mismatch(items, '{"a": 4.55, "b": [1]}\ndone\nmore\n', "")                # unshown stdout
    assert output_mismatch(items, '{"a": 4.55, "b": [1]}\n', "x\ndone\n") is None           # a message on stderr
    closed = shown_items([(1, '{"a": 1,'), (2, ' "b": "x"}')])                              # wrapped over lines
    assert output_mismatch(closed, '{"a": 1, "b": "x"}\n', "") is None
    assert output_mismatch(closed, '{"a": 1, "b": "x", "c": 2}\n', "")                      # an unshown key
    assert output_mismatch(closed, '{"a": 1.0, "b": "x"}\n', "") is None                    # 1 shown: 1.0 rounds to it
    assert output_mismatch(closed, '{"a": 1, "b": "y"}\n', "")
    assert output_mismatch(shown_items([(1, "[0.1, 1e-05]")]), "[0.1, 1.4e-05]\n", "") is None
    assert output_mismatch(shown_items([(1, "[0.1, 1e-05]")]), "[0.1, 1.6e-05]\n", "")
    text = shown_items([(1, "a b"), (2, "..."), (3, "z"), (4, "log line   (stderr)")])
    assert output_mismatch(text, "a b\nc\nd\nz\n", "x\nlog line\n") is None
    assert output_mismatch(text, "a b\nz\n", "")                                            # the stderr line
    assert output_mismatch(text, "a  b\nz\n", "log line\n")                                 # text is exact
    assert output_mismatch(shown_items([(1, "[[0.    0.369]"), (2, " [0.369 0.   ]]")]),
                           "[[0.    0.369]\n [0.369 0.   ]]\n", "") is None                   # numpy: text
    cmds = parse_commands([(1, "$ cat > a.txt <<'EOF'"), (2, "$ not a command"), (3, "EOF"), (4, "$ echo a \\"),
                           (5, "  b"), (6, "a b"), (7, "")])
    assert [c.text for c in cmds] == ["cat > a.txt <<'EOF'\n$ not a command\nEOF", "echo a \\\n  b"]
    assert cmds[1].shown == [(6, "a b")]
    assert _samples_unseeded("echo x | nlptool tokenize-sample -k 2")
    assert not _samples_unseeded("echo x | nlptool tokenize-sample --alpha inf | nlptool wordvec-dim --corpus -")

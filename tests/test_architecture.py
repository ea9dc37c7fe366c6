"""The floor plan holds: no import cycle, layers import downwards only, one error boundary, one home per command default."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "nlptool")

#: The shared core: imports nothing above it (no command package, no CLI, no workers).
CORE = {"nlptool", "nlptool.errors", "nlptool.text", "nlptool.batching", "nlptool.paths", "nlptool.records",
        "nlptool.jsonl", "nlptool.engine", "nlptool.models", "nlptool.training", "nlptool.corpus",
        "nlptool.bert", "nlptool.wordpiece", "nlptool.threads"}


def _module_name(path: str) -> str:
    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def import_graph() -> dict[str, set[str]]:
    """Every own-module import of every module of nlptool, at any depth (inside functions too; not
    the ``if TYPE_CHECKING:`` imports that exist for annotations only),
    resolved to the module it names (``from .x import y`` counts ``x``, or ``x.y`` when that is a
    module)."""
    modules = {}
    for dirpath, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                modules[_module_name(path)] = path
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        is_pkg = path.endswith("__init__.py")
        base = mod if is_pkg else mod.rsplit(".", 1)[0]
        tree = ast.parse(open(path, encoding="utf-8").read(), path)
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and getattr(block.test, "id", getattr(block.test, "attr", None)) == "TYPE_CHECKING"
                       for n in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in typing_only:  # annotations only, never imported at run time
                continue
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    b = base
                    for _ in range(node.level - 1):
                        b = b.rsplit(".", 1)[0]
                    src = b + ("." + node.module if node.module else "")
                else:
                    src = node.module or ""
                for alias in node.names:
                    sub = f"{src}.{alias.name}"
                    targets.append(sub if sub in modules else src)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                while t and t not in modules and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in modules and t != mod:
                    graph[mod].add(t)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        colour[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if colour.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in colour:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        colour[m] = 2
        return None

    for m in sorted(graph):
        if m not in colour:
            found = visit(m)
            if found:
                return found
    return None


def test_the_import_graph_has_no_cycle_counting_imports_inside_functions():
    graph = import_graph()
    # a package's __init__ re-exporting its submodules is not a cycle with them: drop those edges
    pruned = {m: {n for n in deps if not (n.startswith(m + ".") and m + ".__init__" not in n)} for m, deps in graph.items()}
    pruned = {m: {n for n in deps if not m.startswith(n + ".")} for m, deps in pruned.items()}
    assert _cycle(pruned) is None, " -> ".join(_cycle(pruned))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_lower_layer_imports_a_higher_one():
    graph = import_graph()
    for mod in sorted(graph):
        if mod in CORE:
            above = sorted(n for n in graph[mod] if n not in CORE)
            assert not above, f"core module {mod} imports {above}"
        elif not mod.startswith("nlptool.cli") and mod != "nlptool.__main__":  # the entry point runs the CLI
            assert not any(n.startswith("nlptool.cli") for n in graph[mod]), f"{mod} imports the CLI"


def _calls_boundary(node: ast.AST) -> bool:
    """Whether ``node`` calls something named ``boundary`` (``boundary()``, ``x.boundary()``)."""
    return isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "boundary"


def test_one_error_boundary_no_command_catches_errors_itself():
    """Errors of every command reach one boundary, the root group's ``invoke``
    (:class:`nlptool.cli.boundary.NlptoolGroup`): no module of the CLI opens a ``boundary()`` of its
    own around a command body, and no command function has a ``try`` that catches everything."""
    from nlptool.cli import app
    from nlptool.cli.boundary import NlptoolGroup

    assert app.info.cls is NlptoolGroup
    cli_dir = os.path.join(PKG, "cli")
    for f in sorted(os.listdir(cli_dir)):
        if not f.endswith(".py"):
            continue
        tree = ast.parse(open(os.path.join(cli_dir, f), encoding="utf-8").read(), f)
        found = [n.lineno for n in ast.walk(tree) if _calls_boundary(n)]
        assert not found, f"cli/{f} opens its own boundary() at line(s) {found}: the root group catches errors"
        commands = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
                    and any(isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "command" for d in n.decorator_list)]
        for fn in commands:
            for h in (h for t in ast.walk(fn) if isinstance(t, ast.Try) for h in t.handlers):
                caught = getattr(h.type, "id", None)
                assert h.type is not None and caught not in ("Exception", "BaseException"), \
                    f"cli/{f}:{h.lineno}: {fn.name} catches {caught or 'everything'}; let the root boundary report it"


def test_the_boundary_check_finds_a_boundary():
    tree = ast.parse("def f():\n    with boundary():\n        pass\n    with x.boundary():\n        pass\n")
    assert sum(_calls_boundary(n) for n in ast.walk(tree)) == 2


def test_help_does_not_import_torch_or_transformers():
    code = ("import sys; from typer.testing import CliRunner; from nlptool.cli import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0; "
            "print(sorted(m for m in ('torch', 'transformers', 'numpy', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout


# ------------------------------------------------------------------------------ one home per default

CASES = [
    ("segment", [], "nlptool.segment", "Segmenter"),
    ("similarity", [], "nlptool.similarity", "Similarity"),
    ("tokenize-sample", [], "nlptool.tokenize_sample", "Sampler"),
    ("attribute", [], "nlptool.attribute", "Attributor"),
    ("qa-gen", [], "nlptool.qagen", "QAGenerator"),
]


@pytest.mark.parametrize("command,args,module,cls", CASES, ids=[c[0] for c in CASES])
def test_the_cli_defaults_are_the_objects_defaults(command, args, module, cls, monkeypatch):
    """The object the CLI builds from its default options equals the object Python builds with no
    arguments: a default or rule written in both places would drift."""
    import importlib

    from typer.testing import CliRunner

    import nlptool.cli.run as common
    from nlptool.cli import app

    built = []

    def capture(command_obj, *a, **k):
        built.append(command_obj)

    monkeypatch.setattr(common, "run_record_command", capture)
    cli_module = importlib.import_module("nlptool.cli." + command.replace("-", "_"))
    monkeypatch.setattr(cli_module, "run_record_command", capture, raising=False)
    r = CliRunner().invoke(app, [command, *args, "-q"], input="")
    assert r.exit_code == 0, r.output
    assert len(built) == 1, "the CLI did not build its command object through run_record_command"
    expected = getattr(importlib.import_module(module), cls)()
    assert built[0] == expected, (built[0], expected)

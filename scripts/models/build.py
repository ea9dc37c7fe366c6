"""The stage driver of ``make models``: build one or more built-in models from their configs.

    python scripts/models/build.py [--dry-run] NAME [NAME ...]      (or: sh scripts/models/build.sh ...)

Each model has one config, ``scripts/models/<NAME>.toml``:

* ``[settings]``: the model's build settings (``EPOCHS = "8"``), each a string that may name
  earlier values as ``{NAME}``; an environment variable of the same name overrides it;
* ``[quick]``: the values of some settings in a smoke build (``QUICK=1``);
* ``[[steps]]``: the shell commands, in order: ``run`` (the command), optional ``when``
  (``"quick"`` or ``"full"``: only in that kind of build) and ``unless_exists`` (a path: the step
  is skipped when it exists, printed as ``test -e PATH || COMMAND``);
* ``[export]``: ``function`` (``module:function``, the command's ``finish_builtin``: it measures
  the model on held-out data, writes its card and exports it with
  :func:`nlptool.training.export_builtin`), ``src`` (default ``{OUT}``) and ``args``.

Values every config can name (environment variables, with these defaults): ``NLPTOOL`` (how to
run nlptool: ``nlptool``), ``PY`` (``python``), ``BUILD`` (work directory, ``build/models``),
``SHARED`` (the data folder: ``$NLPTOOL_SHARED_DATA`` or ``../shared/data``), ``DEST`` (where
built-in models go, ``nlptool/data/models``), ``DEVICE`` (``auto``), ``QUICK`` (``0``), ``BASE``
(the model task models start from, ``{DEST}/zh-bert-mini``); and, per model, ``NAME``, ``WORK``
(``{BUILD}/{NAME}-data``), ``OUT`` (``{BUILD}/{NAME}``, the trained model) and ``DEST_PARENT``.

Every step runs as ``sh -c LINE`` from the repository root, exactly as ``--dry-run`` prints it
(the first, ``mkdir -p {WORK}``, is every stage's);
the same lines (after one naming the driver call with its environment) go into the model card's
Rebuild section, so the card says what rebuilds the model. Adding a built-in model = its config
here + its row in ``nlptool.models.BUILTINS``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as a package
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        sys.exit("scripts/models/build.py reads TOML: use Python >= 3.11, or pip install tomli")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

#: The values every stage sees, in order; a default may name the values before it.
STANDARD = {
    "NLPTOOL": "nlptool",
    "PY": "python",
    "BUILD": "build/models",
    "SHARED": "../shared/data",
    "DEST": "nlptool/data/models",
    "DEVICE": "auto",
    "QUICK": "0",
    "BASE": "{DEST}/zh-bert-mini",
}


class ConfigError(Exception):
    """A config that cannot be read or names an unknown value."""


@dataclass
class Stage:
    """One model's build, every value resolved: the steps (shell lines) and the export call."""

    name: str
    values: dict[str, str]
    env: dict[str, str]  # the values given in the environment (they go into the card's first line)
    steps: list[str] = field(default_factory=list)
    function: str = ""
    src: str = ""
    args: dict = field(default_factory=dict)

    @property
    def quick(self) -> bool:
        return self.values["QUICK"] == "1"

    def export_line(self) -> str:
        """The export call as a comment line (it runs inside the driver, with the command list)."""
        module, func = self.function.split(":")
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return (f"# then, in the driver: {module}.{func}({self.src!r}, {self.name!r}{', ' + args if args else ''}) "
                f"-> {self.values['DEST']}/{self.name} with its card")

    def commands(self) -> list[str]:
        """What ``--dry-run`` prints and the card's Rebuild section shows."""
        given = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        call = f"{given + ' ' if given else ''}sh scripts/models/build.sh {self.name}"
        return [f"{call}   # runs:", *self.steps, self.export_line()]


def _fmt(text, values: dict[str, str], where: str):
    """``text`` (a string, or lists/dicts of strings) with ``{NAME}`` replaced from ``values``."""
    if isinstance(text, str):
        try:
            return text.format(**values)
        except KeyError as exc:
            raise ConfigError(f"{where}: unknown value {{{exc.args[0]}}} in {text!r}") from None
    if isinstance(text, list):
        return [_fmt(t, values, where) for t in text]
    if isinstance(text, dict):
        return {k: _fmt(v, values, where) for k, v in text.items()}
    return text


def config_path(name: str) -> Path:
    return HERE / f"{name}.toml"


def names() -> list[str]:
    """Every model with a config, in the order of nlptool's registry (the build order)."""
    sys.path.insert(0, str(ROOT))
    from nlptool.models import BUILTINS

    have = sorted(p.stem for p in HERE.glob("*.toml"))
    order = [m.name for m in BUILTINS]
    return [n for n in order if n in have] + [n for n in have if n not in order]


def load_stage(name: str, environ: dict[str, str] | None = None) -> Stage:
    """Resolve ``scripts/models/NAME.toml`` with ``environ`` (default ``os.environ``).

    Raises:
        ConfigError: no such config, an unknown key, or an unknown ``{value}``.
    """
    environ = dict(os.environ if environ is None else environ)
    path = config_path(name)
    if not path.is_file():
        raise ConfigError(f"{name}: no config {path.name} in {HERE} (configs: {', '.join(names())})")
    with open(path, "rb") as fh:
        cfg = tomllib.load(fh)
    unknown = set(cfg) - {"description", "settings", "quick", "steps", "export"}
    if unknown:
        raise ConfigError(f"{path.name}: unknown section(s) {', '.join(sorted(unknown))}")
    values: dict[str, str] = {"NAME": name}
    env: dict[str, str] = {}
    defaults = dict(STANDARD)
    if environ.get("NLPTOOL_SHARED_DATA"):
        defaults["SHARED"] = environ["NLPTOOL_SHARED_DATA"]
    for key, default in defaults.items():
        if environ.get(key, "") != "":
            values[key] = environ[key]
            if values[key] != _fmt(default, values, path.name):
                env[key] = values[key]
        else:
            values[key] = _fmt(default, values, path.name)
    values["WORK"] = f"{values['BUILD']}/{name}-data"
    values["OUT"] = f"{values['BUILD']}/{name}"
    values["DEST_PARENT"] = os.path.dirname(values["DEST"].rstrip("/")) or "."
    settings, quick = cfg.get("settings", {}), cfg.get("quick", {})
    extra = set(quick) - set(settings)
    if extra:
        raise ConfigError(f"{path.name}: [quick] sets {', '.join(sorted(extra))}, which [settings] does not declare")
    for key, default in settings.items():
        if key in values:
            raise ConfigError(f"{path.name}: setting {key} shadows a standard value")
        if key in environ:
            values[key] = env[key] = environ[key]
        elif values["QUICK"] == "1" and key in quick:
            values[key] = _fmt(str(quick[key]), values, path.name)
        else:
            values[key] = _fmt(str(default), values, path.name)
    stage = Stage(name, values, env, steps=[f"mkdir -p {values['WORK']}"])
    for i, step in enumerate(cfg.get("steps", [])):
        where = f"{path.name} step {i + 1}"
        if set(step) - {"run", "when", "unless_exists"} or "run" not in step:
            raise ConfigError(f"{where}: a step has run, and optionally when and unless_exists")
        when = step.get("when")
        if when not in (None, "quick", "full"):
            raise ConfigError(f"{where}: when must be quick or full")
        if (when == "quick") != stage.quick and when is not None:
            continue
        line = " ".join(_fmt(step["run"], values, where).split())
        if "unless_exists" in step:
            line = f"test -e {_fmt(step['unless_exists'], values, where)} || {line}"
        stage.steps.append(line)
    export = cfg.get("export")
    if not export or "function" not in export:
        raise ConfigError(f"{path.name}: [export] function = \"module:function\" is missing")
    stage.function = export["function"]
    stage.src = _fmt(export.get("src", "{OUT}"), values, path.name)
    stage.args = _fmt(export.get("args", {}), values, path.name)
    return stage


def run(stage: Stage) -> dict:
    """Run the steps (stopping at the first that fails), then the export. Returns its result."""
    commands = stage.commands()
    for line in stage.steps:
        print(f"+ {line}", file=sys.stderr, flush=True)
        subprocess.run(["sh", "-c", line], check=True)
    print(f"+ {stage.export_line()[len('# then, in the driver: '):]}", file=sys.stderr, flush=True)
    sys.path.insert(0, str(ROOT))
    module, func = stage.function.split(":")
    fn = getattr(importlib.import_module(module), func)
    return fn(stage.src, stage.name, commands=commands, dest=f"{stage.values['DEST']}/{stage.name}",
              quick=stage.quick, device=stage.values["DEVICE"], **stage.args)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sh scripts/models/build.sh", description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="+", metavar="NAME", help="built-in model(s) to build, in order")
    ap.add_argument("--dry-run", "-n", action="store_true", help="print the commands, run nothing")
    args = ap.parse_args(argv)
    if Path.cwd().resolve() != ROOT:
        print(f"error: run from the repository root ({ROOT})", file=sys.stderr)
        return 2
    try:
        stages = [load_stage(n) for n in args.names]
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for stage in stages:
        if args.dry_run:
            print("\n".join(stage.commands()))
            continue
        t0 = time.time()
        try:
            run(stage)
        except subprocess.CalledProcessError as exc:
            print(f"error: {stage.name}: a step failed (exit {exc.returncode}): {exc.cmd[-1]}", file=sys.stderr)
            return 1
        print(f"{stage.name}: built in {time.time() - t0:.0f} s, exported to {stage.values['DEST']}/{stage.name}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

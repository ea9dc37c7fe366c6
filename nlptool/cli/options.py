"""The option vocabulary of every command (docs/options.md): one declaration per flag, and the
parse-time checks behind them.

A flag means the same thing, with the same type, in every command: a command module declares
``inputs: list[str] = InputsArg`` or ``model: str = ModelOpt(default, help=...)`` and never spells
``--model`` itself. The callbacks check paths (inputs exist, outputs are not inputs, a model
directory holds no input), devices and shards while Typer parses, so a bad value is a usage error
(exit 2, one line) before any model loads. :func:`finite_floats` adds the NaN/infinity rule to
every float option of the app.
"""

from __future__ import annotations

import enum
import math
from typing import Optional

import typer

# ------------------------------------------------------------------------------ path checks in the parser


def check_inputs(ctx: typer.Context, param: typer.CallbackParam, value: Optional[list[str]]):
    """The callback of every option or argument naming input files (InputsArg, InputFileOpt, InputFilesArg): inputs exist, are readable, not directories, before the command runs
    (so before any model loads); remembered so that no output can be the same file (nor a model
    directory hold one). No positional input means stdin: a regular file behind stdin counts."""
    from ..paths import check_input_path, check_output_path

    given = [str(p) for p in value or []]
    for p in given or (["-"] if getattr(param, "param_type_name", "") == "argument" else []):
        check_input_path(p)
    meta = ctx.meta.setdefault("nlptool.inputs", [])
    meta.extend(str(p) for p in value or [])
    for o in ctx.meta.get("nlptool.outputs", []):
        check_output_path(o, inputs=meta)
    return value


def _option_name(param) -> str:
    opts = [o for o in getattr(param, "opts", []) if o.startswith("--")]
    return opts[0] if opts else str(getattr(param, "name", "an option"))


def _check_output(ctx: typer.Context, param: typer.CallbackParam, value: Optional[str]):
    """Output option callback: the directory exists, the path is not a directory, not an input,
    not another option's output and not inside a model directory this command writes."""
    from ..paths import check_output_path, claim_output

    if value not in (None, "", "-"):
        check_output_path(str(value), inputs=ctx.meta.get("nlptool.inputs", []))
        claim_output(str(value), _option_name(param))
        ctx.meta.setdefault("nlptool.outputs", []).append(str(value))
    return value


def _check_input_file(ctx: typer.Context, param: typer.CallbackParam, value: Optional[str]):
    if value not in (None, ""):
        return check_inputs(ctx, param, [value])[0]
    return value


def _check_input_format(value: str):
    from ..records import INPUT_FORMATS

    v = getattr(value, "value", value)
    if v not in INPUT_FORMATS:
        raise typer.BadParameter(f"{v!r} is not one of {', '.join(repr(f) for f in INPUT_FORMATS)}.")
    return value


def InputFileOpt(default, *decls: str, help: str = "", **kw):  # noqa: N802,A002 - a typer.Option factory
    """An option naming an input file (``--idf FILE``, ``--corpus FILE``): checked like INPUTS
    (exists, readable, not a directory) at parse time, and never overwritten by an output."""
    return typer.Option(default, *decls, help=help, callback=_check_input_file, **kw)


def InputFilesArg(default, *, help: str = "", **kw):  # noqa: N802,A002 - a typer.Argument factory
    """The positional data files of a ``train``/``eval`` command: checked like INPUTS at parse time
    and remembered, so no output (``--report``, ``-o``, the model directory) can overwrite one."""
    return typer.Argument(default, help=help, show_default=False, callback=check_inputs, **kw)


def InputFilesOpt(default, *decls: str, help: str = "", **kw):  # noqa: N802,A002
    """An option naming several input files (``--eval A --eval B``, ``--corpus``), checked like INPUTS."""
    return typer.Option(default, *decls, help=help, callback=check_inputs, **kw)


def OutputFileOpt(default, *decls: str, help: str = "", **kw):  # noqa: N802,A002
    """An option naming an output file (``--report``, ``--html``, ``--weights``): its directory
    must exist, it must not be a directory or an input; checked at parse time, before any work.
    Write it with :func:`nlptool.paths.atomic_output`."""
    return typer.Option(default, *decls, help=help, callback=_check_output, **kw)


def _check_out_dir(ctx: typer.Context, param: typer.CallbackParam, value: Optional[str]):
    """``--out DIR`` callback: the parent directory exists, ``DIR`` is not an existing file
    (:func:`nlptool.paths.check_out_dir`), and no input or other output lies inside it (it is
    replaced as a whole: :func:`nlptool.paths.claim_out_dir`)."""
    if value in (None, ""):
        return value
    from ..paths import check_out_dir, claim_out_dir

    check_out_dir(value)
    claim_out_dir(str(value), _option_name(param))
    return value


def OutDirOpt(default, *decls: str, help: str = "", **kw):  # noqa: N802,A002
    """``--out DIR`` for a model directory: checked at parse time (parent exists, not a file);
    the library saves the model with :func:`nlptool.paths.atomic_dir` (whole or not at all) and keeps
    resumable state in ``DIR.work`` (:func:`nlptool.paths.work_dir`), never in ``DIR``."""
    return typer.Option(default, *(decls or ("--out",)), help=help, callback=_check_out_dir, **kw)


def choices(name: str, values) -> type[enum.Enum]:
    """The type of an option with fixed choices: a ``str`` Enum whose members are ``values``, each
    named as its value, so the parser checks them (``--metric nope``: exit 2, one line) and
    ``--help`` lists them. ``values`` come from the library (``METHODS``) where it defines them."""
    return enum.Enum(name, {v: v for v in values}, type=str)  # type: ignore[return-value]


def finite_float(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False,
                 allow_inf: bool = False):
    """A ``parser=`` for float options: rejects NaN (and infinities unless ``allow_inf``) and
    values outside ``[lo, hi]`` (``lo_open``/``hi_open``: the bound itself is excluded), so a bad
    value is a usage error (exit 2, one line) before any work."""
    def parse(value):
        if isinstance(value, float):
            x = value
        else:
            try:
                x = float(str(value).strip())
            except ValueError:
                raise typer.BadParameter(f"{value!r} is not a number.") from None
        if math.isnan(x) or (math.isinf(x) and not allow_inf):
            raise typer.BadParameter(f"{value} is not a finite number.")
        if lo is not None and (x < lo or (lo_open and x == lo)):
            raise typer.BadParameter(f"{value} must be {'>' if lo_open else '>='} {lo:g}.")
        if hi is not None and (x > hi or (hi_open and x == hi)):
            raise typer.BadParameter(f"{value} must be {'<' if hi_open else '<='} {hi:g}.")
        return x

    parse.__name__ = "FLOAT"
    return parse



# ------------------------------------------------------------------------------ shared options (docs/options.md)

InputsArg = typer.Argument(None, help="Input file(s); '-' or nothing reads stdin.", show_default=False, callback=check_inputs)
OutputOpt = typer.Option("-", "--output", "-o", help="Output file ('-' = stdout); written whole or not at all.", callback=_check_output)
InputFormatOpt = typer.Option("auto", "--input-format", help="auto|text|jsonl|csv|tsv: auto treats lines starting with '{' as JSON and reads *.csv files as CSV; csv/tsv have a header row.", callback=_check_input_format)
TextKeyOpt = typer.Option("text", "--text-key", help="Field of a JSON record that holds the text.")


def ModelOpt(default, help: str, **kw):
    """``--model/-m`` (the one declaration every command uses): ``default`` from the command's
    object or the model registry, ``help`` saying which kind of model the command takes."""
    return typer.Option(default, "--model", "-m", help=help, **kw)


def _check_device(value: Optional[str]):
    """``--device`` callback: the form (auto|cpu|cuda|cuda:N) and, for CUDA, that this machine has
    it, checked at parse time (exit 2 before any model loads; torch is imported only for cuda)."""
    if value in (None, ""):
        return value
    from ..errors import DeviceError
    from ..models import check_device_spec

    try:
        check_device_spec(value)
    except DeviceError as exc:
        raise typer.BadParameter(str(exc).replace(f"--device {value}: ", "")) from None
    return value


DeviceOpt = typer.Option("auto", "--device", callback=_check_device,
                         help="auto|cpu|cuda|cuda:N (auto: CUDA when available).")
BatchSizeOpt = typer.Option(256, "--batch-size", min=1, help="Sequences per forward pass (bounds memory).")
ChunkSizeOpt = typer.Option(1000, "--chunk-size", min=1, help="Input records read and written per chunk (bounds memory).")


def SeedOpt(default, help: str, **kw):
    """``--seed`` (the one declaration every command uses): an integer >= 0; ``help`` says what
    it seeds. ``default=None`` (tokenize-sample): unseeded unless given."""
    kw.setdefault("min", 0)
    return typer.Option(default, "--seed", help=help, **kw)


QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress or device messages on stderr.")
StrictOpt = typer.Option(False, "--strict", help="Stop at the first bad input record (exit code 3) instead of writing an error record.")


def _remember_threads(ctx: typer.Context, value: Optional[int]):
    """``--threads`` callback: kept in the context, where :func:`nlptool.cli.run.apply_threads` finds it."""
    if value is not None:
        ctx.meta["nlptool.threads"] = value
    return value


def ThreadsOpt(default: Optional[int] = None, *decls: str, **kw):  # noqa: N802 - a typer.Option factory
    """``--threads N``: torch's intra-op CPU threads for this process, instead of the rule of
    :mod:`nlptool.threads` (OMP_NUM_THREADS/MKL_NUM_THREADS when set, else 1). A command declares
    it (``threads: Optional[int] = ThreadsOpt()``); :func:`nlptool.cli.run.run_record_command` applies it."""
    kw.setdefault("help", "CPU threads per process for torch (default: OMP_NUM_THREADS/MKL_NUM_THREADS when set, else 1; "
                          "more processes scale better: --shard, --engine ray).")
    return typer.Option(default, *(decls or ("--threads",)), min=1, show_default=False, callback=_remember_threads, **kw)


# ------------------------------------------------------------------------------ scale-out options (docs/scale-out.md)


def _check_shard(value: Optional[str]):
    """``--shard i/n`` callback: parsed to ``(i, n)``; malformed or out of range is exit 2."""
    if value is None:
        return None
    from ..errors import UsageError
    from ..records import parse_shard

    try:
        return parse_shard(value)
    except UsageError:
        raise typer.BadParameter(f"{value!r} is not i/n with integers 0 <= i < n (e.g. 0/4).") from None


class Engine(str, enum.Enum):
    local = "local"
    ray = "ray"


ShardOpt = typer.Option(None, "--shard", callback=_check_shard, show_default=False,
                        help="i/n: process and write only the records whose 0-based index is i modulo n (interleave the n outputs to restore the whole).")
EngineOpt = typer.Option(Engine.local, "--engine", help="local (this process) or ray (an actor pool on the Ray cluster named by RAY_ADDRESS, or a local one; pip install 'nlptool[ray]').")
WorkersOpt = typer.Option(2, "--workers", min=1, help="--engine ray: actors in the pool (one model load each).")
GpusPerWorkerOpt = typer.Option(0.0, "--gpus-per-worker", parser=finite_float(0.0, 64.0), help="--engine ray: GPUs requested per actor (fractions share a GPU; 0 = CPU).")
OutputDirOpt = typer.Option(None, "--output-dir", callback=_check_out_dir, show_default=False,
                            help="--engine ray: write JSONL shards (Ray's write order) into this directory instead of -o.")

# ------------------------------------------------------------------------------ every float option


def finite_floats(cmd) -> None:
    """Every float option of every command rejects NaN and infinities at parse time (a usage error,
    exit 2), whatever range it declares: one rule here instead of one per option. An option that
    means to accept ``inf`` takes a string and parses it itself (e.g. ``tokenize-sample --alpha``).
    Called once on the root group (:class:`nlptool.cli.boundary.NlptoolGroup`)."""
    import typing

    from typer import _click

    for sub in (getattr(cmd, "commands", None) or {}).values():
        finite_floats(sub)
    for param in getattr(cmd, "params", ()):
        desc = getattr(param, "type_descriptor", None)
        if desc is None or getattr(param, "_nlptool_finite", False):
            continue
        ann = desc.annotation
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if args and len(args) == 1:
            ann = args[0]
        if ann is not float:
            continue

        def process_value(ctx, value, _orig=param.process_value, _param=param):
            out = _orig(ctx, value)
            if isinstance(out, float) and not math.isfinite(out):
                raise _click.exceptions.BadParameter(f"{out!r} is not a finite number.", ctx=ctx, param=_param)
            return out

        param.process_value = process_value
        param._nlptool_finite = True


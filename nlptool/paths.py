"""Paths and atomic outputs: every path checked before any work, every output written whole or not at all.

* inputs exist, are readable and are not directories (:func:`check_input_path`); while the CLI's
  guard is on (:func:`guard_inputs`), every input is remembered so no output can overwrite one
  (:func:`check_output_path`, by inode: symlinks and hard links included);
* every file a command writes goes through :func:`atomic_output` (or :func:`atomic_dir` for a
  model directory): a temp file beside the target, fsync, rename on success; special files and
  symlinks are written through, never replaced (docs/io.md).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import sys
import tempfile
from typing import Any
from collections.abc import Sequence

from .errors import UsageError

# --------------------------------------------------------------------------------------------
# Paths: checked before any work; inputs remembered so no output can overwrite one
# --------------------------------------------------------------------------------------------

#: ``(st_dev, st_ino)`` of every input checked since :func:`guard_inputs` (``None``: not guarding).
#: The CLI turns the guard on for each command, so an output path that is the same file as any
#: input (by inode, symlinks and hard links included) is refused before anything is written.
_GUARDED_INPUTS: set[tuple[int, int]] | None = None
#: Real paths of the inputs checked while guarding (an input inside a model directory is refused).
_GUARDED_INPUT_PATHS: set[str] = set()
#: Outputs claimed by the options of this command: real path -> what claimed it.
_CLAIMED_OUTPUTS: dict[str, str] = {}
#: Model directories (``--out DIR``) claimed by this command: real path -> option.
_CLAIMED_DIRS: dict[str, str] = {}


def guard_inputs(on: bool = True) -> None:
    """Start (or stop) remembering the inputs checked by :func:`check_input_path`, so that
    :func:`check_output_path` refuses to write over any of them, and the outputs claimed by
    :func:`claim_output` / :func:`claim_out_dir`, so no two outputs share a path and no model
    directory holds an input. The CLI calls this once per command; library callers who rewrite a
    file in place simply leave it off."""
    global _GUARDED_INPUTS
    _GUARDED_INPUTS = set() if on else None
    _GUARDED_INPUT_PATHS.clear()
    _CLAIMED_OUTPUTS.clear()
    _CLAIMED_DIRS.clear()


def guard_stdin() -> None:
    """Remember standard input as an input when it is a regular file (``cmd -o f < f``): an
    output may not be the file stdin reads."""
    if _GUARDED_INPUTS is None:
        return
    try:
        st = os.fstat(0)
    except (OSError, ValueError):
        return
    if stat.S_ISREG(st.st_mode):
        _GUARDED_INPUTS.add((st.st_dev, st.st_ino))


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def claim_output(path: str | os.PathLike | None, what: str) -> None:
    """Record that option ``what`` writes ``path`` (the CLI, at parse time).

    Raises:
        UsageError: another option already writes the same path, or it lies in a model directory
            this command writes.
    """
    if path is None or str(path) in ("", "-") or _GUARDED_INPUTS is None:
        return
    real = os.path.realpath(str(path))
    other = _CLAIMED_OUTPUTS.get(real)
    if other is not None and other != what:
        raise UsageError(f"{path}: given to both {other} and {what}; each output needs its own path")
    for d, opt in _CLAIMED_DIRS.items():
        if _inside(real, d):
            raise UsageError(f"{path}: lies in the model directory {opt} writes; choose a path outside it")
    _CLAIMED_OUTPUTS[real] = what


def claim_out_dir(path: str | os.PathLike | None, what: str = "--out") -> None:
    """Record that ``what`` writes the model directory ``path``, which replaces the directory as
    a whole: no input and no other output may lie inside it.

    Raises:
        UsageError: an input or another output lies in it (e.g. ``train mlm o/vocab.txt --out o``).
    """
    if path is None or str(path) == "" or _GUARDED_INPUTS is None:
        return
    real = os.path.realpath(str(path))
    for p in _GUARDED_INPUT_PATHS:
        if _inside(p, real):
            raise UsageError(f"{path}: the model directory {what} writes holds the input {p}; "
                             "choose another directory (it is replaced as a whole)")
    for p, opt in _CLAIMED_OUTPUTS.items():
        if _inside(p, real):
            raise UsageError(f"{path}: the model directory {what} writes holds the output of {opt}; choose another")
    _CLAIMED_DIRS[real] = what


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)  # follows symlinks: the file that would be read or written
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino)


def check_input_path(path: str) -> None:
    """Check that ``path`` (``-`` = stdin, always fine) can be read as an input file.

    Raises:
        UsageError: it does not exist, is a directory, or cannot be read (message names the path).
    """
    if path == "-":
        guard_stdin()
        return
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied (cannot read it)") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{path}: is a directory, expected a file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: permission denied (cannot read it)")
    if _GUARDED_INPUTS is not None and stat.S_ISREG(st.st_mode):
        _GUARDED_INPUTS.add((st.st_dev, st.st_ino))
        real = os.path.realpath(path)
        for d, opt in _CLAIMED_DIRS.items():
            if _inside(real, d):
                raise UsageError(f"{path}: lies in the model directory {opt} writes (it is replaced as a whole); "
                                 "move the input or choose another directory")
        _GUARDED_INPUT_PATHS.add(real)


def check_output_path(path: str | os.PathLike | None, *, inputs: Sequence[str] = ()) -> None:
    """Check that ``path`` can be written as an output file, before any work is done.

    ``-`` (stdout) and ``None`` are always fine. A symlink is checked through to its target.

    Raises:
        UsageError: the path is a directory, its directory does not exist, or it is the same file
            as one of ``inputs`` or of the inputs remembered by :func:`guard_inputs`.
    """
    if path is None or str(path) in ("", "-"):
        return
    path = str(path)
    target = os.path.realpath(path)
    if os.path.isdir(target):
        raise UsageError(f"{path}: is a directory; give a file path for the output")
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        raise UsageError(f"{path}: directory {os.path.dirname(path) or parent} does not exist (create it first)")
    fid = _file_id(target)
    if fid is not None:
        same = fid in (_GUARDED_INPUTS or ()) or any(i != "-" and _file_id(i) == fid for i in inputs)
        if same:
            raise UsageError(f"{path}: is also an input file; refusing to overwrite it (choose another output path)")


def validate_paths(inputs: Sequence[str] | None, outputs: Sequence[str | None] = ()) -> None:
    """Check every input and output path before any output is opened or any model loads.

    Inputs must exist, be readable and not be directories (``-`` = stdin); outputs must be
    writable paths in an existing directory, none the same file as an input (by inode, symlinks
    included) and no two the same file; at most one output may be ``-``.

    Raises:
        UsageError: naming the path and the fix.
    """
    ins = [str(p) for p in (inputs or []) if p is not None]
    for p in ins:
        check_input_path(p)
    outs = [str(o) for o in outputs if o not in (None, "")]
    for o in outs:
        check_output_path(o, inputs=ins)
    if sum(o == "-" for o in outs) > 1:
        raise UsageError("only one output can be '-' (stdout)")
    real = [(o, os.path.realpath(o)) for o in outs if o != "-"]
    for j, (a, ra) in enumerate(real):
        for b, rb in real[j + 1:]:
            if ra == rb:
                raise UsageError(f"{a} and {b}: the same file given for two outputs")


# --------------------------------------------------------------------------------------------
# Writing: whole or not at all
# --------------------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "w", *, encoding: str = "utf-8", newline: str | None = "\n",
                  inputs: Sequence[str] = ()):
    """Open an output for writing so that it is written whole or not at all.

    * ``-``: stdout (text or ``sys.stdout.buffer`` for ``"wb"``), flushed at the end, not closed;
    * a regular file or a new path: a temp file in the same directory, flushed, fsync'd and renamed
      onto the target only when the ``with`` block succeeds; on any exception (a full disk, EIO,
      Ctrl-C, a bad record under ``strict``) the temp file is removed and the old file is intact.
      A new file gets mode ``0o666 & ~umask``; an existing file keeps its mode;
    * a symlink is followed: its target is written (atomically if it is a regular file) and the
      link stays a link;
    * a special file (device node, FIFO, socket, the pipe behind ``/dev/stdout``) is written
      through directly, never replaced;
    * a write-protected file is refused (``PermissionError``, EACCES), not replaced by a rename.

    Args:
        path: output path or ``-``.
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
        inputs: input paths this output must not be (checked by inode before anything is written).

    Raises:
        UsageError: see :func:`check_output_path` (a directory, a missing directory, an input).
        OSError: from writing (ENOSPC, EIO, ...); the target is left as it was.
    """
    binary = "b" in mode
    kw: dict[str, Any] = {} if binary else {"encoding": encoding, "newline": newline}
    path = str(path)
    if path == "-":
        if sys.stdout is None:
            raise UsageError("standard output is closed (>&-): give an output file with -o FILE")
        fh = sys.stdout.buffer if binary else sys.stdout
        try:
            yield fh
            fh.flush()
        except OSError as exc:
            raise named_os_error(exc, "<stdout>") from None
        return
    check_output_path(path, inputs=inputs)
    try:
        st = os.stat(path)  # follows every link, /proc/self/fd/N (/dev/stdout on a pipe) included
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        try:
            with open(path, mode, **kw) as fh:  # device node / FIFO / pipe: write through, never replace
                yield fh
        except OSError as exc:
            raise named_os_error(exc, path) from None
        return
    target = os.path.realpath(path)
    if st is not None and (not os.access(target, os.W_OK) or not st.st_mode & 0o222):  # write protection (root too)
        raise PermissionError(errno.EACCES, "the output file is write-protected (chmod u+w it, or choose another)",
                              path)
    d, base = os.path.split(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=d)
    try:
        os.fchmod(fd, stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask())
        fh = os.fdopen(fd, mode, **kw)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            fh.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise named_os_error(exc, path) from None
        raise


def _umask_modes(root: str) -> None:
    """Give every file under ``root`` the mode a new file gets (``0o666 & ~umask``; directories
    ``0o777 & ~umask``): libraries that save through private temp files (safetensors, torch)
    leave 0600, which would ignore the user's umask."""
    mask = _umask()
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o777 & ~mask)
        for f in filenames:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                os.chmod(p, 0o666 & ~mask)


def named_os_error(exc: OSError, path: str) -> OSError:
    """``exc`` with the output path as its file name (a failed write() does not carry one)."""
    if exc.filename is not None or exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror or os.strerror(exc.errno), path)


def check_out_dir(out: str | os.PathLike) -> str:
    """Check a model directory path (``train * --out``) before any work: its parent directory
    exists and it is not an existing file. Returns the resolved path (symlinks followed).

    Raises:
        UsageError: naming the path and the fix.
    """
    out = str(out)
    target = os.path.realpath(out)
    if os.path.exists(target) and not os.path.isdir(target):
        raise UsageError(f"{out}: exists and is not a directory (give a new or directory path for the model)")
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        raise UsageError(f"{out}: directory {os.path.dirname(out) or parent} does not exist (create it first)")
    return target


@contextlib.contextmanager
def atomic_dir(out: str | os.PathLike):
    """Build an output directory (a model) whole or not at all: yields a temp directory beside
    ``out`` (same filesystem) to save into.

    * on success, a new ``out`` is the temp directory renamed (one ``rename``: it appears complete);
      into an existing ``out`` directory each entry is moved with ``os.replace`` (a same-named entry
      is replaced, ``config.json`` last), and the directory's other entries are left as they are:
      a directory the user named is never deleted or emptied;
    * on any exception (Ctrl-C included) the temp directory is removed and ``out`` is untouched
      (not created).

    Build the model first and enter this block only to save it, so that the temp directory
    exists for seconds, not for the whole run.

    Raises:
        UsageError: ``out`` exists and is not a directory, or its parent directory does not exist.
    """
    target = check_out_dir(out)
    parent, base = os.path.split(target)
    tmp = tempfile.mkdtemp(prefix=f".{base}.", suffix=".tmp", dir=parent)
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        _umask_modes(tmp)
        if not os.path.isdir(target):
            os.rename(tmp, target)
            return
        names = sorted(os.listdir(tmp), key=lambda n: (n == "config.json", n))
        for name in names:
            src, dst = os.path.join(tmp, name), os.path.join(target, name)
            if os.path.isdir(dst) and not os.path.islink(dst):  # a same-named directory: swap it out
                old = tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=target)
                os.rename(dst, os.path.join(old, name))
                os.rename(src, dst)
                shutil.rmtree(old, ignore_errors=True)
                continue
            if os.path.isdir(src) and os.path.lexists(dst):
                os.unlink(dst)
            os.replace(src, dst)
        os.rmdir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def work_dir(out: str | os.PathLike) -> str:
    """``OUT.work``: the directory beside a model directory ``OUT`` that holds a training run's
    resumable state (``train mlm`` / ``train qa-gen`` checkpoints, ``train segmenter``'s teacher
    cache), kept apart so that ``OUT`` only ever holds a complete model. Only the path: the
    commands that keep state create it (see :func:`work_dir_scope`)."""
    return check_out_dir(out) + ".work"


@contextlib.contextmanager
def work_dir_scope(out: str | os.PathLike):
    """Yield :func:`work_dir` of ``out`` as a ``Path``, created when missing. On exit (success or
    failure) it is removed again if this call created it and it holds no non-empty file, so a run
    that saved no state leaves nothing; state that was saved stays for the next run.

    Raises:
        UsageError: ``OUT.work`` exists and is not a directory, or ``out`` is not a valid model path.
    """
    from pathlib import Path

    path = Path(work_dir(out))
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path}: exists and is not a directory (the work directory of {out}; move it away)")
    created = not path.exists()
    path.mkdir(exist_ok=True)
    try:
        yield path
    finally:
        if created and not any(f.is_file() and f.stat().st_size for f in path.rglob("*")):
            shutil.rmtree(path, ignore_errors=True)

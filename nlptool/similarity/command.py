"""``nlptool similarity`` as one object (:class:`Similarity`): the command's defaults, the rules
between its options and modes, its model loading and its three modes (pairs, search, matrix)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..engine import Command, model_line
from ..errors import UsageError
from ..models import default_model
from ..records import Record
from .defaults import CHAR_WEIGHT

#: The default model (from the registry, :data:`nlptool.models.BUILTINS`): zh-sim-mini,
#: zh-bert-mini fine-tuned with CoSENT (docs/similarity.md).
DEFAULT_MODEL = default_model("similarity")
#: The default layer: the last one (the layer the fine-tuning trains).
DEFAULT_LAYER = -1

#: Records per chunk in pair and search mode, matrix rows per block with ``--matrix`` (bounds memory).
DEFAULT_CHUNK_SIZE = 256

#: The modes of the command: text pairs (``--engine ray`` too), k-NN search, all-pairs matrix.
MODES = ("pairs", "search", "matrix")


_JSON_TYPES = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", list: "a list",
               dict: "an object"}


def reference_error(value: Any, key: str) -> str | None:
    """What is wrong with a list of references ``value`` (field ``key``): the first element that is
    not a string, named ``key[k]`` with its JSON type (``sentence2[1] is a number, expected a
    string``); None when ``value`` is not a list or holds only strings."""
    if not isinstance(value, list):
        return None
    for k, x in enumerate(value):
        if not isinstance(x, str):
            what = _JSON_TYPES.get(type(x), type(x).__name__)
            fix = " (leave it out of the list, or give a text)" if x is None else ""
            return f"{key}[{k}] is {what}, expected a string{fix}"
    return None


class Similarity(Command):
    """``nlptool similarity`` as one object: WMD / WRD or the mean-vector cosine of text pairs
    (:meth:`results`, the record function of the engines: columns ``a_key``/``b_key``, ``b_key``
    may hold a list of references), exact k-NN search (:meth:`search`) and all-pairs distances
    (:meth:`matrix`), via :mod:`nlptool.similarity.api` (Kusner et al. 2015, WMD; Yokoi et al. 2020,
    WRD).

    Args: the CLI's options and defaults: ``model`` (:data:`DEFAULT_MODEL`), ``metric``
    ``wmd|wrd|both`` (search and matrix: ``both`` means WRD), ``pool`` ``none|mean``, ``layer``
    (:data:`DEFAULT_LAYER`), ``layers`` (``"1,-1"`` or a sequence of ints; replaces ``layer``),
    ``vectors``, ``vectors_limit``, ``idf``, ``uniform``, ``whiten``, ``drop_punct``, ``solver``
    ``emd|sinkhorn`` (pair mode), ``reg``, ``device``, ``batch_size``, ``a_key``, ``b_key`` (pair
    mode), ``text_key`` (search and matrix), ``top_k`` (neighbours per query or matrix row),
    ``char_weight`` (pair mode: the character share of ``similarity``,
    :data:`nlptool.similarity.defaults.CHAR_WEIGHT`; 0 = the cosine alone).

    Raises:
        UsageError: a bad option or combination (:func:`nlptool.similarity.api.check_options`;
            which options each mode takes: :meth:`check_mode`).

    Result columns (pair mode): ``wmd``/``wrd`` (with ``pool="none"``), ``cos``, ``similarity`` and the
    per-reference fields of :func:`nlptool.similarity.api.score_pairs`.
    """

    def __init__(self, model: str = DEFAULT_MODEL, metric: str = "both", pool: str = "none", layer: int = DEFAULT_LAYER,
                 layers: str | Sequence[int] | None = None, vectors: str | None = None, vectors_limit: int | None = None,
                 idf: str | None = None, uniform: bool = False, whiten: str | None = None, drop_punct: bool = False,
                 solver: str = "emd", reg: float | None = None, device: str = "auto", batch_size: int = 256,
                 a_key: str = "sentence1", b_key: str = "sentence2", text_key: str = "text", top_k: int = 5,
                 char_weight: float = CHAR_WEIGHT):
        from .api import check_options
        from .embedders import parse_layers

        check_options(metric, pool, solver, reg, vectors=vectors, idf=idf, uniform=uniform, whiten=whiten,
                      drop_punct=drop_punct, char_weight=char_weight)
        if pool == "mean" and (metric != "both" or solver != "emd" or reg is not None):
            given = [o for o, on in (("--metric", metric != "both"), ("--solver", solver != "emd"),
                                     ("--reg", reg is not None)) if on]
            raise UsageError(f"{'/'.join(given)}: options of the transport distances (--pool none); --pool mean "
                             f"scores the cosine of mean vectors instead: drop {'/'.join(given)} or --pool mean")
        super().__init__(model=model, metric=metric, pool=pool, layers=parse_layers(layers) if layers else (layer,),
                         vectors=vectors, vectors_limit=vectors_limit, idf=idf, uniform=uniform, whiten=whiten,
                         drop_punct=drop_punct, solver=solver, reg=reg, device=device, batch_size=batch_size,
                         a_key=a_key, b_key=b_key, text_key=text_key, top_k=top_k, char_weight=char_weight)

    # -- which options each mode takes
    def check_mode(self, mode: str) -> None:
        """Refuse the options that ``mode`` (one of :data:`MODES`) does not take.

        Raises:
            UsageError: sinkhorn in search or matrix mode (both are exact), ``pool="mean"`` in
                search mode (the search prunes with transport bounds; the matrix takes it), a
                ``char_weight`` other than the default outside pair mode (it weighs the pair score only).
        """
        c = self.config
        if mode not in MODES:
            raise UsageError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
        if c["solver"] == "sinkhorn" and mode != "pairs":
            raise UsageError("search and --matrix are exact: they use --solver emd")
        if mode == "search" and c["pool"] == "mean":
            raise UsageError("search mode transports token vectors; use --matrix with --pool mean for cosine neighbours")
        if mode != "pairs" and c["char_weight"] != CHAR_WEIGHT:
            raise UsageError("--char-weight weighs the characters in the pair score `similarity`; search and --matrix "
                             "rank by distance: drop --char-weight")

    def select_mode(self, inputs: Sequence[str] | None = None, *, query: str | None = None, corpus: str | None = None,
                    matrix: str | None = None, engine: str = "local", output_dir: str | None = None) -> str:
        """The mode that the command's arguments select, checked (:meth:`check_mode`): ``matrix``
        with a matrix file, else ``search`` with ``query``/``corpus``, else ``pairs``.

        Raises:
            UsageError: only one of ``query``/``corpus``; input files with them; search or matrix
                on Ray (``engine="ray"`` or an ``output_dir``: pair mode only); a matrix file not
                ending in ``.npy``.
        """
        searching = query is not None or corpus is not None
        if searching and (query is None or corpus is None):
            raise UsageError("search mode needs both --query FILE and --corpus FILE")
        if searching and inputs:
            raise UsageError("give either input files or --query/--corpus, not both")
        mode = "matrix" if matrix else "search" if searching else "pairs"
        self.check_mode(mode)
        if mode == "matrix":
            from .api import check_matrix_path

            check_matrix_path(matrix)
        if mode != "pairs" and (getattr(engine, "value", engine) == "ray" or output_dir):
            raise UsageError("--engine ray runs pair mode; search and --matrix run locally")
        return mode

    # -- records
    def text_keys(self):
        return [self.config["a_key"], self.config["b_key"]]

    def list_keys(self):
        return [self.config["b_key"]]

    def read(self, inputs: Sequence[str] | None, *, input_format: str = "auto", strict: bool = False,
             shard=None) -> Iterator[Record]:
        """The records of pair mode (:meth:`nlptool.engine.Command.read`), where a list of
        references holding something else than strings is reported by the element
        (``sentence2[1] is a number, expected a string``), not by the field.

        Raises:
            InputDataError: with ``strict``, at the first bad record.
        """
        from ..errors import InputDataError

        for rec in super().read(inputs, input_format=input_format, shard=shard):
            if rec.error:
                self._name_reference(rec, f"field {self.config['b_key']!r} is list, expected a string",
                                     rec.data if isinstance(rec.data, dict) else {})
                if strict:
                    where = f"line {rec.line} of {rec.source}: "
                    reason = rec.error[len(where):] if rec.error.startswith(where) else rec.error
                    raise InputDataError(reason, rec.source, rec.line)
            yield rec

    def _row_record(self, i: int, row: dict[str, Any], columns: Iterable[str]) -> Record:
        from ..engine import to_python

        rec = super()._row_record(i, row, columns)
        if rec.error:
            self._name_reference(rec, f"column {self.config['b_key']!r} holds list, expected a string",
                                 {k: to_python(row[k]) for k in self.text_keys() if k in row})
        return rec

    def _name_reference(self, rec: Record, generic: str, data: dict) -> None:
        """Replace the reader's ``generic`` message about the list of references by one naming
        the element that is not a string (:func:`reference_error`)."""
        msg = reference_error(data.get(self.config["b_key"]), self.config["b_key"])
        if msg and rec.error.endswith(generic):
            rec.error = rec.error[: len(rec.error) - len(generic)] + msg

    def read_texts(self, inputs: Sequence[str] | None, *, input_format: str = "auto", strict: bool = False,
                   shard=None) -> Iterator[Record]:
        """The records of search and matrix mode: one text per line, or field ``text_key`` of a
        JSON line (:func:`nlptool.records.read_records`)."""
        from ..records import read_records

        return read_records(inputs, input_format=input_format, keys=[self.config["text_key"]], strict=strict,
                            shard=shard)

    def _records(self, items: Iterable[Record | str]) -> Iterator[Record]:
        key = self.config["text_key"]
        for i, x in enumerate(items):
            yield x if isinstance(x, Record) else Record("batch", i + 1, data={key: x}, texts={key: x}, index=i)

    # -- the model, once per process
    def load(self):
        from ..models import load_model, resolve_device
        from .api import load_embedder, model_kind

        c = self.config
        lines: list[str] = []
        loaded = None
        if not c["vectors"]:
            loaded = load_model(c["model"], kind=model_kind(c["model"]), device=c["device"])
            lines.append(model_line(loaded))
        emb = load_embedder(loaded, vectors=c["vectors"], vectors_limit=c["vectors_limit"], layers=c["layers"],
                            idf=c["idf"], uniform=c["uniform"], whiten=c["whiten"], drop_punct=c["drop_punct"],
                            batch_size=c["batch_size"], log=lines.append)
        dev = resolve_device(c["device"]) if c["solver"] == "sinkhorn" else "cpu"
        return {"embedder": emb, "device": dev, "lines": lines}

    def describe(self) -> list[str]:
        """The model and device, then what was loaded with it (static vectors, whitening, IDF table)."""
        return list(self.state()["lines"])

    def finish(self, inputs: Sequence[str] = ()) -> list[str]:
        """Lines for stderr after a run (pair mode: :func:`nlptool.cli.run.run_record_command`
        calls it; search and matrix: the CLI): the out-of-vocabulary totals of static vectors over
        every text embedded since loading or since the last call, which starts the count anew.
        None with a model, or when this process loaded nothing (``--engine ray``)."""
        if self._state is None:
            return []
        stats = getattr(self._state["embedder"], "oov_stats", None)
        if stats is None:
            return []
        line = stats.summary()
        stats.__init__()
        return [line]

    # -- the three modes
    def results(self, records: list[Record]) -> list[dict | Exception]:
        """Pair mode: one score dict (or an exception) per record (:func:`score_pairs`)."""
        from .api import score_pairs

        c = self.config
        st = self.state()
        return score_pairs(st["embedder"], [r.texts[c["a_key"]] for r in records],
                           [r.texts[c["b_key"]] for r in records], metric=c["metric"], pool=c["pool"],
                           solver=c["solver"], reg=c["reg"], device=st["device"], b_key=c["b_key"],
                           char_weight=c["char_weight"])

    def search(self, queries: Iterable[Record | str], corpus: Iterable[Record | str], *, strict: bool = False,
               chunk_size: int = DEFAULT_CHUNK_SIZE, log=None) -> Iterator[dict[str, Any]]:
        """Exact k-NN search: for each query, the ``top_k`` corpus texts nearest by WMD or WRD
        (``both`` = WRD), with WCD/RWMD pruning (:func:`nlptool.similarity.api.search`).

        Args:
            queries, corpus: records of :meth:`read_texts`, or strings.
            log: receives one-line messages (unsearchable corpus texts, pruning totals).

        The mode is checked and the model loaded by this call; the queries are read as the
        returned iterator is consumed.

        Raises:
            UsageError: options this mode does not take (:meth:`check_mode`).
        """
        from .api import search

        self.check_mode("search")
        c = self.config
        emb = self.state()["embedder"]
        return search(self._records(queries), self._records(corpus), emb,
                      metric="wmd" if c["metric"] == "wmd" else "wrd", top_k=c["top_k"], strict=strict,
                      chunk_size=chunk_size, log=log)

    def matrix(self, rows: Iterable[Record | str], out_path: str, cols: Iterable[Record | str] | None = None, *,
               strict: bool = False, block_rows: int = DEFAULT_CHUNK_SIZE, log=None) -> Iterator[dict[str, Any]]:
        """All-pairs distances of ``rows`` (``cols=None``) or of ``rows`` x ``cols``, written to
        ``out_path`` (``.npy``), and one object per row with its ``top_k`` nearest columns
        (:func:`nlptool.similarity.api.matrix`: WMD/WRD, or ``1 - cos`` with ``pool="mean"``).

        The mode and the path are checked and the model loaded by this call; the work is done,
        and the file written (whole, when the iterator is exhausted), as the returned iterator is
        consumed.

        Raises:
            UsageError: options this mode does not take (:meth:`check_mode`), a path not ending
                in ``.npy`` or that cannot be written (a directory, a missing directory, an input).
        """
        from ..paths import check_output_path
        from .api import check_matrix_path, matrix

        self.check_mode("matrix")
        check_output_path(check_matrix_path(out_path))
        c = self.config
        emb = self.state()["embedder"]
        return matrix(self._records(rows), emb, out_path, col_records=None if cols is None else self._records(cols),
                      metric=c["metric"], pool=c["pool"], top_k=c["top_k"], block_rows=block_rows, strict=strict,
                      log=log)

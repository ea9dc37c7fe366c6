"""Picklable per-command workers for Ray Data, Spark and Dask (and ``--engine ray``).

One class per record command: :class:`Segmenter` (``segment``), :class:`Similarity`
(``similarity``, pair mode), :class:`Sampler` (``tokenize-sample``), :class:`Attributor`
(``attribute``) and :class:`QAGenerator` (``qa-gen``). Each

* takes the command's options as constructor arguments, every one with the CLI's default
  (``Segmenter()`` segments like ``nlptool segment``), and stores **configuration only**, so the
  object pickles and ships to any executor;
* loads its model **lazily, once per process**, on the first call (a module-level cache keyed by
  the class and its configuration; ``__getstate__`` drops the reference, so a pickled worker never
  carries weights; :data:`LOAD_COUNTS` counts the loads of this process);
* is called on a batch, ``worker(batch)``: a pandas DataFrame or a dict of numpy arrays (the two
  formats Ray Data's ``map_batches`` passes) with the text column(s). It returns the same rows in
  the same order, every input column kept, the result columns added (JSON-compatible values:
  lists, dicts, numbers, strings; ``None`` where a row has no such field) and an ``error`` column
  (``None`` for good rows, the reason for a bad one). A bad row never raises: a missing or
  non-string text, or a text the library cannot take, is that row's error;
* calls the same library function as the CLI, through :meth:`results` (the per-record function
  ``list[Record] -> list[dict | Exception]`` that the command hands to :func:`nlptool.engine.map_records`).

Usage with the engines (runnable versions in examples/, shown in docs/scale-out.md)::

    ds.map_batches(Segmenter, fn_constructor_kwargs={"method": "tagger"}, batch_size=256,
                   concurrency=4, num_gpus=0, batch_format="pandas")          # Ray Data actor pool
    df.mapInPandas(spark_udf(Segmenter()), schema)                         # Spark
    bag.map_partitions(process, Segmenter())    # Dask: process(lines, worker) calls worker(DataFrame)

Scaling a pipeline out this way follows Ray Data's batch-inference recipe (a callable class in an
actor pool, https://docs.ray.io/en/latest/data/batch_inference.html) and Spark's
``mapInPandas`` (one model per partition iterator).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .errors import UsageError
from .records import Record  #: Model loads in this process, per worker class name (tests check "once per process").
from .engine import apply_batch, exception_message
LOAD_COUNTS: Counter = Counter()

#: Loaded models of this process, keyed by ``(class name, configuration)``.
_CACHE: dict[tuple, Any] = {}

#: Default models of ``segment --method`` (the same as ``nlptool.cli.segment.DEFAULT_MODELS``).
SEGMENT_MODELS = {"tagger": "zh-seg-mini", "masking": "zh-bert-mini"}


def record_rng(seed: int | None, index: int, shared: random.Random | None = None) -> random.Random:
    """The random generator of one record: ``random.Random("<seed>/<index>")`` when ``seed`` is
    given, so a record's draws depend only on the seed and its 0-based position in the input
    (:attr:`nlptool.records.Record.index`), not on which process, shard or chunk handles it; without a
    seed, ``shared`` (or a fresh unseeded generator)."""
    if seed is None:
        return shared if shared is not None else random.Random()
    return random.Random(f"{int(seed)}/{int(index)}")


class RecordFailure(ValueError):
    """A per-record failure carried back from a remote worker (its message already final)."""


def _to_python(value: Any) -> Any:
    """numpy scalars/arrays (Ray's numpy batch format, pandas cells) as plain Python values."""
    tolist = getattr(value, "tolist", None)
    if tolist is not None and not isinstance(value, (str, bytes)):
        return tolist()
    return value


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class _Worker:
    """Base class: configuration in ``self.config``; the loaded state in a per-process cache."""

    def __init__(self, **config: Any):
        self.config = dict(config)
        self._state = None

    # -- pickling: configuration only
    def __getstate__(self) -> dict:
        return {"config": self.config}

    def __setstate__(self, state: dict) -> None:
        self.config = state["config"]
        self._state = None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"

    # -- the model, once per process
    def state(self) -> Any:
        """The loaded model(s) of this configuration, loaded on first use and cached per process."""
        if self._state is None:
            key = (type(self).__name__, _freeze(self.config))
            if key not in _CACHE:
                _CACHE[key] = self._load()
                LOAD_COUNTS[type(self).__name__] += 1
            self._state = _CACHE[key]
        return self._state

    def _load(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- records
    def text_keys(self) -> list[str]:
        return [self.config.get("text_key", "text")]

    def extra_keys(self) -> list[str]:
        """Optional columns copied into ``Record.texts`` when present (any JSON value)."""
        return []

    def list_keys(self) -> list[str]:
        """Those of :meth:`text_keys` that may hold a list of strings."""
        return []

    def results(self, records: list[Record]) -> list[dict | Exception]:
        """One result dict (or an exception) per record: the command's per-chunk function."""
        raise NotImplementedError  # pragma: no cover

    def safe_results(self, records: list[Record]) -> list[dict | Exception]:
        """:meth:`results` with a failing chunk retried record by record (as the CLI does), and
        every exception turned into a picklable :class:`RecordFailure` with its final message."""
        out = apply_batch(self.results, records) if records else []
        return [RecordFailure(exception_message(r)) if isinstance(r, Exception) else r for r in out]

    def _row_record(self, i: int, row: dict[str, Any], columns: Iterable[str]) -> Record:
        index_key = self.config.get("index_key")
        index = i
        if index_key and index_key in row and not _missing(row[index_key]):
            try:
                index = int(row[index_key])
            except (TypeError, ValueError):
                return Record("batch", i + 1, error=f"column {index_key!r} is not an integer", index=i)
        rec = Record("batch", i + 1, index=index)
        cols = set(columns)
        for k in self.text_keys():
            if k not in cols:
                rec.error = f"missing column {k!r} (columns: {', '.join(map(str, columns)) or 'none'})"
                return rec
            v = _to_python(row[k])
            if _missing(v):
                v = ""
            if k in self.list_keys() and isinstance(v, list) and all(isinstance(x, str) for x in v):
                rec.texts[k] = v
                continue
            if not isinstance(v, str):
                rec.error = f"column {k!r} holds {type(v).__name__}, expected a string"
                return rec
            rec.texts[k] = v
        for k in self.extra_keys():
            if k in cols:
                v = _to_python(row[k])
                if not _missing(v):
                    rec.texts[k] = v
        return rec

    def __call__(self, batch):
        """Process one batch: a pandas DataFrame or a dict of equal-length numpy arrays.

        Returns:
            The same type, the same rows in the same order: the input columns, then the result
            columns (object dtype; ``None`` where a row has no such field), then ``error``
            (``None`` for good rows). Never raises for a bad row.
        """
        is_frame = not isinstance(batch, dict)
        if is_frame:
            columns = [str(c) for c in batch.columns]
            rows = batch.to_dict("records")
        else:
            columns = list(batch)
            n = len(next(iter(batch.values()))) if batch else 0
            rows = [{c: batch[c][i] for c in columns} for i in range(n)]
        records = [self._row_record(i, row, columns) for i, row in enumerate(rows)]
        good = [r for r in records if not r.error]
        by_id = {id(r): res for r, res in zip(good, self.safe_results(good))}
        new_cols: dict[str, list] = {}
        errors: list[str | None] = []
        for j, r in enumerate(records):
            res = by_id.get(id(r)) if not r.error else None
            err = r.error or (str(res) if isinstance(res, Exception) else None)
            errors.append(err)
            if err is None and res:
                for k, v in res.items():
                    if k == "error":
                        continue
                    new_cols.setdefault(k, [None] * len(records))[j] = v
        result_keys = list(new_cols)
        if is_frame:
            import pandas as pd

            out = batch.copy()
            for k in result_keys:
                col = new_cols[k]
                if k in columns:  # a result overwrites an input field of the same name (good rows only)
                    col = [v if errors[j] is None else out[k].iloc[j] for j, v in enumerate(col)]
                out[k] = pd.Series(col, index=out.index, dtype=object)
            out["error"] = pd.Series(errors, index=out.index, dtype=object)
            return out
        import numpy as np

        out = dict(batch)
        for k in [*result_keys, "error"]:
            values = errors if k == "error" else new_cols[k]
            arr = np.empty(len(records), dtype=object)
            for j, v in enumerate(values):
                if k in columns and k != "error" and errors[j] is not None:
                    v = batch[k][j]
                arr[j] = v
            out[k] = arr
        return out


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _load_model(name, kind, device):
    from .models import load_model

    return load_model(name, kind=kind, device=device)


# ------------------------------------------------------------------------------ segment


class Segmenter(_Worker):
    """``nlptool segment`` as a worker: words (and a parse) per text, via
    :func:`nlptool.segment.segment_or_parse`.

    Args (the CLI's options and defaults): ``model`` (default by ``method``: zh-seg-mini for
    ``tagger``, zh-bert-mini for ``masking``), ``method`` (``tagger|masking``, default tagger), ``user_dict``
    (path, jieba format), ``convert`` (``auto|t2s|none``), ``threshold`` (``"auto"`` or a float),
    ``layer``, ``parse`` (``none|constituency|dependency``), ``device``, ``batch_size``,
    ``text_key``, ``words_key`` (with ``parse``: a column of given word lists).

    Result columns: ``words`` (list of str, concatenating to the text), plus ``tree``/``heads``
    with ``parse``. Raises :class:`nlptool.errors.UsageError` for a bad option value.
    """

    def __init__(self, model: str | None = None, method: str = "tagger", user_dict: str | None = None,
                 convert: str = "auto", threshold: float | str = "auto", layer: int = -1, parse: str = "none",
                 device: str = "auto", batch_size: int = 256, text_key: str = "text", words_key: str = "words"):
        if method not in SEGMENT_MODELS:
            raise UsageError(f"segmentation method {method!r}: expected tagger or masking")
        if parse not in ("none", "constituency", "dependency"):
            raise UsageError(f"parse {parse!r}: expected none, constituency or dependency")
        if threshold != "auto":
            threshold = float(threshold)
            if not math.isfinite(threshold):
                raise UsageError("the segmentation threshold must be 'auto' or a finite number")
        super().__init__(model=model, method=method, user_dict=user_dict, convert=convert, threshold=threshold,
                         layer=layer, parse=parse, device=device, batch_size=batch_size, text_key=text_key,
                         words_key=words_key)

    def extra_keys(self) -> list[str]:
        return [self.config["words_key"]] if self.config["parse"] != "none" else []

    def _row_record(self, i, row, columns):
        c = self.config
        if c["parse"] != "none" and c["words_key"] in columns and c["text_key"] not in columns:
            rec = Record("batch", i + 1, index=i)  # a given word list needs no text
            v = _to_python(row[c["words_key"]])
            if not _missing(v):
                rec.texts[c["words_key"]] = v
            return rec
        return super()._row_record(i, row, columns)

    def _load(self):
        from .segment import read_user_dict, teacher_of

        c = self.config
        name = c["model"] or SEGMENT_MODELS[c["method"]]
        seg = _load_model(name, "char-tagger" if c["method"] == "tagger" else "encoder", c["device"])
        parser = None
        if c["parse"] != "none":
            parser = seg if c["method"] == "masking" else _load_model(teacher_of(seg), "encoder", c["device"])
        udict = read_user_dict(c["user_dict"]) if c["user_dict"] else None
        return {"segmenter": seg, "parser": parser, "user_dict": udict}

    def results(self, records):
        from .segment import auto_fallback, segment_or_parse

        c = self.config
        st = self.state()
        wk = c["words_key"]
        given = [r.texts.get(wk) if c["parse"] != "none" and wk in r.texts else None for r in records]
        return segment_or_parse(
            [r.text if g is None else None for r, g in zip(records, given)], segmenter=st["segmenter"],
            method=c["method"], given_words=given, parser=st["parser"], parse=c["parse"], threshold=c["threshold"],
            layer=c["layer"], batch_size=c["batch_size"], user_dict=st["user_dict"], convert=c["convert"],
            fallback=lambda: auto_fallback(st["segmenter"], layer=c["layer"], batch_size=c["batch_size"]),
        )


# ------------------------------------------------------------------------------ similarity


class Similarity(_Worker):
    """``nlptool similarity`` (pair mode) as a worker: WMD / WRD or mean-vector cosine of the pair
    in columns ``a_key``/``b_key`` (``b_key`` may hold a list of references), via
    :func:`nlptool.similarity.score_pairs` (Kusner et al. 2015, WMD; Yokoi et al. 2020, WRD).

    Args: the CLI's pair-mode options and defaults (``model="zh-sim-mini"``, ``metric``
    ``wmd|wrd|both``, ``pool`` ``none|mean``, ``layers`` (tuple, replaces ``layer``), ``vectors``,
    ``vectors_limit``, ``idf``, ``uniform``, ``whiten``, ``drop_punct``, ``solver``
    ``emd|sinkhorn``, ``reg``, ``device``, ``batch_size``, ``a_key``, ``b_key``).

    Result columns: ``wmd``/``wrd`` (or ``cosine``) and the per-reference fields of
    :func:`score_pairs`.
    """

    def __init__(self, model: str = "zh-sim-mini", metric: str = "both", pool: str = "none", layer: int = -1,
                 layers: tuple[int, ...] | None = None, vectors: str | None = None, vectors_limit: int | None = None,
                 idf: str | None = None, uniform: bool = False, whiten: str | None = None, drop_punct: bool = False,
                 solver: str = "emd", reg: float | None = None, device: str = "auto", batch_size: int = 256,
                 a_key: str = "sentence1", b_key: str = "sentence2"):
        if solver == "sinkhorn" and reg is None:
            raise UsageError("the sinkhorn solver needs an entropic regularisation reg > 0 (e.g. 0.05)")
        if idf and uniform:
            raise UsageError("an IDF table and uniform weights exclude each other")
        super().__init__(model=model, metric=metric, pool=pool, layers=tuple(layers) if layers else (layer,),
                         vectors=vectors, vectors_limit=vectors_limit, idf=idf, uniform=uniform, whiten=whiten,
                         drop_punct=drop_punct, solver=solver, reg=reg, device=device, batch_size=batch_size,
                         a_key=a_key, b_key=b_key)

    def text_keys(self):
        return [self.config["a_key"], self.config["b_key"]]

    def list_keys(self):
        return [self.config["b_key"]]

    def _load(self):
        from .models import resolve_device
        from .similarity import load_embedder, model_kind

        c = self.config
        loaded = None if c["vectors"] else _load_model(c["model"], model_kind(c["model"]), c["device"])
        emb = load_embedder(loaded, vectors=c["vectors"], vectors_limit=c["vectors_limit"], layers=c["layers"],
                            idf=c["idf"], uniform=c["uniform"], whiten=c["whiten"], drop_punct=c["drop_punct"],
                            batch_size=c["batch_size"])
        dev = resolve_device(c["device"]) if c["solver"] == "sinkhorn" else "cpu"
        return {"embedder": emb, "device": dev}

    def results(self, records):
        from .similarity import score_pairs

        c = self.config
        st = self.state()
        return score_pairs(st["embedder"], [r.texts[c["a_key"]] for r in records],
                           [r.texts[c["b_key"]] for r in records], metric=c["metric"], pool=c["pool"],
                           solver=c["solver"], reg=c["reg"], device=st["device"])


# ------------------------------------------------------------------------------ tokenize-sample


class Sampler(_Worker):
    """``nlptool tokenize-sample`` as a worker: exact FFBS sampling / n-best / entropy / marginals
    of unigram-LM segmentations, via :func:`nlptool.unigram.tokenize` (Kudo 2018, subword
    regularization; Su, kexue.fm 2023-09-16).

    Args: the CLI's options and defaults (``alpha`` 0.1, ``"inf"`` = Viterbi; ``num_samples``,
    ``without_replacement``, ``nbest``, ``entropy``, ``marginals``, ``ids``, ``seed``, ``method``
    ``ffbs|su2023``, ``dict_path``/``sp_model``/``bytepiece_model``, ``text_key``) and
    ``index_key``: the column holding each row's 0-based position in the whole input. With a
    ``seed``, a row's draws come from :func:`record_rng` ``(seed, index)``, the same as the CLI's
    for that input line; without that column the row's position in the batch is used (then the
    draws depend on how the data is batched).

    Result columns: ``tokens``/``logp`` (one sample), ``samples`` (K), ``nbest``, ``entropy``,
    ``marginals``, ``ids``.
    """

    def __init__(self, alpha: float | str = "0.1", num_samples: int = 1, without_replacement: bool = False,
                 nbest: int | None = None, entropy: bool = False, marginals: bool = False, ids: bool = False,
                 seed: int | None = None, method: str = "ffbs", dict_path: str | None = None,
                 sp_model: str | None = None, bytepiece_model: str | None = None, text_key: str = "text",
                 index_key: str | None = "_index"):
        from .unigram import check_alpha

        a = check_alpha(alpha)
        if ids and not sp_model:
            raise UsageError("token ids need a SentencePiece model (sp_model)")
        if nbest is not None and (num_samples != 1 or without_replacement or method != "ffbs"):
            raise UsageError("n-best decoding does not sample: leave num_samples, without_replacement and method unset")
        if without_replacement and method != "ffbs":
            raise UsageError("sampling without replacement is exact: use method ffbs")
        super().__init__(alpha=a, num_samples=num_samples, without_replacement=without_replacement, nbest=nbest,
                         entropy=entropy, marginals=marginals, ids=ids, seed=seed, method=method,
                         dict_path=dict_path, sp_model=sp_model, bytepiece_model=bytepiece_model,
                         text_key=text_key, index_key=index_key)

    def _load(self):
        from .unigram import load_unigram_model

        c = self.config
        return {"model": load_unigram_model(c["dict_path"], c["sp_model"], c["bytepiece_model"]), "rng": random.Random()}

    def results(self, records):
        from .unigram import tokenize

        c = self.config
        st = self.state()
        return [tokenize(st["model"], r.text, c["alpha"], num_samples=c["num_samples"],
                         rng=record_rng(c["seed"], r.index, st["rng"]), method=c["method"], nbest=c["nbest"],
                         without_replacement=c["without_replacement"], entropy=c["entropy"],
                         marginals=c["marginals"], ids=c["ids"])
                for r in records]


# ------------------------------------------------------------------------------ attribute


class Attributor(_Worker):
    """``nlptool attribute`` as a worker: integrated-gradients scores per token or word of a text
    classifier, via :func:`nlptool.attribution.attribute_texts` (Sundararajan et al., ICML 2017).

    Args: the CLI's options and defaults (``model="zh-sentiment-mini"``, ``target`` (label,
    index, ``"all"`` or None = predicted), ``granularity`` ``token|word``, ``steps``, ``method``,
    ``baseline`` ``pad|mask|unk``, ``explain`` ``probability|logit``, ``internal_batch_size``,
    ``batch_size``, ``max_length``, ``device``, ``text_key``).

    Result columns: those of :func:`attribute_texts` (label, scores, offsets, delta, ...).
    """

    def __init__(self, model: str = "zh-sentiment-mini", target: str | None = None, granularity: str = "token",
                 steps: int = 50, method: str = "gausslegendre", baseline: str = "pad",
                 explain: str = "probability", internal_batch_size: int | None = None, batch_size: int = 8,
                 max_length: int | None = None, device: str = "auto", text_key: str = "text"):
        super().__init__(model=model, target=target or None, granularity=granularity, steps=steps, method=method,
                         baseline=baseline, explain=explain, internal_batch_size=internal_batch_size,
                         batch_size=batch_size, max_length=max_length, device=device, text_key=text_key)

    def _load(self):
        return {"model": _load_model(self.config["model"], "sequence-classification", self.config["device"])}

    def results(self, records):
        from .attribution import attribute_texts

        c = self.config
        return attribute_texts(
            self.state()["model"], [r.text for r in records], target=c["target"], steps=c["steps"],
            method=c["method"], baseline=c["baseline"], explain=c["explain"], granularity=c["granularity"],
            internal_batch_size=c["internal_batch_size"], max_length=c["max_length"], batch_size=c["batch_size"],
        )


# ------------------------------------------------------------------------------ qa-gen


class QAGenerator(_Worker):
    """``nlptool qa-gen`` as a worker: question-answer pairs per passage (UniLM seq2seq on BERT,
    Dong et al. 2019; Su, kexue.fm 2020-07-25), or one question per given answer for rows with an
    ``answers_key`` list, via :func:`nlptool.qagen.generate_qa_pairs` /
    :func:`nlptool.qagen.questions_for_answers`.

    Args: the CLI's options and defaults (``model="zh-qa-gen-mini"``, ``num_pairs``, ``top_p``,
    ``beam_size``, ``no_repeat_ngram``, ``length_penalty``, ``max_answer_len``,
    ``max_question_len``, ``max_passage_chars`` (None = the model's setting), ``round_trip``,
    ``reader``, ``min_consistency``, ``seed`` (per passage: the same seed and passage give the
    same pairs, whatever the batching), ``batch_size``, ``device``, ``text_key``, ``answers_key``).

    Result columns: ``qa_pairs`` and ``qa_filtered``.
    """

    def __init__(self, model: str = "zh-qa-gen-mini", num_pairs: int = 5, top_p: float | None = None,
                 beam_size: int | None = None, no_repeat_ngram: int | None = None,
                 length_penalty: float | None = None, max_answer_len: int | None = None,
                 max_question_len: int | None = None, max_passage_chars: int | None = None,
                 round_trip: bool = True, reader: str = "zh-reader-mini", min_consistency: float | None = None,
                 seed: int = 0, batch_size: int = 16, device: str = "auto", text_key: str = "text",
                 answers_key: str = "answers"):
        super().__init__(model=model, num_pairs=num_pairs, top_p=top_p, beam_size=beam_size,
                         no_repeat_ngram=no_repeat_ngram, length_penalty=length_penalty,
                         max_answer_len=max_answer_len, max_question_len=max_question_len,
                         max_passage_chars=max_passage_chars, round_trip=round_trip, reader=reader,
                         min_consistency=min_consistency, seed=seed, batch_size=batch_size, device=device,
                         text_key=text_key, answers_key=answers_key)

    def extra_keys(self):
        return [self.config["answers_key"]]

    def _load(self):
        from .qagen import check_generator

        c = self.config
        loaded = _load_model(c["model"], "masked-lm", c["device"])
        settings = check_generator(loaded)
        rt = None
        if c["round_trip"]:
            from .reader import load_reader

            rt = load_reader(c["reader"], c["device"])
        from .qagen import DECODING_KEYS, decoding_settings

        decoding = decoding_settings(settings, **{k: c[k] for k in DECODING_KEYS})
        return {"model": loaded, "reader": rt, "decoding": decoding}

    def results(self, records):
        from .qagen import qa_pairs_for_records

        c = self.config
        st = self.state()
        ak = c["answers_key"]
        return qa_pairs_for_records(st["model"], [r.text for r in records], [r.texts for r in records],
                                    decoding=st["decoding"], num_pairs=c["num_pairs"], seed=c["seed"],
                                    batch_size=c["batch_size"], reader=st["reader"], answers_key=ak)


# ------------------------------------------------------------------------------ Spark and Dask adapters


def spark_udf(worker: _Worker) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """A function for Spark's ``DataFrame.mapInPandas(fn, schema)``: it receives an iterator of
    pandas DataFrames (one partition) and yields the processed frames. The worker pickles to the
    executor without its model and loads it once per Python worker process (Spark reuses them).
    Nested result columns (lists, dicts) are best declared in ``schema`` as JSON strings: see
    :func:`json_columns`."""
    def fn(frames: Iterator[Any]) -> Iterator[Any]:
        for frame in frames:
            yield worker(frame)

    return fn


def json_columns(frame, columns: Iterable[str]):
    """``frame`` with the given result columns serialised to JSON strings (``ensure_ascii=False``),
    for engines whose schemas want flat types (Spark ``StringType``)."""
    import json

    out = frame.copy()
    for c in columns:
        out[c] = [None if v is None else json.dumps(v, ensure_ascii=False) for v in out[c]]
    return out

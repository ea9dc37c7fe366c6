"""``nlptool similarity`` (pair mode) as one object (:class:`Similarity`)."""

from __future__ import annotations


from ..engine import Command
from ..errors import UsageError
from ..models import load_model


class Similarity(Command):
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

    def load(self):
        from ..models import resolve_device
        from ..similarity import load_embedder, model_kind

        c = self.config
        loaded = None if c["vectors"] else load_model(c["model"], kind=model_kind(c["model"]), device=c["device"])
        emb = load_embedder(loaded, vectors=c["vectors"], vectors_limit=c["vectors_limit"], layers=c["layers"],
                            idf=c["idf"], uniform=c["uniform"], whiten=c["whiten"], drop_punct=c["drop_punct"],
                            batch_size=c["batch_size"])
        dev = resolve_device(c["device"]) if c["solver"] == "sinkhorn" else "cpu"
        return {"embedder": emb, "device": dev}

    def results(self, records):
        from ..similarity import score_pairs

        c = self.config
        st = self.state()
        return score_pairs(st["embedder"], [r.texts[c["a_key"]] for r in records],
                           [r.texts[c["b_key"]] for r in records], metric=c["metric"], pool=c["pool"],
                           solver=c["solver"], reg=c["reg"], device=st["device"])

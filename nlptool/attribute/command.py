"""``nlptool attribute`` as one object (:class:`Attributor`)."""

from __future__ import annotations


from ..engine import Command
from ..models import load_model


class Attributor(Command):
    """``nlptool attribute`` as a worker: integrated-gradients scores per token or word of a text
    classifier, via :func:`nlptool.attribute.attribute_texts` (Sundararajan et al., ICML 2017).

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

    def load(self):
        return {"model": load_model(self.config["model"], kind="sequence-classification", device=self.config["device"])}

    def results(self, records):
        from ..attribute import attribute_texts

        c = self.config
        return attribute_texts(
            self.state()["model"], [r.text for r in records], target=c["target"], steps=c["steps"],
            method=c["method"], baseline=c["baseline"], explain=c["explain"], granularity=c["granularity"],
            internal_batch_size=c["internal_batch_size"], max_length=c["max_length"], batch_size=c["batch_size"],
        )

"""Integrated gradients for text classifiers (``nlptool attribute``).

* :mod:`nlptool.attribute.ig`: the attributions (integrated gradients on the token embeddings,
  the integration nodes of several texts in shared forward passes, captum's layer integrated
  gradients as the reference; completeness delta kept), word grouping, all-label targets;
* :mod:`nlptool.attribute.render`: HTML page, rich terminal text and PNG heatmaps.

Heavy imports (torch, captum, jieba, matplotlib) happen inside the functions.
"""

from .ig import (
    BASELINES,
    DELTA_WARN,
    EXPLAIN,
    GRANULARITIES,
    METHODS,
    TOKENS_PER_FORWARD,
    attribute_texts,
    baseline_ids,
    cls_forward,
    ig_scores,
    ig_scores_batched,
    integration_nodes,
    label_list,
    logits_of,
    resolve_target,
    word_groups,
)
from .render import CJK_FAMILIES, find_cjk_font, render_html, render_png, render_rich, views

__all__ = [
    "BASELINES", "CJK_FAMILIES", "DELTA_WARN", "EXPLAIN", "GRANULARITIES", "METHODS", "TOKENS_PER_FORWARD",
    "attribute_texts", "baseline_ids", "cls_forward", "find_cjk_font", "ig_scores", "ig_scores_batched", "integration_nodes",
    "label_list", "logits_of", "render_html", "render_png", "render_rich", "resolve_target", "views", "word_groups",
]

from .command import Attributor  # noqa: E402,F401

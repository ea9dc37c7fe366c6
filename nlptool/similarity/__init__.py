"""Text similarity: document distances by optimal transport between token vectors (WMD, WRD, their
lower bounds, exact k-NN search, all-pairs matrices) and the sentence cosine.

Sources:

* Kusner, Sun, Kolkin, Weinberger, "From Word Embeddings To Document Distances", ICML 2015:
  Word Mover's Distance (WMD, eq. 1: nBOW weights ``d_i = c_i / sum_j c_j``, Euclidean cost
  ``||x_i - x_j||_2``), the Word Centroid Distance (WCD, eq. 3: ``||X d - X d'||_2 <= WMD``), the
  Relaxed WMD (RWMD, section 4: drop one marginal constraint; ``max`` of the two relaxations
  ``<= WMD``) and exact k-nearest-neighbour search that sorts by WCD, solves the first ``k``
  exactly, and prunes every further document whose RWMD exceeds the current ``k``-th distance
  ("prefetch and prune").
* Yokoi, Takahashi, Akama, Suzuki, Inui, "Word Rotator's Distance", EMNLP 2020: WRD, weights
  proportional to the vector norms ``m_i = ||x_i|| / sum_j ||x_j||``, cost ``1 - cos(x_i, x_j)``
  (eq. 8-9). Because the cost is in ``[0, 2]`` and the weights sum to 1, ``WRD in [0, 2]``.
* Su Jianlin, "从EMD、WMD到WRD：文本向量序列的相似度计算", kexue.fm, 2020-05-13 (the same two
  distances, and the observation that the norm carries the word's importance).

Transport problems are solved with POT (Flamary et al., JMLR 2021): :func:`ot.emd2` (network
simplex, exact; the default) or, for many pairs at once, :func:`ot.batch.solve_batch` with
entropic regularisation (Cuturi 2013, Sinkhorn) on POT's torch backend, so it runs on the GPU when
there is one. Pairs of different sizes are padded with zero-mass rows and columns.

Optional IDF weights multiply the nBOW counts (WMD) or the norms (WRD) before normalisation.

Token vectors come from a Hugging Face encoder (:class:`ContextualEmbedder`, special tokens
excluded) or from static word2vec vectors (:class:`StaticEmbedder`, see :mod:`nlptool.similarity.vectors`).

Degenerate input (see :func:`pair_distances`): a text with no token vector (empty text, only
punctuation with static vectors, or every word out of vocabulary) makes the pair's distance
undefined and gives an error entry; identical token sequences give exactly 0; a single token is an
ordinary problem (all its mass moves to the other text's tokens).

Fine-tuned token vectors: the built-in ``zh-sim-mini`` (the default model of ``nlptool similarity``)
is zh-bert-mini fine-tuned with CoSENT (Su, kexue.fm 2022-01) by :mod:`nlptool.similarity.train`.

Layout of this package:

* :mod:`.transport`: documents, weights, ground costs, exact/entropic solvers, WCD/RWMD bounds;
* :mod:`.search`: exact k-NN search with pruning;
* :mod:`.embedders`: contextual (Hugging Face) and static (word2vec) token vectors;
* :mod:`.weights`: IDF tables and BERT-whitening files;
* :mod:`.api`: the library entry points (:func:`load_embedder`, :func:`pairs`, :func:`score_pairs`,
  :func:`search`, :func:`matrix`) and the rules between the options (:func:`check_options`);
* :mod:`.command`: :class:`Similarity`, the command as one object (defaults, rules, model loading,
  the three modes), which the CLI builds and runs.
"""

from __future__ import annotations

import importlib

from .command import CHAR_WEIGHT, DEFAULT_LAYER, DEFAULT_MODEL, Similarity

#: The public names of the submodules, imported on first use (PEP 562): ``import nlptool.similarity``
#: (and so ``nlptool --help``, which reads :data:`DEFAULT_MODEL`) imports neither numpy nor POT.
#: ``nlptool.similarity.search`` is the submodule (pruned k-NN); the search over records is
#: :func:`nlptool.similarity.api.search` (or :meth:`Similarity.search`).
_LAZY = {
    "api": ("METRIC_CHOICES", "POOLS", "OovStats", "blend", "char_jaccard", "check_options", "distance_block", "load_embedder", "matrix",
            "model_kind", "pairs", "score_pairs"),
    "embedders": ("ContextualEmbedder", "StaticEmbedder", "_is_punct_token", "parse_layers"),
    "search": ("CorpusIndex", "SearchResult", "knn_search"),
    "transport": ("METRICS", "PRUNE_RTOL", "SOLVERS", "Doc", "Prepared", "cost_matrix", "distance", "emd",
                  "mean_cosine", "pair_distances", "prepare", "rwmd", "sinkhorn_batch", "wcd"),
    "weights": ("BUILTIN_IDF", "Whitening", "builtin_idf_path", "idf_from_corpus", "load_idf", "load_whitening"),
}
_WHERE = {name: mod for mod, names in _LAZY.items() for name in names}

__all__ = ["CHAR_WEIGHT", "DEFAULT_LAYER", "DEFAULT_MODEL", "Similarity", *_WHERE]


def __getattr__(name: str):
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))

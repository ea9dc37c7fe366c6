"""``nlptool segment``: unsupervised word segmentation (self-trained tagger or Perturbed Masking) and parsing."""

from .command import DEFAULT_METHOD, DEFAULT_MODELS, Segmenter  # noqa: F401
from .conllu import conllu_block  # noqa: F401

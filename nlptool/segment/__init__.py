"""``nlptool segment``: unsupervised word segmentation (self-trained tagger or Perturbed Masking) and parsing."""

from .command import Segmenter  # noqa: E402,F401

"""``nlptool tokenize-sample``: exact sampling of segmentations under a unigram LM."""

from .command import Sampler  # noqa: E402,F401

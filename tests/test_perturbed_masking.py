"""Perturbed Masking engine against a brute-force reference (one forward pass per masked input)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nlptool.models import load_model
from nlptool.segment.masking import EngineStats, adjacent_masks, impact_matrices, neighbour_impacts


@pytest.fixture(scope="module")
def tiny(tiny_bert_dir):
    return load_model(tiny_bert_dir, kind="encoder", device="cpu")


def _vec(loaded, units, masked, layer=-1):
    """Brute force: one unbatched forward pass; mean of the masked unit's token vectors."""
    import torch

    tok = loaded.tokenizer
    ids = [tok.cls_token_id]
    spans = []
    for u in units:
        spans.append((len(ids), len(ids) + len(u)))
        ids.extend(u)
    ids.append(tok.sep_token_id)
    ids = list(ids)
    for m in masked:
        s, e = spans[m]
        ids[s:e] = [tok.mask_token_id] * (e - s)
    with torch.no_grad():
        out = loaded.model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    h = out.hidden_states[layer][0].numpy()
    return {m: h[spans[m][0] : spans[m][1]].mean(0) for m in masked}


def _brute_matrix(loaded, units, layer=-1):
    n = len(units)
    F = np.zeros((n, n))
    for i, j in itertools.permutations(range(n), 2):
        hi = _vec(loaded, units, (i,), layer)[i]
        hij = _vec(loaded, units, (i, j), layer)[i]
        F[i, j] = np.linalg.norm(hi - hij)
    return F


def _units(tok, text):
    return [tok.encode(c, add_special_tokens=False) for c in text]


def test_impact_matrix_equals_brute_force(tiny):
    tok = tiny.tokenizer
    seqs = [_units(tok, "我们的国家"), _units(tok, "天气"), [tok.encode("ab", add_special_tokens=False), *_units(tok, "中国人")]]
    stats = EngineStats()
    mats = impact_matrices(tiny, seqs, batch_size=4, stats=stats)
    for units, F in zip(seqs, mats):
        np.testing.assert_allclose(F, _brute_matrix(tiny, units), rtol=1e-4, atol=1e-5)
    # n + n(n-1)/2 masked inputs per sequence, not n^2
    assert stats.sequences == sum(len(u) + len(u) * (len(u) - 1) // 2 for u in seqs)


def test_impact_matrix_other_layer(tiny):
    units = _units(tiny.tokenizer, "学生们")
    (F,) = impact_matrices(tiny, [units], layer=1)
    np.testing.assert_allclose(F, _brute_matrix(tiny, units, layer=1), rtol=1e-4, atol=1e-5)


def test_neighbour_impacts_match_matrix(tiny):
    tok = tiny.tokenizer
    seqs = [_units(tok, "人民的生活"), _units(tok, "我")]
    ds = neighbour_impacts(tiny, seqs, batch_size=3)
    (F,) = impact_matrices(tiny, seqs[:1])
    expect = [(F[i, i + 1] + F[i + 1, i]) / 2 for i in range(4)]
    np.testing.assert_allclose(ds[0], expect, rtol=1e-4, atol=1e-5)
    assert ds[1].shape == (0,)
    assert len(adjacent_masks(5, 0)) == 9  # 2n - 1


def test_window_overflow_is_an_error_not_a_crash(tiny):
    units = [[tiny.tokenizer.convert_tokens_to_ids("中")]] * 100  # tiny model window: 64
    with pytest.raises(ValueError, match="window"):
        neighbour_impacts(tiny, [units])

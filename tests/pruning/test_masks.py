"""Mask maths (in-graph, keras.ops) against plain numpy loops."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from r2kd_keras.pruning import magnitude_mask
from r2kd_keras.pruning import prune_teacher
from r2kd_keras.pruning.magnitude import block_magnitude_mask
from r2kd_keras.pruning.magnitude import m_by_n_mask
from r2kd_keras.pruning.magnitude import magnitude_mask_tensor
from tests.pruning.helpers import small_cnn


def _reference_mask(weights, sparsity):
    flat = np.abs(weights).ravel()
    mask = np.ones(flat.size, np.float32)
    mask[np.argsort(flat, kind="stable")[: int(round(sparsity * flat.size))]] = 0
    return mask.reshape(weights.shape)


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9])
def test_in_graph_mask_matches_numpy_with_ties(sparsity):
    # Values on a coarse grid give many ties: they must be broken by position.
    weights = np.round(np.random.default_rng(1).normal(size=(3, 3, 4, 6)), 1)
    weights = weights.astype("float32")
    graph_fn = tf.function(magnitude_mask_tensor)
    mask = graph_fn(tf.constant(weights), tf.constant(sparsity, "float64")).numpy()
    np.testing.assert_array_equal(mask, _reference_mask(weights, sparsity))
    np.testing.assert_array_equal(magnitude_mask(weights, sparsity), mask)


def test_numpy_mask_keeps_documented_example_and_errors():
    np.testing.assert_array_equal(
        magnitude_mask(np.array([0.3, -0.1, 2.0, 0.05]), 0.5), [1, 0, 1, 0]
    )
    with pytest.raises(ValueError, match="sparsity.*1.5"):
        magnitude_mask(np.ones(4), 1.5)


def test_block_mask_prunes_whole_blocks_by_mean_magnitude():
    weights = np.random.default_rng(2).normal(size=(7, 10)).astype("float32")
    mask = keras.ops.convert_to_numpy(block_magnitude_mask(weights, 0.5, (2, 4)))
    # Reference: mean |w| over each 2x4 block (edge blocks are partial).
    blocks = [(r, c) for r in range(0, 7, 2) for c in range(0, 10, 4)]
    means = np.array([np.abs(weights[r:r + 2, c:c + 4]).mean() for r, c in blocks])
    pruned = np.argsort(means, kind="stable")[: round(0.5 * len(blocks))]
    expected = np.ones_like(weights)
    for index in pruned:
        r, c = blocks[index]
        expected[r:r + 2, c:c + 4] = 0
    np.testing.assert_array_equal(mask, expected)


def test_m_by_n_mask_zeroes_two_in_every_four_input_channels():
    weights = np.random.default_rng(3).normal(size=(3, 3, 8, 5)).astype("float32")
    mask = keras.ops.convert_to_numpy(m_by_n_mask(weights, (2, 4)))
    expected = np.ones_like(weights)
    for h in range(3):
        for w in range(3):
            for out in range(5):
                for start in (0, 4):
                    group = np.abs(weights[h, w, start:start + 4, out])
                    expected[h, w, start + np.argsort(group)[:2], out] = 0
    np.testing.assert_array_equal(mask, expected)


def test_prune_teacher_still_zeroes_the_rate_in_every_kernel():
    teacher = small_cnn(seed=4)
    pruned = prune_teacher(teacher, rate=0.1)
    for name in ("conv", "depthwise", "separable", "pointwise", "logits"):
        original = [w for w in teacher.get_layer(name).weights if "kernel" in w.name]
        for kernel, source in zip(
            [w for w in pruned.get_layer(name).weights if "kernel" in w.name], original
        ):
            value, source = kernel.numpy(), source.numpy()
            np.testing.assert_array_equal(value, source * _reference_mask(source, 0.1))
    # BatchNorm and biases untouched; the teacher itself unchanged.
    np.testing.assert_array_equal(
        pruned.get_layer("bn").get_weights()[0], teacher.get_layer("bn").get_weights()[0]
    )
    assert not np.any(teacher.get_layer("conv").kernel.numpy() == 0)

"""ChannelShuffle, ChannelSplit and ChannelAffine against numpy references."""

import keras
import numpy as np
import pytest

from r2kd_keras.models import ChannelAffine, ChannelShuffle, ChannelSplit


def _torch_style_shuffle(nhwc, groups):
    """The reference's NCHW reshape-permute-reshape, written in numpy."""
    nchw = nhwc.transpose(0, 3, 1, 2)
    n, c, h, w = nchw.shape
    shuffled = nchw.reshape(n, groups, c // groups, h, w).transpose(0, 2, 1, 3, 4)
    return shuffled.reshape(n, c, h, w).transpose(0, 2, 3, 1)


@pytest.mark.parametrize("groups,channels", [(2, 8), (3, 12), (3, 9), (1, 5)])
def test_channel_shuffle_matches_reference_permutation(groups, channels):
    x = np.random.default_rng(1).normal(size=(2, 3, 5, channels)).astype("float32")
    np.testing.assert_array_equal(
        np.asarray(ChannelShuffle(groups)(x)), _torch_style_shuffle(x, groups)
    )


def test_channel_shuffle_rejects_bad_groups():
    with pytest.raises(ValueError, match="groups=0"):
        ChannelShuffle(0)
    with pytest.raises(ValueError, match="divisible by 3"):
        ChannelShuffle(3)(np.zeros((1, 2, 2, 8), "float32"))


@pytest.mark.parametrize("channels,first", [(8, 4), (7, 3), (116, 58)])
def test_channel_split_takes_int_of_ratio_first(channels, first):
    x = np.arange(2 * 2 * 2 * channels, dtype="float32").reshape(2, 2, 2, channels)
    head, rest = ChannelSplit(0.5)(x)
    np.testing.assert_array_equal(np.asarray(head), x[..., :first])
    np.testing.assert_array_equal(np.asarray(rest), x[..., first:])


def test_channel_split_rejects_bad_ratio():
    with pytest.raises(ValueError, match="ratio=1.0"):
        ChannelSplit(1.0)


@pytest.mark.parametrize("sources", [None, [2, 1, 0], [0, 0, 1]])
def test_channel_affine_reads_each_source_channel(sources):
    x = np.random.default_rng(2).normal(size=(2, 3, 4, 3)).astype("float32")
    scale, offset = [0.5, -2.0, 3.0], [1.0, 0.0, -4.0]
    order = sources or [0, 1, 2]
    want = np.stack([x[..., c] * s + o for c, s, o in zip(order, scale, offset)], -1)
    got = ChannelAffine(scale, offset, source_channels=sources)(x)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


def test_channel_affine_names_what_does_not_fit():
    with pytest.raises(ValueError, match=r"received scale=\[1\.0\], offset=\[\]"):
        ChannelAffine([1.0], [])
    with pytest.raises(ValueError, match=r"source_channels=\[0\]"):
        ChannelAffine([1.0, 2.0], [0.0, 0.0], source_channels=[0])
    with pytest.raises(ValueError, match=r"cannot take input_shape=\(1, 2, 2, 1\)"):
        ChannelAffine([1.0, 1.0, 1.0], [0.0] * 3, source_channels=[2, 1, 0])(
            np.zeros((1, 2, 2, 1), "float32"))


@pytest.mark.parametrize("layer", [ChannelShuffle(3, name="s"), ChannelSplit(0.25, name="p"),
                                   ChannelAffine([2.0, 1.0], [0.5, 0.0], [1, 0], name="a")])
def test_layers_round_trip_through_config(layer):
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()

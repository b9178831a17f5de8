"""Small channel layers that ShuffleNet needs and core Keras lacks.

Both are plain `keras.layers.Layer`s with `get_config`, so models that use them
survive `keras.models.clone_model`, `.keras` saving and TFLite conversion.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="r2kd_keras")
class ChannelShuffle(keras.layers.Layer):
    """Interleaves the channels of `groups` groups (ShuffleNet's channel shuffle).

    Channel `i * (C // groups) + j` moves to position `j * groups + i`, the
    same permutation as the PyTorch reference's reshape-permute-reshape on NCHW.

    Args:
        groups: int >= 1, number of channel groups; must divide the channel count.
        **kwargs: standard `keras.layers.Layer` arguments (e.g. `name`).

    Example:
    >>> x = keras.ops.reshape(keras.ops.arange(6, dtype="float32"), (1, 1, 1, 6))
    >>> keras.ops.convert_to_numpy(ChannelShuffle(2)(x)).ravel().tolist()
    [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    """

    def __init__(self, groups, **kwargs):
        super().__init__(**kwargs)
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"`groups` must be an int >= 1; received groups={groups!r}.")
        self.groups = groups

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % self.groups:
            raise ValueError(
                f"ChannelShuffle(groups={self.groups}) needs a channel count divisible "
                f"by {self.groups}; received input_shape={tuple(input_shape)}."
            )

    def call(self, inputs):
        shape = ops.shape(inputs)
        channels = inputs.shape[-1]
        grouped = ops.reshape(
            inputs, (-1, shape[1], shape[2], self.groups, channels // self.groups)
        )
        shuffled = ops.transpose(grouped, (0, 1, 2, 4, 3))
        return ops.reshape(shuffled, (-1, shape[1], shape[2], channels))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"groups": self.groups})
        return config


@keras.saving.register_keras_serializable(package="r2kd_keras")
class ChannelSplit(keras.layers.Layer):
    """Splits the channels in two: the first `int(C * ratio)` and the rest.

    Args:
        ratio: float in (0, 1), the share of channels in the first output.
        **kwargs: standard `keras.layers.Layer` arguments (e.g. `name`).

    Returns:
        A list `[first, rest]` of two tensors.

    Example:
    >>> first, rest = ChannelSplit(0.5)(keras.ops.ones((2, 4, 4, 6)))
    >>> tuple(first.shape), tuple(rest.shape)
    ((2, 4, 4, 3), (2, 4, 4, 3))
    """

    def __init__(self, ratio=0.5, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < float(ratio) < 1.0:
            raise ValueError(f"`ratio` must lie in (0, 1); received ratio={ratio!r}.")
        self.ratio = float(ratio)

    def _split_index(self, channels):
        return int(channels * self.ratio)

    def call(self, inputs):
        index = self._split_index(inputs.shape[-1])
        return [inputs[..., :index], inputs[..., index:]]

    def compute_output_shape(self, input_shape):
        index = self._split_index(input_shape[-1])
        head = tuple(input_shape[:-1])
        return [head + (index,), head + (input_shape[-1] - index,)]

    def get_config(self):
        config = super().get_config()
        config.update({"ratio": self.ratio})
        return config

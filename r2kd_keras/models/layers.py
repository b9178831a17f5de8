"""Small channel layers that core Keras lacks: ShuffleNet's shuffle and split,
and the per-channel map that feeds a pretrained model the input it expects.

All are plain `keras.layers.Layer`s with `get_config`, so models that use them
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


@keras.saving.register_keras_serializable(package="r2kd_keras")
class ChannelAffine(keras.layers.Layer):
    """Output channel `j` is `inputs[..., source_channels[j]] * scale[j] + offset[j]`.

    A `keras.layers.Rescaling` that may also reorder channels: it turns the
    images a pipeline serves into those a pretrained model was trained on,
    e.g. normalised RGB into the BGR pixels minus the mean of ResNet50's
    `preprocess_input` (see `r2kd_keras.models.external`).

    Args:
        scale: sequence of floats, one per output channel.
        offset: sequence of floats, same length as `scale`.
        source_channels: sequence of input channel indices, same length as
            `scale`; None keeps the order (output `j` reads input `j`).
        **kwargs: standard `keras.layers.Layer` arguments (e.g. `name`).

    Example:
    >>> to_bgr = ChannelAffine([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], source_channels=[2, 1, 0])
    >>> keras.ops.convert_to_numpy(to_bgr(keras.ops.ones((1, 1, 1, 3)) * [1.0, 2.0, 3.0]))
    array([[[[3., 2., 1.]]]], dtype=float32)
    """

    def __init__(self, scale, offset, source_channels=None, **kwargs):
        super().__init__(**kwargs)
        self.scale = [float(v) for v in scale]
        self.offset = [float(v) for v in offset]
        if len(self.offset) != len(self.scale) or not self.scale:
            raise ValueError(
                "`scale` and `offset` must be non-empty and of one length; received "
                f"scale={scale!r}, offset={offset!r}.")
        self.source_channels = None
        if source_channels is not None:
            self.source_channels = [int(c) for c in source_channels]
            if len(self.source_channels) != len(self.scale) or min(self.source_channels) < 0:
                raise ValueError(
                    "`source_channels` must hold one channel index >= 0 per entry of "
                    f"`scale` ({len(self.scale)}); received "
                    f"source_channels={source_channels!r}.")

    def build(self, input_shape):
        channels = input_shape[-1]
        fits = (channels is not None and max(self.source_channels) < channels
                if self.source_channels else channels == len(self.scale))
        if not fits:
            raise ValueError(
                f"ChannelAffine(scale of {len(self.scale)} channels, "
                f"source_channels={self.source_channels}) cannot take "
                f"input_shape={tuple(input_shape)}.")

    def call(self, inputs):
        if self.source_channels is not None:
            inputs = ops.take(inputs, self.source_channels, axis=-1)
        scale = ops.convert_to_tensor(self.scale, dtype=inputs.dtype)
        offset = ops.convert_to_tensor(self.offset, dtype=inputs.dtype)
        return inputs * scale + offset

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (len(self.scale),)

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale, "offset": self.offset,
                       "source_channels": self.source_channels})
        return config

"""Mobile students for CIFAR (32x32) and TinyImageNet (64x64): MobileNetV2 (mdistiller's
`mobile_half`), ShuffleNetV1 and ShuffleNetV2, following mdistiller's `models/cifar/`
(mobilenetv2.py, ShuffleNetv1.py, ShuffleNetv2.py).

All three end in global average pooling: the reference's fixed windows cover the
whole last map at 32x32, and the R2KD repository's 64x64 variants pool the whole
map (MobileNetV2 through its input size, ShuffleNetV2 explicitly). The reference
ShuffleNetV1 keeps a 4x4 window and so cannot run at 64x64; here it pools globally.
"""

import keras
from keras import layers

from r2kd_keras.models._blocks import (
    conv_bn,
    dw_bn,
    logits_head,
    model_builder,
    model_input,
    relu,
)
from r2kd_keras.models.layers import ChannelShuffle, ChannelSplit

_CIFAR_SHAPE = (32, 32, 3)

__all__ = ["mobilenetv2", "shufflenetv1", "shufflenetv2"]

# (expansion or None for the model's expansion, channels, blocks, first stride)
_MOBILENETV2_STAGES = (
    (1, 16, 1, 1),
    (None, 24, 2, 1),
    (None, 32, 3, 2),
    (None, 64, 4, 2),
    (None, 96, 3, 1),
    (None, 160, 3, 2),
    (None, 320, 1, 1),
)


def _inverted_residual(x, filters, strides, expansion, *, name):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, linear 1x1; identity add when shapes agree."""
    in_channels = x.shape[-1]
    out = conv_bn(x, in_channels * expansion, 1, name=name, index=1)
    out = dw_bn(out, 3, strides, name=name, index=2)
    out = conv_bn(out, filters, 1, name=name, index=3, activate=False)
    if strides == 1 and in_channels == filters:
        out = layers.Add(name=f"{name}_add")([x, out])
    return out


def _mobilenetv2(name, num_classes, input_shape, expansion, width):
    """MobileNetV2 with a stride-2 stem and total stride 16, as in mdistiller's CIFAR model."""
    inputs = model_input(input_shape, num_classes, 16, name)
    x = conv_bn(inputs, int(32 * width), 3, 2, name="stem")
    for stage, (ratio, channels, blocks, stride) in enumerate(_MOBILENETV2_STAGES, start=1):
        for block in range(blocks):
            x = _inverted_residual(
                x,
                int(channels * width),
                stride if block == 0 else 1,
                ratio or expansion,
                name=f"stage{stage}_block{block + 1}",
            )
    x = conv_bn(x, int(1280 * width) if width > 1.0 else 1280, 1, name="head")
    return keras.Model(inputs, logits_head(x, num_classes, "normal"), name=name)


def _shufflenetv1_block(x, out_channels, strides, groups, *, name):
    """ShuffleNetV1 unit; a stride-2 unit concatenates a 3x3 average-pooled shortcut."""
    # The reference keeps the first 1x1 conv dense when it reads the 24-channel stem.
    first_groups = 1 if x.shape[-1] == 24 else groups
    out = conv_bn(x, out_channels // 4, 1, name=name, index=1, groups=first_groups)
    if first_groups > 1:
        out = ChannelShuffle(first_groups, name=f"{name}_shuffle")(out)
    out = dw_bn(out, 3, strides, name=name, index=2)
    out = conv_bn(out, out_channels, 1, name=name, index=3, activate=False, groups=groups)
    if strides == 1:
        out = layers.Add(name=f"{name}_add")([out, x])
    else:
        # PyTorch's AvgPool2d(3, 2, padding=1) counts the zero padding in the mean.
        shortcut = layers.ZeroPadding2D(1, name=f"{name}_shortcut_pad")(x)
        shortcut = layers.AveragePooling2D(3, 2, name=f"{name}_shortcut_pool")(shortcut)
        out = layers.Concatenate(name=f"{name}_concat")([out, shortcut])
    return relu(out, name=f"{name}_out")


def _shufflenetv1(name, num_classes, input_shape, stage_channels, stage_blocks, groups):
    """ShuffleNetV1 with a 1x1 stem and no stem pooling (total stride 8)."""
    inputs = model_input(input_shape, num_classes, 8, name)
    x = conv_bn(inputs, 24, 1, name="stem")
    for stage, (channels, blocks) in enumerate(zip(stage_channels, stage_blocks), start=1):
        for block in range(blocks):
            # The first unit's output is concatenated with its input: it adds the rest.
            added = channels - x.shape[-1] if block == 0 else channels
            x = _shufflenetv1_block(
                x, added, 2 if block == 0 else 1, groups, name=f"stage{stage}_block{block + 1}"
            )
    return keras.Model(inputs, logits_head(x, num_classes, "torch"), name=name)


def _shufflenetv2_down(x, out_channels, *, name):
    """Stride-2 unit: both branches see the whole input, each yields half the output."""
    half = out_channels // 2
    left = dw_bn(x, 3, 2, name=name, index=1, activate=False)
    left = conv_bn(left, half, 1, name=name, index=2)
    right = conv_bn(x, half, 1, name=name, index=3)
    right = dw_bn(right, 3, 2, name=name, index=4, activate=False)
    right = conv_bn(right, half, 1, name=name, index=5)
    out = layers.Concatenate(name=f"{name}_concat")([left, right])
    return ChannelShuffle(2, name=f"{name}_shuffle")(out)


def _shufflenetv2_basic(x, *, name):
    """Stride-1 unit: half the channels pass through, the other half is transformed."""
    kept, transformed = ChannelSplit(0.5, name=f"{name}_split")(x)
    channels = transformed.shape[-1]
    out = conv_bn(transformed, channels, 1, name=name, index=1)
    out = dw_bn(out, 3, name=name, index=2, activate=False)
    out = conv_bn(out, channels, 1, name=name, index=3)
    out = layers.Concatenate(name=f"{name}_concat")([kept, out])
    return ChannelShuffle(2, name=f"{name}_shuffle")(out)


def _shufflenetv2(name, num_classes, input_shape, stage_channels, stage_blocks, head_channels):
    """ShuffleNetV2 with a 1x1 stem and no stem pooling (total stride 8)."""
    inputs = model_input(input_shape, num_classes, 8, name)
    x = conv_bn(inputs, 24, 1, name="stem")
    for stage, (channels, blocks) in enumerate(zip(stage_channels, stage_blocks), start=1):
        x = _shufflenetv2_down(x, channels, name=f"stage{stage}_down")
        for block in range(blocks):
            x = _shufflenetv2_basic(x, name=f"stage{stage}_block{block + 1}")
    x = conv_bn(x, head_channels, 1, name="head")
    return keras.Model(inputs, logits_head(x, num_classes, "torch"), name=name)


mobilenetv2 = model_builder(
    "mobilenetv2",
    _mobilenetv2,
    default_input_shape=_CIFAR_SHAPE,
    description=(
        "MobileNetV2 at width 0.5, expansion 6: mdistiller's `mobile_half` "
        "(registered there as \"MobileNetV2\")."
    ),
    expansion=6,
    width=0.5,
)
shufflenetv1 = model_builder(
    "shufflenetv1",
    _shufflenetv1,
    default_input_shape=_CIFAR_SHAPE,
    description="ShuffleNetV1, 3 groups, stages 240-480-960 (mdistiller `ShuffleV1`).",
    stage_channels=(240, 480, 960),
    stage_blocks=(4, 8, 4),
    groups=3,
)
shufflenetv2 = model_builder(
    "shufflenetv2",
    _shufflenetv2,
    default_input_shape=_CIFAR_SHAPE,
    description="ShuffleNetV2 1x, stages 116-232-464, head 1024 (mdistiller `ShuffleV2`).",
    stage_channels=(116, 232, 464),
    stage_blocks=(3, 7, 3),
    head_channels=1024,
)

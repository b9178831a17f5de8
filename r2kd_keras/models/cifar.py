"""CIFAR-style ResNet, Wide ResNet and VGG (32x32 input; 64x64 gives the TinyImageNet
variant).

Architectures follow mdistiller's `models/cifar/` (resnet.py, wrn.py, vgg.py) layer
for layer, with the R2KD repository's `models/tiny/` changes for 64x64 input:
ResNet and WRN pool the whole last feature map instead of a fixed 8x8 window
(global average pooling, identical at 32x32), and VGG adds a 2x2 max-pool before
its last block when the input height is 64.
"""

import keras
from keras import layers

from r2kd_keras.models._blocks import (
    basic_block,
    batch_norm,
    conv,
    conv_bn,
    logits_head,
    model_builder,
    model_input,
    relu,
)

_CIFAR_SHAPE = (32, 32, 3)

__all__ = [
    "resnet8",
    "resnet14",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "resnet8x4",
    "resnet32x4",
    "wrn_16_1",
    "wrn_16_2",
    "wrn_40_1",
    "wrn_40_2",
    "vgg8",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
]


def _resnet(name, num_classes, input_shape, depth, widths):
    """CIFAR ResNet of depth 6n+2: a 3x3 stem, three stages of n basic blocks."""
    inputs = model_input(input_shape, num_classes, 4, name)
    x = conv_bn(inputs, widths[0], 3, name="stem")
    blocks = (depth - 2) // 6
    for stage, (width, stride) in enumerate(zip(widths[1:], (1, 2, 2)), start=1):
        for block in range(blocks):
            x = basic_block(
                x, width, stride if block == 0 else 1, name=f"stage{stage}_block{block + 1}"
            )
    return keras.Model(inputs, logits_head(x, num_classes, "torch"), name=name)


def _wide_block(x, filters, strides, *, name):
    """Pre-activation block; a width change projects the activated input."""
    pre = relu(batch_norm(x, name=f"{name}_bn1"), name=f"{name}_relu1")
    if x.shape[-1] == filters:
        shortcut = x
    else:
        shortcut = conv(pre, filters, 1, strides, name=f"{name}_shortcut_conv")
    out = conv(pre, filters, 3, strides, name=f"{name}_conv1")
    out = relu(batch_norm(out, name=f"{name}_bn2"), name=f"{name}_relu2")
    out = conv(out, filters, 3, name=f"{name}_conv2")
    return layers.Add(name=f"{name}_add")([shortcut, out])


def _wide_resnet(name, num_classes, input_shape, depth, widen):
    """WRN-depth-widen (depth 6n+4), dropout 0 as in the reference."""
    inputs = model_input(input_shape, num_classes, 4, name)
    x = conv(inputs, 16, 3, name="stem_conv")
    blocks = (depth - 4) // 6
    for stage, (width, stride) in enumerate(zip((16, 32, 64), (1, 2, 2)), start=1):
        for block in range(blocks):
            x = _wide_block(
                x, width * widen, stride if block == 0 else 1, name=f"stage{stage}_block{block + 1}"
            )
    x = relu(batch_norm(x, name="final_bn"), name="final_relu")
    return keras.Model(inputs, logits_head(x, num_classes, "torch_zero_bias"), name=name)


_VGG_STAGES = {
    "vgg8": ((64,), (128,), (256,), (512,), (512,)),
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19": (
        (64, 64),
        (128, 128),
        (256, 256, 256, 256),
        (512, 512, 512, 512),
        (512, 512, 512, 512),
    ),
}


def _vgg(name, num_classes, input_shape, stages):
    """VGG with BatchNorm (mdistiller's `vgg*_bn`): biased 3x3 convs, BN, ReLU."""
    inputs = model_input(input_shape, num_classes, 8, name)
    # The reference pools before the last block only when the input height is 64.
    pooled_stages = 4 if inputs.shape[1] == 64 else 3
    x = inputs
    for stage, widths in enumerate(stages):
        for index, width in enumerate(widths, start=1):
            x = conv_bn(x, width, 3, name=f"block{stage}", index=index, use_bias=True)
        if stage < pooled_stages:
            x = layers.MaxPooling2D(2, name=f"pool{stage}")(x)
    return keras.Model(inputs, logits_head(x, num_classes, "normal"), name=name)


def _resnet_builder(name, depth, widths):
    return model_builder(
        name,
        _resnet,
        default_input_shape=_CIFAR_SHAPE,
        description=f"CIFAR ResNet-{depth}, stem and stage widths {widths} (mdistiller `{name}`).",
        depth=depth,
        widths=widths,
    )


def _wrn_builder(depth, widen):
    name = f"wrn_{depth}_{widen}"
    return model_builder(
        name,
        _wide_resnet,
        default_input_shape=_CIFAR_SHAPE,
        description=f"Wide ResNet {depth}-{widen} for CIFAR (mdistiller `{name}`).",
        depth=depth,
        widen=widen,
    )


def _vgg_builder(name):
    return model_builder(
        name,
        _vgg,
        default_input_shape=_CIFAR_SHAPE,
        description=(
            f"{name.upper()} with BatchNorm for CIFAR (mdistiller `{name}_bn`); at 64x64 "
            "input a fourth max-pool precedes the last block, as in the R2KD repository."
        ),
        stages=_VGG_STAGES[name],
    )


_NARROW = (16, 16, 32, 64)
_WIDE = (32, 64, 128, 256)

resnet8 = _resnet_builder("resnet8", 8, _NARROW)
resnet14 = _resnet_builder("resnet14", 14, _NARROW)
resnet20 = _resnet_builder("resnet20", 20, _NARROW)
resnet32 = _resnet_builder("resnet32", 32, _NARROW)
resnet44 = _resnet_builder("resnet44", 44, _NARROW)
resnet56 = _resnet_builder("resnet56", 56, _NARROW)
resnet110 = _resnet_builder("resnet110", 110, _NARROW)
resnet8x4 = _resnet_builder("resnet8x4", 8, _WIDE)
resnet32x4 = _resnet_builder("resnet32x4", 32, _WIDE)
wrn_16_1 = _wrn_builder(16, 1)
wrn_16_2 = _wrn_builder(16, 2)
wrn_40_1 = _wrn_builder(40, 1)
wrn_40_2 = _wrn_builder(40, 2)
vgg8 = _vgg_builder("vgg8")
vgg11 = _vgg_builder("vgg11")
vgg13 = _vgg_builder("vgg13")
vgg16 = _vgg_builder("vgg16")
vgg19 = _vgg_builder("vgg19")

"""ImageNet ResNet-18/34/50 and MobileNetV1 (224x224 input), following mdistiller's
`models/imagenet/` (torchvision's ResNet, with the stride in the bottleneck's 3x3 conv).

`keras.applications` is not used because none of its models fits exactly: its
ResNet50 is the original v1 (stride in the first 1x1 conv, biased convs: 25,583,592
trainable parameters at 1000 classes against 25,557,032 here and in the reference),
there is no ResNet-18/34, its MobileNet (v1) has the reference's parameter count but
uses ReLU6, dropout and a conv classifier; all use BatchNorm epsilon 1e-3 and
momentum 0.99 instead of PyTorch's 1e-5 and 0.9, and Keras's asymmetric "same"
padding at stride 2 (see `_blocks.conv`).
"""

import keras
from keras import layers

from r2kd_keras.models._blocks import (
    basic_block,
    bottleneck_block,
    conv_bn,
    dw_bn,
    logits_head,
    model_builder,
    model_input,
)

_IMAGENET_SHAPE = (224, 224, 3)

__all__ = ["resnet18", "resnet34", "resnet50", "mobilenetv1"]

# (output channels, stride) of MobileNetV1's 13 depthwise-separable blocks.
_MOBILENETV1_BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)


def _resnet(name, num_classes, input_shape, block, stage_blocks):
    """ResNet with the 7x7 stride-2 stem and 3x3 max-pool (total stride 32)."""
    inputs = model_input(input_shape, num_classes, 32, name)
    x = conv_bn(inputs, 64, 7, 2, name="stem")
    # After the ReLU zero padding equals PyTorch's -inf padding of the max-pool.
    x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = layers.MaxPooling2D(3, 2, name="stem_pool")(x)
    for stage, (width, blocks) in enumerate(zip((64, 128, 256, 512), stage_blocks), start=1):
        for index in range(blocks):
            strides = 2 if index == 0 and stage > 1 else 1
            x = block(x, width, strides, name=f"stage{stage}_block{index + 1}")
    return keras.Model(inputs, logits_head(x, num_classes, "torch"), name=name)


def _mobilenetv1(name, num_classes, input_shape):
    """MobileNetV1 (width 1.0, ReLU, total stride 32)."""
    inputs = model_input(input_shape, num_classes, 32, name)
    x = conv_bn(inputs, 32, 3, 2, name="stem")
    for index, (filters, strides) in enumerate(_MOBILENETV1_BLOCKS, start=1):
        x = dw_bn(x, 3, strides, name=f"block{index}", index=1)
        x = conv_bn(x, filters, 1, name=f"block{index}", index=2)
    return keras.Model(inputs, logits_head(x, num_classes, "torch"), name=name)


def _resnet_builder(name, block, stage_blocks):
    return model_builder(
        name,
        _resnet,
        default_input_shape=_IMAGENET_SHAPE,
        description=(
            f"ImageNet ResNet, {block.__name__.split('_')[0]} blocks {stage_blocks} "
            f"(mdistiller / torchvision `{name}`)."
        ),
        block=block,
        stage_blocks=stage_blocks,
    )


resnet18 = _resnet_builder("resnet18", basic_block, (2, 2, 2, 2))
resnet34 = _resnet_builder("resnet34", basic_block, (3, 4, 6, 3))
resnet50 = _resnet_builder("resnet50", bottleneck_block, (3, 4, 6, 3))
mobilenetv1 = model_builder(
    "mobilenetv1",
    _mobilenetv1,
    default_input_shape=_IMAGENET_SHAPE,
    description="MobileNetV1 for ImageNet, width 1.0 (mdistiller `MobileNetV1`).",
)

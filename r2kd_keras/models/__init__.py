"""The paper's architectures as functional Keras 3 models (logits out, no softmax).

`get_model(name, num_classes, input_shape)` builds any of `list_models()`; the
builders are also importable directly, e.g. `resnet8x4(num_classes=100)`.
`load_torch_checkpoint(model, path)` fills one from a PyTorch checkpoint of the
reference architecture (the published mdistiller / RepDistiller teachers).
"""

from r2kd_keras.models.cifar import (
    resnet8,
    resnet8x4,
    resnet14,
    resnet20,
    resnet32,
    resnet32x4,
    resnet44,
    resnet56,
    resnet110,
    vgg8,
    vgg11,
    vgg13,
    vgg16,
    vgg19,
    wrn_16_1,
    wrn_16_2,
    wrn_40_1,
    wrn_40_2,
)
from r2kd_keras.models.imagenet import mobilenetv1, resnet18, resnet34, resnet50
from r2kd_keras.models.layers import ChannelAffine, ChannelShuffle, ChannelSplit
from r2kd_keras.models.mobile import mobilenetv2, shufflenetv1, shufflenetv2
from r2kd_keras.models.registry import get_model, list_models
from r2kd_keras.models.torch_checkpoint import load_torch_checkpoint

from r2kd_keras.models import cifar, imagenet, mobile

__all__ = [
    "get_model",
    "list_models",
    "load_torch_checkpoint",
    "ChannelAffine",
    "ChannelShuffle",
    "ChannelSplit",
    *cifar.__all__,
    *mobile.__all__,
    *imagenet.__all__,
]

"""Keras layer names of the zoo -> module paths of the reference PyTorch models.

Each weighted Keras layer of a zoo model has a name (`stage2_block1_conv1`) that a
per-architecture rule turns into the PyTorch module path of the reference
(`layer2.0.conv1`), and each Keras variable into one tensor of that module
(`kernel` -> `weight`, `moving_variance` -> `running_var`, ...), with the layout
changed (conv `(O, I, kh, kw)` -> `(kh, kw, I, O)`, depthwise `(C, 1, kh, kw)` ->
`(kh, kw, C, 1)`, Linear transposed).
"""

import dataclasses
import re

import keras

from r2kd_keras.models import cifar
from r2kd_keras.models.torch_checkpoint.errors import TorchCheckpointError


def _rule(pattern, template):
    """A mapping rule: Keras layer names matching `pattern` (whole name) give the
    PyTorch module path `template`, a str, or a function of the match's groups
    (digit groups as ints)."""
    regex = re.compile(pattern)

    def apply(name):
        match = regex.fullmatch(name)
        if match is None:
            return None
        if isinstance(template, str):
            return template
        groups = (int(g) if g.isdigit() else g for g in match.groups())
        return template(*groups)

    return apply


def _sequential_index(kind, index):
    """Position of conv/bn number `index` in `nn.Sequential(conv, bn, relu, conv, bn, ...)`."""
    return 3 * (index - 1) + (kind == "bn")


# Rules several architectures share.
_STEM = (_rule(r"stem_conv", "conv1"), _rule(r"stem_bn", "bn1"))
# `layer{s}` nn.Sequentials of blocks with attributes conv1, bn1, conv2, ...
_LAYER_BLOCKS = _rule(
    r"stage(\d+)_block(\d+)_(?:dw)?(conv|bn)(\d)",
    lambda s, b, kind, i: f"layer{s}.{b - 1}.{kind}{i}",
)

# mdistiller models/cifar/resnet.py and models/imagenet/resnet.py (torchvision's).
_RESNET = (
    *_STEM,
    _LAYER_BLOCKS,
    _rule(
        r"stage(\d+)_block(\d+)_shortcut_(conv|bn)",
        lambda s, b, kind: f"layer{s}.{b - 1}.downsample.{int(kind == 'bn')}",
    ),
    _rule(r"logits", "fc"),
)
# models/cifar/wrn.py
_WRN_PARTS = {"shortcut_conv": "convShortcut"}
_WRN = (
    _rule(r"stem_conv", "conv1"),
    _rule(
        r"stage(\d+)_block(\d+)_((?:conv|bn)\d|shortcut_conv)",
        lambda s, b, part: f"block{s}.layer.{b - 1}.{_WRN_PARTS.get(part, part)}",
    ),
    _rule(r"final_bn", "bn1"),
    _rule(r"logits", "fc"),
)
# models/cifar/vgg.py: each block an nn.Sequential of (conv, bn, relu) triples.
_VGG = (
    _rule(r"block(\d)_(conv|bn)(\d)", lambda s, kind, i: f"block{s}.{_sequential_index(kind, i)}"),
    _rule(r"logits", "classifier"),
)
# models/cifar/mobilenetv2.py
_MOBILENETV2 = (
    _rule(r"stem_(conv|bn)", lambda kind: f"conv1.{_sequential_index(kind, 1)}"),
    _rule(
        r"stage(\d+)_block(\d+)_(?:dw)?(conv|bn)(\d)",
        lambda s, b, kind, i: f"blocks.{s - 1}.{b - 1}.conv.{_sequential_index(kind, i)}",
    ),
    _rule(r"head_(conv|bn)", lambda kind: f"conv2.{_sequential_index(kind, 1)}"),
    _rule(r"logits", "classifier.0"),
)
# models/cifar/ShuffleNetv1.py
_SHUFFLENETV1 = (*_STEM, _LAYER_BLOCKS, _rule(r"logits", "linear"))
# models/cifar/ShuffleNetv2.py: each stage's DownBlock is layer{s}.0, its BasicBlocks follow.
_SHUFFLENETV2 = (
    *_STEM,
    _rule(r"stage(\d+)_down_(?:dw)?(conv|bn)(\d)", lambda s, kind, i: f"layer{s}.0.{kind}{i}"),
    _rule(
        r"stage(\d+)_block(\d+)_(?:dw)?(conv|bn)(\d)",
        lambda s, b, kind, i: f"layer{s}.{b}.{kind}{i}",
    ),
    _rule(r"head_conv", "conv2"),
    _rule(r"head_bn", "bn2"),
    _rule(r"logits", "linear"),
)
# models/imagenet/mobilenetv1.py: one nn.Sequential `model` of 14 Sequentials.
_MOBILENETV1 = (
    _rule(r"stem_(conv|bn)", lambda kind: f"model.0.{_sequential_index(kind, 1)}"),
    _rule(
        r"block(\d+)_(?:dw)?(conv|bn)(\d)",
        lambda k, kind, i: f"model.{k}.{_sequential_index(kind, i)}",
    ),
    _rule(r"logits", "fc"),
)

_ARCHITECTURES = {
    **{name: _RESNET for name in cifar.__all__ if name.startswith("resnet")},
    **{name: _WRN for name in cifar.__all__ if name.startswith("wrn_")},
    **{name: _VGG for name in cifar.__all__ if name.startswith("vgg")},
    "resnet18": _RESNET,
    "resnet34": _RESNET,
    "resnet50": _RESNET,
    "mobilenetv1": _MOBILENETV1,
    "mobilenetv2": _MOBILENETV2,
    "shufflenetv1": _SHUFFLENETV1,
    "shufflenetv2": _SHUFFLENETV2,
}

_TORCH_PARAMETERS = {
    "kernel": "weight",
    "bias": "bias",
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}
# Buffers a PyTorch layer has and a Keras one does not: read, reported, not used.
IGNORED_SUFFIXES = (".num_batches_tracked",)


def _conv_to_keras(tensor, keras_shape):
    # (O, I / groups, kh, kw) -> (kh, kw, I / groups, O)
    return tensor.transpose(2, 3, 1, 0)


def _depthwise_to_keras(tensor, keras_shape):
    # (C * multiplier, 1, kh, kw) -> (kh, kw, 1, C * multiplier) -> (kh, kw, C, multiplier):
    # PyTorch's output channel c * multiplier + m is Keras's [c, m].
    return tensor.transpose(2, 3, 1, 0).reshape(keras_shape)


def _dense_to_keras(tensor, keras_shape):
    return tensor.T


def _same(tensor, keras_shape):
    return tensor


def _torch_shape(layer, variable_name, keras_shape):
    """The PyTorch shape of a Keras variable and the function converting it to Keras."""
    if variable_name != "kernel":
        return keras_shape, _same
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw, channels, multiplier = keras_shape
        return (channels * multiplier, 1, kh, kw), _depthwise_to_keras
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw, inputs, outputs = keras_shape
        return (outputs, inputs, kh, kw), _conv_to_keras
    if isinstance(layer, keras.layers.Dense):
        return keras_shape[::-1], _dense_to_keras
    raise TorchCheckpointError(f"No PyTorch layout for the kernel of {type(layer).__name__}.")


@dataclasses.dataclass(frozen=True)
class _Target:
    key: str
    layer: keras.layers.Layer
    variable: keras.Variable
    torch_shape: tuple
    to_keras: object


def targets(model):
    """One `_Target` per Keras variable of a zoo model: its PyTorch state-dict key."""
    rules = _ARCHITECTURES.get(model.name)
    if rules is None:
        raise ValueError(
            f"`model` must be a zoo model built with `get_model(name, ...)`, named after "
            f"its architecture; received a model named {model.name!r}. Architectures with "
            f"a PyTorch mapping: {', '.join(_ARCHITECTURES)}."
        )
    found = []
    for layer in model.layers:
        if not layer.weights:
            continue
        module = next((path for path in (r(layer.name) for r in rules) if path), None)
        if module is None:
            raise ValueError(
                f"Layer {layer.name!r} of {model.name!r} has weights but no counterpart in "
                "the reference architecture: load checkpoints into the unmodified zoo "
                "model, then change it."
            )
        for variable in layer.weights:
            keras_shape = tuple(variable.shape)
            torch_shape, to_keras = _torch_shape(layer, variable.name, keras_shape)
            key = f"{module}.{_TORCH_PARAMETERS[variable.name]}"
            found.append(_Target(key, layer, variable, torch_shape, to_keras))
    return found


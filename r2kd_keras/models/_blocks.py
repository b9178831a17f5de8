"""Building blocks shared by every architecture: PyTorch-faithful conv, BatchNorm,
initialisers, the logits head, argument checks and the builder factory."""

import math
import numbers

import keras
from keras import layers

from r2kd_keras.validation import check_choice

# PyTorch's BatchNorm2d defaults (momentum 0.1 on the new batch, eps 1e-5) in Keras terms.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5

_HEAD_INITS = ("torch", "torch_zero_bias", "normal")


def conv_initializer():
    """He normal on fan-out, untruncated: the reference's
    `kaiming_normal_(mode="fan_out")` and `normal_(0, sqrt(2 / (k * k * out)))`."""
    return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def depthwise_initializer():
    """The same rule for depthwise kernels. Keras stores them as (k, k, C, 1), so its
    "fan_in" (k * k * C) is the reference's fan-out (k * k * out_channels)."""
    return keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal")


def _torch_padded(layer_class, x, kernel_size, strides, name, **options):
    """`layer_class(kernel_size, strides=strides, name=name, **options)` on `x`
    with PyTorch's symmetric `padding=k // 2`.

    Keras "same" pads only bottom/right when a stride-2 window meets an even
    input, which shifts every sampled window by one pixel against the reference;
    explicit zero padding keeps the two frameworks' outputs identical.
    """
    pad = kernel_size // 2
    padding = "same"
    if strides > 1 and pad:
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        padding = "valid"
    return layer_class(kernel_size=kernel_size, strides=strides, padding=padding,
                       name=name, **options)(x)


def conv(x, filters, kernel_size, strides=1, *, name, groups=1, use_bias=False):
    """Conv2D with PyTorch padding semantics and the reference initialiser."""
    return _torch_padded(layers.Conv2D, x, kernel_size, strides, name, filters=filters,
                         groups=groups, use_bias=use_bias,
                         kernel_initializer=conv_initializer())


def depthwise_conv(x, kernel_size, strides=1, *, name):
    """DepthwiseConv2D (PyTorch `groups=in_channels`), no bias."""
    return _torch_padded(layers.DepthwiseConv2D, x, kernel_size, strides, name,
                         use_bias=False, depthwise_initializer=depthwise_initializer())


def batch_norm(x, *, name):
    """BatchNormalization with PyTorch's momentum and epsilon."""
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)(x)


def relu(x, *, name):
    """A named ReLU layer."""
    return layers.ReLU(name=name)(x)


def conv_bn(x, filters, kernel_size, strides=1, *, name, index="", activate=True, **conv_kwargs):
    """conv -> BN (-> ReLU), named `{name}_conv{index}`, `{name}_bn{index}`, `{name}_relu{index}`."""
    x = conv(x, filters, kernel_size, strides, name=f"{name}_conv{index}", **conv_kwargs)
    x = batch_norm(x, name=f"{name}_bn{index}")
    return relu(x, name=f"{name}_relu{index}") if activate else x


def dw_bn(x, kernel_size, strides=1, *, name, index="", activate=True):
    """depthwise conv -> BN (-> ReLU), named like `conv_bn`."""
    x = depthwise_conv(x, kernel_size, strides, name=f"{name}_dwconv{index}")
    x = batch_norm(x, name=f"{name}_bn{index}")
    return relu(x, name=f"{name}_relu{index}") if activate else x


def logits_head(x, num_classes, init="torch"):
    """Global average pooling and the linear classifier (logits, no softmax).

    Every reference pools the whole last feature map at its native input size
    (fixed `AvgPool2d(8)`/`(4)`/`(7)` there); the R2KD TinyImageNet variants pool
    the whole map explicitly. Global pooling is both, and any larger input works.

    Args:
        x: the last feature map.
        num_classes: width of the logits.
        init: "torch" (PyTorch's `nn.Linear` default: kernel and bias uniform in
            +-1/sqrt(fan_in)), "torch_zero_bias" (the same kernel, zero bias: WRN)
            or "normal" (N(0, 0.01) kernel, zero bias: VGG, MobileNetV2).
    """
    check_choice("init", init, _HEAD_INITS)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    bound = 1.0 / math.sqrt(x.shape[-1])
    if init == "normal":
        kernel_init = keras.initializers.RandomNormal(stddev=0.01)
    else:
        kernel_init = keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")
    bias_init = (
        keras.initializers.RandomUniform(-bound, bound) if init == "torch" else "zeros"
    )
    return layers.Dense(
        int(num_classes), kernel_initializer=kernel_init, bias_initializer=bias_init, name="logits"
    )(x)


def _is_int(value):
    # numbers.Integral admits numpy ints (e.g. from `array.shape`); bool is not a size.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_num_classes(num_classes):
    """Raises a clear error unless `num_classes` is an int >= 2."""
    if not _is_int(num_classes):
        raise TypeError(
            f"`num_classes` must be an int; received num_classes={num_classes!r} "
            f"of type {type(num_classes).__name__}."
        )
    if num_classes < 2:
        raise ValueError(
            f"`num_classes` must be >= 2 (a classifier needs two classes); "
            f"received num_classes={num_classes}."
        )


def check_input_shape(input_shape, min_size, model_name):
    """Validates a channels-last `(height, width, channels)` shape; returns it as a tuple.

    Args:
        input_shape: the shape to check.
        min_size: the smallest height/width the architecture accepts (its total
            downsampling factor: below it a stage would see an empty map).
        model_name: used in the message.
    """
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if shape is None or len(shape) != 3 or not all(_is_int(d) and d > 0 for d in shape):
        raise ValueError(
            f"`input_shape` must be (height, width, channels) with three positive ints "
            f"(channels last, no batch axis), e.g. (32, 32, 3); received "
            f"input_shape={input_shape!r}."
        )
    if min(shape[:2]) < min_size:
        raise ValueError(
            f"{model_name} downsamples by {min_size}: `input_shape` needs height and width "
            f">= {min_size}; received input_shape={shape}. Resize or pad the images."
        )
    return tuple(int(d) for d in shape)


def model_input(input_shape, num_classes, min_size, model_name):
    """Checks the build arguments and returns the `keras.Input` of a model."""
    check_num_classes(num_classes)
    shape = check_input_shape(input_shape, min_size, model_name)
    return keras.Input(shape=shape, name="image")


def model_builder(name, family, *, default_input_shape, description, **arch):
    """Makes the public builder `name(num_classes, input_shape)` of one architecture.

    Args:
        name: the registry name, also the model's name.
        family: `family(name, num_classes, input_shape, **arch)` building the model.
        default_input_shape: the builder's default `input_shape`.
        description: one line, e.g. "ResNet-8 (CIFAR, basic blocks, widths 16-64)."
        **arch: architecture arguments passed to `family`.

    Returns:
        The builder function, with a docstring.
    """

    def build(num_classes, input_shape=default_input_shape):
        return family(name=name, num_classes=num_classes, input_shape=input_shape, **arch)

    build.__name__ = build.__qualname__ = name
    build.__module__ = family.__module__
    build.__doc__ = f"""{description}

    Args:
        num_classes: int >= 2, width of the logits (no softmax).
        input_shape: (height, width, channels), default {default_input_shape}.

    Returns:
        A functional `keras.Model` named "{name}" mapping images to logits.

    Example:
    >>> model = {name}(num_classes=100, input_shape={default_input_shape})
    >>> model.output_shape
    (None, 100)
    """
    return build


def residual_output(x, shortcut, *, name):
    """`relu(x + shortcut)`, the end of every post-activation residual block."""
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return relu(x, name=f"{name}_out")


def projection(x, filters, strides, *, name):
    """The 1x1 conv + BN shortcut of a ResNet block, or `x` itself when the shapes agree."""
    if strides == 1 and x.shape[-1] == filters:
        return x
    return conv_bn(x, filters, 1, strides, name=f"{name}_shortcut", activate=False)


def basic_block(x, filters, strides, *, name):
    """ResNet basic block (two 3x3 convs), as in mdistiller's CIFAR and ImageNet ResNets."""
    shortcut = projection(x, filters, strides, name=name)
    x = conv_bn(x, filters, 3, strides, name=name, index=1)
    x = conv_bn(x, filters, 3, name=name, index=2, activate=False)
    return residual_output(x, shortcut, name=name)


def bottleneck_block(x, filters, strides, *, name):
    """ResNet bottleneck (1x1, 3x3 carrying the stride, 1x1 to 4x `filters`): torchvision's v1.5."""
    shortcut = projection(x, 4 * filters, strides, name=name)
    x = conv_bn(x, filters, 1, name=name, index=1)
    x = conv_bn(x, filters, 3, strides, name=name, index=2)
    x = conv_bn(x, 4 * filters, 1, name=name, index=3, activate=False)
    return residual_output(x, shortcut, name=name)

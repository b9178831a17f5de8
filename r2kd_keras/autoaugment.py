"""AutoAugment (Cubuk et al., 2019) as the reference applies it: learned
policies of 25 two-op sub-policies, one sub-policy drawn per call.

Keras 3 has RandAugment but no AutoAugment, and the reference's `autoaug`
view is torchvision's `AutoAugment` (CIFAR10 policy on CIFAR-100, IMAGENET
policy on TinyImageNet) run on the whole batch tensor: one sub-policy, one
probability draw and one sign per op for the batch. The ops follow
torchvision's uint8 semantics (magnitude bins, nearest-neighbour geometry
with black fill, blends that truncate to integers, per-channel equalisation)
so that the same policy gives the same images.
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

_PACKAGE = "r2kd_keras"

# The order is the branch index of `tf.switch_case`; "Identity" is taken
# when an op's probability draw fails.
OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
       "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast",
       "Equalize", "Invert", "Identity")
_SIGNED = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
           "Color", "Contrast", "Sharpness"}
_BINS = 10
# torchvision's linspace(start, end, 10) magnitudes.
_LINSPACE_RANGES = {"ShearX": (0.0, 0.3), "ShearY": (0.0, 0.3), "Rotate": (0.0, 30.0),
                    "Brightness": (0.0, 0.9), "Color": (0.0, 0.9), "Contrast": (0.0, 0.9),
                    "Sharpness": (0.0, 0.9), "Solarize": (255.0, 0.0)}

# (op, probability, magnitude bin) pairs, as published with the paper.
POLICIES = {
    "imagenet": (
        (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
        (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
        (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
        (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
        (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
        (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
        (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
        (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
        (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
        (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
        (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
        (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
        (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
        (("Color", 0.4, 0), ("Equalize", 0.6, None)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    ),
    "cifar10": (
        (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
        (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
        (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
        (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
        (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
        (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
        (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
        (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
        (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
        (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
        (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
        (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
        (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
        (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
        (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
        (("Color", 0.9, 9), ("Equalize", 0.6, None)),
        (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
        (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
        (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
        (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
        (("Equalize", 0.8, None), ("Invert", 0.1, None)),
        (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
    ),
    "svhn": (
        (("ShearX", 0.9, 4), ("Invert", 0.2, None)),
        (("ShearY", 0.9, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.6, None), ("Solarize", 0.6, 6)),
        (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("AutoContrast", 0.8, None)),
        (("ShearY", 0.9, 8), ("Invert", 0.4, None)),
        (("ShearY", 0.9, 5), ("Solarize", 0.2, 6)),
        (("Invert", 0.9, None), ("AutoContrast", 0.8, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("Solarize", 0.3, 3)),
        (("ShearY", 0.8, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.9, None), ("TranslateY", 0.6, 6)),
        (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Contrast", 0.3, 3), ("Rotate", 0.8, 4)),
        (("Invert", 0.8, None), ("TranslateY", 0.0, 2)),
        (("ShearY", 0.7, 6), ("Solarize", 0.4, 8)),
        (("Invert", 0.6, None), ("Rotate", 0.8, 4)),
        (("ShearY", 0.3, 7), ("TranslateX", 0.9, 3)),
        (("ShearX", 0.1, 6), ("Invert", 0.6, None)),
        (("Solarize", 0.7, 2), ("TranslateY", 0.6, 7)),
        (("ShearY", 0.8, 4), ("Invert", 0.8, None)),
        (("ShearX", 0.7, 9), ("TranslateY", 0.8, 3)),
        (("ShearY", 0.8, 5), ("AutoContrast", 0.7, None)),
        (("ShearX", 0.7, 2), ("Invert", 0.1, None)),
    ),
}


def _float32_linspace(start, end, index):
    """`torch.linspace(start, end, 10)[index]` bit for bit (float32, filled
    from both ends): blends truncate to integers, so a factor one float32
    step away moves pixels by one level."""
    start, end = np.float32(start), np.float32(end)
    step = (end - start) / np.float32(_BINS - 1)
    if index < _BINS // 2:
        return float(start + step * np.float32(index))
    return float(end - step * np.float32(_BINS - 1 - index))


def magnitude(op, bin_index):
    """The unsigned magnitude of `op` at `bin_index` (0-9), in torchvision's
    units: shear as tan(angle), translation as a fraction of the image side,
    degrees, blend factor minus 1, posterize bits, solarize threshold."""
    if bin_index is None:
        return 0.0
    if op in ("TranslateX", "TranslateY"):
        return 150.0 / 331.0 * bin_index / (_BINS - 1)
    if op == "Posterize":
        return float(8 - round(4 * bin_index / (_BINS - 1)))
    if op in _LINSPACE_RANGES:
        return _float32_linspace(*_LINSPACE_RANGES[op], bin_index)
    return 0.0


# ----------------------------------------------------------------- the ops
# All take and return float32 (B, H, W, C) batches of integers in [0, 255]
# (the uint8 images torchvision works on) and a scalar signed magnitude.
def _to_uint8_grid(images):
    return tf.floor(tf.clip_by_value(images, 0.0, 255.0))


def _blend(images, degenerate, factor):
    # Both weights are rounded to float32 from the float64 factor, in the
    # order torchvision computes them: a different rounding moves pixels
    # that land on an integer by one level.
    weight = tf.cast(factor, tf.float32)
    other = tf.cast(1.0 - factor, tf.float32)
    return _to_uint8_grid(weight * images + other * degenerate)


def _grayscale(images):
    if images.shape[-1] == 1:
        return images
    r, g, b = tf.unstack(images, axis=-1)
    return tf.floor(0.2989 * r + 0.587 * g + 0.114 * b)[..., None]


def _warp(images, source):
    """Nearest-neighbour warp with black outside the image. `source(x, y)`
    maps output pixel indices (float64 grids) to input pixel coordinates;
    they are rounded half to even, as torch's `grid_sample` does (ties are
    common: shears move rows by multiples of half a pixel)."""
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    y, x = tf.meshgrid(tf.range(height, dtype=tf.float64),
                       tf.range(width, dtype=tf.float64), indexing="ij")
    source_x, source_y = source(x, y)
    col = tf.cast(tf.round(source_x), tf.int32)
    row = tf.cast(tf.round(source_y), tf.int32)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    flat_index = tf.reshape(tf.clip_by_value(row, 0, height - 1) * width
                            + tf.clip_by_value(col, 0, width - 1), (-1,))
    pixels = tf.reshape(images, (shape[0], height * width, shape[3]))
    warped = tf.reshape(tf.gather(pixels, flat_index, axis=1), shape)
    return tf.where(inside[None, :, :, None], warped, tf.zeros_like(warped))


def _shear(images, m, horizontal):
    """torchvision's shear: `F.affine` about the top-left image corner, which
    samples through a normalised float32 grid. Half-pixel ties are frequent
    here, so the grid is computed with torch's float32 steps, putting the
    ties on the side torch puts them."""
    shape = tf.shape(images)
    sides = tf.cast(shape[1:3], tf.float32)  # height, width
    along = sides[1] if horizontal else sides[0]
    across = sides[0] if horizontal else sides[1]
    half = 0.5 * along
    unit = 1.0 / half
    slope = tf.cast(m, tf.float32) / half
    offset = tf.cast(m * tf.cast(across, tf.float64) / 2.0, tf.float32) / half

    def source(x, y):
        x_centre = tf.cast(x, tf.float32) + 0.5 - 0.5 * sides[1]
        y_centre = tf.cast(y, tf.float32) + 0.5 - 0.5 * sides[0]
        if horizontal:
            grid = (x_centre * unit + y_centre * slope) + offset
        else:
            grid = (x_centre * slope + y_centre * unit) + offset
        sheared = tf.cast(((grid + 1.0) * along - 1.0) / 2.0, tf.float64)
        return (sheared, y) if horizontal else (x, sheared)

    return _warp(images, source)


def _shear_x(images, m):
    return _shear(images, m, horizontal=True)


def _shear_y(images, m):
    return _shear(images, m, horizontal=False)


def _whole_pixels(fraction, side):
    # torchvision: int(magnitude * side), truncated towards zero.
    return tf.cast(tf.cast(fraction * tf.cast(side, tf.float64), tf.int32), tf.float64)


def _translate_x(images, m):
    shift = _whole_pixels(m, tf.shape(images)[2])
    return _warp(images, lambda x, y: (x - shift, y))


def _translate_y(images, m):
    shift = _whole_pixels(m, tf.shape(images)[1])
    return _warp(images, lambda x, y: (x, y - shift))


def _rotate(images, degrees):
    # About the image centre, counter-clockwise for positive angles.
    angle = degrees * math.pi / 180.0
    shape = tf.cast(tf.shape(images), tf.float64)
    cx, cy = (shape[2] - 1.0) / 2.0, (shape[1] - 1.0) / 2.0
    cos, sin = tf.cos(angle), tf.sin(angle)
    return _warp(images, lambda x, y: (cos * (x - cx) - sin * (y - cy) + cx,
                                       sin * (x - cx) + cos * (y - cy) + cy))


def _brightness(images, m):
    return _blend(images, tf.zeros_like(images), 1.0 + m)


def _color(images, m):
    if images.shape[-1] == 1:
        return images
    return _blend(images, _grayscale(images), 1.0 + m)


def _contrast(images, m):
    mean = tf.reduce_mean(_grayscale(images), axis=[1, 2, 3], keepdims=True)
    return _blend(images, mean, 1.0 + m)


def _sharpness(images, m):
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    if height is not None and width is not None and (height <= 2 or width <= 2):
        return images
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], (1, 1, channels, 1))
    blurred = tf.round(tf.nn.depthwise_conv2d(images, kernel, (1, 1, 1, 1), "VALID"))
    # The one-pixel border keeps its values, as in PIL's SMOOTH filter.
    inside = tf.pad(tf.ones_like(blurred), [[0, 0], [1, 1], [1, 1], [0, 0]])
    degenerate = tf.where(inside > 0, tf.pad(blurred, [[0, 0], [1, 1], [1, 1], [0, 0]]),
                          images)
    return _blend(images, degenerate, 1.0 + m)


def _posterize(images, bits):
    step = tf.cast(tf.pow(tf.constant(2.0, tf.float64), 8.0 - bits), tf.float32)
    return tf.floor(images / step) * step


def _solarize(images, threshold):
    return tf.where(images >= tf.cast(threshold, tf.float32), 255.0 - images, images)


def _autocontrast(images, _):
    low = tf.reduce_min(images, axis=[1, 2], keepdims=True)
    high = tf.reduce_max(images, axis=[1, 2], keepdims=True)
    flat = tf.equal(high, low)
    low = tf.where(flat, 0.0, low)
    # torch divides a scalar by a tensor as scalar * (1 / tensor); the
    # direct quotient can put the maximum on 254.99998, truncated to 254.
    scale = tf.where(flat, 1.0, 255.0 * (1.0 / tf.where(flat, 1.0, high - low)))
    return _to_uint8_grid((images - low) * scale)


def _equalize(images, _):
    """Per image and channel: PIL's histogram equalisation (the lookup table
    of the cumulative histogram, left unchanged when one value dominates)."""
    shape = tf.shape(images)
    channels_first = tf.transpose(images, (0, 3, 1, 2))
    pixels = tf.reshape(tf.cast(channels_first, tf.int32), (-1, shape[1] * shape[2]))
    hist = tf.math.bincount(pixels, minlength=256, maxlength=256, axis=-1)
    top_count = tf.gather(hist, tf.reduce_max(pixels, axis=-1), batch_dims=1)
    step = (tf.reduce_sum(hist, axis=-1) - top_count) // 255
    safe_step = tf.maximum(step, 1)[:, None]
    lut = (tf.cumsum(hist, axis=-1) + safe_step // 2) // safe_step
    lut = tf.clip_by_value(tf.pad(lut, [[0, 0], [1, 0]])[:, :-1], 0, 255)
    equalized = tf.gather(lut, pixels, batch_dims=1)
    equalized = tf.where(step[:, None] > 0, equalized, pixels)
    equalized = tf.reshape(tf.cast(equalized, images.dtype), tf.shape(channels_first))
    return tf.ensure_shape(tf.transpose(equalized, (0, 2, 3, 1)), images.shape)


def _invert(images, _):
    return 255.0 - images


def _identity(images, _):
    return images


_FUNCTIONS = {
    "ShearX": _shear_x, "ShearY": _shear_y, "TranslateX": _translate_x,
    "TranslateY": _translate_y, "Rotate": _rotate, "Brightness": _brightness,
    "Color": _color, "Contrast": _contrast, "Sharpness": _sharpness,
    "Posterize": _posterize, "Solarize": _solarize, "AutoContrast": _autocontrast,
    "Equalize": _equalize, "Invert": _invert, "Identity": _identity,
}


def apply_op(images, op, signed_magnitude):
    """Applies one AutoAugment op to uint8-valued float images.

    Args:
        images: float32 `(B, H, W, C)` with integer values in [0, 255].
        op: a name from `OPS`.
        signed_magnitude: the op's magnitude, sign included (see `magnitude`).

    Returns:
        the augmented batch, integer values in [0, 255].

    Example:
    >>> apply_op(images, "Solarize", magnitude("Solarize", 5))
    """
    if op not in _FUNCTIONS:
        raise ValueError(f"Unknown AutoAugment op={op!r}; use one of {list(OPS)}.")
    # Python floats must not pass through float32 on the way.
    signed_magnitude = tf.convert_to_tensor(signed_magnitude, dtype_hint=tf.float64)
    return _FUNCTIONS[op](images, tf.cast(signed_magnitude, tf.float64))


def _policy_tables(policy):
    """`(op index, probability, unsigned magnitude, signed)` arrays of shape
    `(sub-policies, 2)`."""
    op_index, probability, size, signed = [], [], [], []
    for sub_policy in policy:
        op_index.append([OPS.index(op) for op, _, _ in sub_policy])
        probability.append([p for _, p, _ in sub_policy])
        size.append([magnitude(op, b) for op, _, b in sub_policy])
        signed.append([op in _SIGNED for op, _, _ in sub_policy])
    return op_index, probability, size, signed


def _check_policy(policy):
    if isinstance(policy, str):
        if policy.lower() not in POLICIES:
            raise ValueError(
                f"Unknown AutoAugment policy={policy!r}; use one of "
                f"{sorted(POLICIES)} or a list of sub-policies."
            )
        return POLICIES[policy.lower()]
    sub_policies = tuple(tuple(tuple(op) for op in sub) for sub in policy)
    for sub in sub_policies:
        for entry in sub:
            if (len(entry) != 3 or entry[0] not in OPS or not 0.0 <= entry[1] <= 1.0
                    or entry[2] not in (None, *range(_BINS))):
                raise ValueError(
                    f"policy entries must be (op, probability, bin) with op in "
                    f"{list(OPS)}, probability in [0, 1] and bin None or 0-9; "
                    f"got {entry!r}."
                )
    if not sub_policies or any(len(sub) != len(sub_policies[0]) for sub in sub_policies):
        raise ValueError(
            "policy must be a non-empty list of sub-policies with the same "
            f"number of ops each, got {policy!r}."
        )
    return sub_policies


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AutoAugment(keras.layers.Layer):
    """AutoAugment with a learned policy, torchvision's ops and magnitudes.

    Each call draws one sub-policy; each of its ops is applied with its
    probability, signed ops get a random sign. With `per_image=False` (the
    reference, which calls torchvision on the batch tensor) the draws are
    shared by the whole batch; with `per_image=True` every image draws its
    own, as a per-sample data pipeline would. Pixel values are taken to the
    uint8 grid of `value_range` (truncated, as the reference's
    `.mul(255).type(torch.uint8)`) and mapped back after.

    Args:
        policy: `"cifar10"` (the reference's choice on CIFAR-100),
            `"imagenet"` (on TinyImageNet), `"svhn"`, or a list of
            sub-policies `((op, probability, bin or None), ...)` with ops
            from `OPS` and bins 0-9.
        value_range: `(low, high)` of the input pixels, e.g. `(0, 255)` or
            `(0, 1)`; the output has the same range.
        per_image: draw a sub-policy per image rather than per batch.
        seed: seed of the draws; equal seeds give equal outputs.

    Example:
    ```python
    layer = AutoAugment("cifar10", value_range=(0, 255), seed=0)
    augmented = layer(uint8_images_as_float)                    # (B, H, W, C)
    out = layer({"images": images, "labels": labels})   # labels pass through
    ```
    """

    def __init__(self, policy="imagenet", value_range=(0, 255), per_image=False,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self._sub_policies = _check_policy(policy)
        if len(value_range) != 2 or not value_range[0] < value_range[1]:
            raise ValueError(
                f"value_range must be (low, high) with low < high, got {value_range!r}."
            )
        self.policy = policy if isinstance(policy, str) else [
            [list(op) for op in sub] for sub in self._sub_policies]
        self.value_range = tuple(value_range)
        self.per_image = per_image
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)
        # XLA cannot compile Equalize's bincount inside tf.switch_case (its
        # size is no compile-time constant there), and its fused float maths
        # moves Color and Sharpness by one level: models holding this layer
        # compile without XLA.
        self.supports_jit = False
        op_index, probability, size, signed = _policy_tables(self._sub_policies)
        self._tables = [tf.constant(op_index), tf.constant(probability),
                        tf.constant(size, tf.float64), tf.constant(signed)]
        self._branches = [_FUNCTIONS[op] for op in OPS]

    def _draw(self, n):
        """Per draw: the two ops' branch indices and signed magnitudes."""
        op_index, probability, size, signed = self._tables
        ops_per_sub = op_index.shape[1]
        choice = keras.random.randint((n,), 0, op_index.shape[0], seed=self.generator)
        applied = keras.random.uniform((n, ops_per_sub), seed=self.generator) <= ops.take(
            probability, choice, axis=0)
        negative = keras.random.randint((n, ops_per_sub), 0, 2, seed=self.generator) == 0
        negative &= ops.take(signed, choice, axis=0)
        branch = ops.where(applied, ops.take(op_index, choice, axis=0), OPS.index("Identity"))
        amount = ops.take(size, choice, axis=0)
        return branch, ops.where(negative, -amount, amount)

    def _apply(self, images, branch, amount):
        for i in range(branch.shape[-1]):
            images = tf.switch_case(
                branch[i], [lambda f=f, i=i: f(images, amount[i]) for f in self._branches])
        return images

    def _augment(self, images):
        low, high = self.value_range
        images = _to_uint8_grid((images - low) * (255.0 / (high - low)))
        shape = tf.shape(images)
        if self.per_image:
            branch, amount = self._draw(shape[0])
            images = tf.map_fn(
                lambda args: self._apply(args[0][None], args[1], args[2])[0],
                (images, branch, amount), fn_output_signature=images.dtype)
        else:
            branch, amount = self._draw(1)
            images = self._apply(images, branch[0], amount[0])
        return images * ((high - low) / 255.0) + low

    def call(self, data, training=True):
        images = data["images"] if isinstance(data, dict) else data
        if not training:
            return data
        images = ops.convert_to_tensor(images)
        if len(images.shape) not in (3, 4):
            raise ValueError(
                f"AutoAugment needs images (H, W, C) or (B, H, W, C), got shape "
                f"{tuple(images.shape)}."
            )
        single = len(images.shape) == 3
        batch = tf.cast(images[None] if single else images, tf.float32)
        augmented = self._augment(batch)
        augmented = ops.cast(augmented[0] if single else augmented, images.dtype)
        return dict(data, images=augmented) if isinstance(data, dict) else augmented

    def compute_output_spec(self, data, training=True):
        return data

    def get_config(self):
        config = super().get_config()
        config.update(policy=self.policy, value_range=self.value_range,
                      per_image=self.per_image, seed=self.seed)
        return config

"""AutoAugment's image ops in TensorFlow, with torchvision's uint8 semantics
(nearest-neighbour geometry with black fill, blends that truncate to
integers, per-channel equalisation).

All take and return float32 (B, H, W, C) batches of integers in [0, 255]
(the uint8 images torchvision works on) and a scalar signed magnitude.
"""

import math

import tensorflow as tf

from r2kd_keras.augment.autoaugment.policies import OPS


def to_uint8_grid(images):
    """Float images truncated to the integers of [0, 255], as a uint8 cast."""
    return tf.floor(tf.clip_by_value(images, 0.0, 255.0))


def _blend(images, degenerate, factor):
    # Both weights are rounded to float32 from the float64 factor, in the
    # order torchvision computes them: a different rounding moves pixels
    # that land on an integer by one level.
    weight = tf.cast(factor, tf.float32)
    other = tf.cast(1.0 - factor, tf.float32)
    return to_uint8_grid(weight * images + other * degenerate)


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
    return to_uint8_grid((images - low) * scale)


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


# The function of each op name in `OPS`.
OP_FUNCTIONS = {
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
    if op not in OP_FUNCTIONS:
        raise ValueError(f"Unknown AutoAugment op={op!r}; use one of {list(OPS)}.")
    # Python floats must not pass through float32 on the way.
    signed_magnitude = tf.convert_to_tensor(signed_magnitude, dtype_hint=tf.float64)
    return OP_FUNCTIONS[op](images, tf.cast(signed_magnitude, tf.float64))

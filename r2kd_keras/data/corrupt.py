"""Common corruptions of test images after Hendrycks & Dietterich (2019).

"Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019; the parameters are those of their CIFAR-10-C
generator (`make_cifar_c.py` in github.com/hendrycks/robustness), severity
1 to 5:

| name             | parameter c, severity 1-5       | on x in [0, 1]                 |
|------------------|---------------------------------|--------------------------------|
| gaussian_noise   | std .04, .06, .08, .09, .10     | clip(x + c * N(0, 1))          |
| shot_noise       | rate 500, 250, 100, 75, 50      | clip(Poisson(c * x) / c)       |
| impulse_noise    | amount .01, .02, .03, .05, .07  | share c of values -> 0 or 1   |
| gaussian_blur    | sigma .4, .6, .7, .8, 1         | Gaussian filter per channel (1) |
| contrast         | factor .75, .5, .4, .3, .15     | clip((x - m) * c + m) (2)      |
| brightness       | shift .05, .1, .15, .2, .3      | HSV value V -> min(V + c, 1)   |
| jpeg_compression | quality 80, 65, 58, 50, 40      | JPEG encode, decode (libjpeg)  |
| pixelate         | scale .95, .9, .85, .75, .65    | box resize to int(c * size), back |

(1) edge pixels repeated, radius int(4 sigma + 0.5), as scikit-image's `gaussian`.
(2) m: the mean of each image's channel.

Differences from the reference, on purpose: the noises draw from numpy's
`default_rng(seed)` (the reference used the global `np.random` state), so a
call is deterministic; impulse noise picks each value independently
(scikit-image's current `random_noise(mode="s&p")`); pixelate resizes in
float (Pillow's BOX filter, no 8-bit rounding between the passes) and takes
the image's own size instead of CIFAR's fixed 32; uint8 results are rounded,
not truncated.
"""

import numpy as np
import tensorflow as tf

SEVERITY_PARAMETERS = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "jpeg_compression": (80, 65, 58, 50, 40),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
}
CORRUPTIONS = tuple(SEVERITY_PARAMETERS)
# The gaussian filter's reach in sigmas (scipy's and scikit-image's default).
BLUR_TRUNCATE = 4.0


def _gaussian_noise(x, std, rng):
    return x + std * rng.standard_normal(x.shape)


def _shot_noise(x, rate, rng):
    return rng.poisson(x * rate) / rate


def _impulse_noise(x, amount, rng):
    flipped = rng.random(x.shape) < amount
    salt = rng.random(x.shape) < 0.5
    return np.where(flipped, salt.astype(x.dtype), x)


def _gaussian_blur(x, sigma, rng):
    radius = int(BLUR_TRUNCATE * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    for axis in (1, 2):  # separable: rows, then columns
        padding = [(0, 0)] * 4
        padding[axis] = (radius, radius)
        padded = np.pad(x, padding, mode="edge")
        size = x.shape[axis]
        x = sum(w * np.take(padded, np.arange(k, k + size), axis=axis)
                for k, w in enumerate(kernel))
    return x


def _contrast(x, factor, rng):
    means = x.mean(axis=(1, 2), keepdims=True)
    return (x - means) * factor + means


def _brightness(x, shift, rng):
    # HSV keeps hue and saturation, and every RGB channel is proportional to
    # V = max(r, g, b) at fixed H and S: raising V scales the pixel; a black
    # pixel (V = 0, no hue) becomes grey V'.
    value = x.max(axis=-1, keepdims=True)
    raised = np.minimum(value + shift, 1.0)
    scale = np.divide(raised, value, out=np.zeros_like(value), where=value > 0)
    return np.where(value > 0, x * scale, raised)


def _jpeg_compression(x, quality, rng):
    pixels = tf.constant(_to_uint8(x))
    decoded = [tf.io.decode_jpeg(tf.io.encode_jpeg(image, quality=int(quality)),
                                 channels=image.shape[-1], dct_method="INTEGER_ACCURATE")
               for image in pixels]
    return np.stack([d.numpy() for d in decoded]).astype(np.float64) / 255.0


def box_resize_matrix(source, target):
    """Rows: the weights of Pillow's BOX filter resizing `source` pixels to
    `target` (every source pixel whose centre lies in the target pixel's
    footprint, at least one pixel wide, counts once).

    Args:
        source: input length (pixels).
        target: output length (pixels).

    Returns:
        float64 array `(target, source)`, rows summing to 1.

    Example:
    >>> box_resize_matrix(4, 2)
    array([[0.5, 0.5, 0. , 0. ],
           [0. , 0. , 0.5, 0.5]])
    """
    scale = source / target
    half = 0.5 * max(scale, 1.0)
    centres = (np.arange(target) + 0.5) * scale
    pixel = np.arange(source) + 0.5
    weights = ((pixel[None] > centres[:, None] - half)
               & (pixel[None] <= centres[:, None] + half)).astype(np.float64)
    return weights / weights.sum(axis=1, keepdims=True)


def _pixelate(x, scale, rng):
    height, width = x.shape[1:3]
    small = (int(height * scale), int(width * scale))
    rows = box_resize_matrix(small[0], height) @ box_resize_matrix(height, small[0])
    columns = box_resize_matrix(small[1], width) @ box_resize_matrix(width, small[1])
    planes = x.transpose(0, 3, 1, 2)  # (batch, channels, height, width)
    return (rows @ planes @ columns.T).transpose(0, 2, 3, 1)


_CORRUPT = {
    "gaussian_noise": _gaussian_noise, "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise, "gaussian_blur": _gaussian_blur,
    "contrast": _contrast, "brightness": _brightness,
    "jpeg_compression": _jpeg_compression, "pixelate": _pixelate,
}


def _to_uint8(x):
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _check(images, name, severity):
    if name not in _CORRUPT:
        raise ValueError(f"name={name!r} is not a corruption; use one of "
                         f"{', '.join(CORRUPTIONS)}.")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) \
            or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an int from 1 to 5, got {severity!r}.")
    images = np.asarray(images)
    if images.ndim not in (3, 4) or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"images must be (height, width, channels) or (batch, height, width, "
            f"channels) with 1 or 3 channels, got shape {images.shape}; add a "
            "channel axis to grey images with images[..., None].")
    if images.dtype == np.uint8:
        return images.astype(np.float64) / 255.0
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"images must be uint8 in [0, 255] or float in [0, 1], got "
                         f"dtype {images.dtype}; cast them with np.uint8 or divide by 255.")
    if not np.isfinite(images).all():
        raise ValueError(f"images hold {np.sum(~np.isfinite(images))} NaN or Inf values; "
                         "corrupt finite images in [0, 1] (or uint8).")
    if images.size and not (images.min() >= 0.0 and images.max() <= 1.0):
        raise ValueError(
            f"float images must lie in [0, 1], got values in [{images.min()}, "
            f"{images.max()}]; divide uint8-range images by 255 (or pass uint8).")
    return images.astype(np.float64)


def corrupt(images, name, severity, seed=0):
    """One common corruption of Hendrycks & Dietterich (2019) at a severity.

    See the module docstring for each corruption's parameter table and formula.

    Args:
        images: `(batch, height, width, channels)` or `(height, width,
            channels)`, 1 or 3 channels; uint8 in [0, 255] or float in [0, 1]
            (the formulas work in [0, 1]: uint8 is divided by 255).
        name: one of `CORRUPTIONS`.
        severity: 1 (mildest) to 5.
        seed: seed of the noises' numpy generator: the same images, name,
            severity and seed give the same result.

    Returns:
        The corrupted images, shape of `images`, clipped to the input's
        range: uint8 (rounded) for uint8 input, else float32 in [0, 1].

    Example:
    >>> corrupt(np.full((2, 28, 28, 1), 100, np.uint8), "contrast", 5)[0, 0, 0, 0]
    100
    """
    x = _check(images, name, severity)
    batched = x if x.ndim == 4 else x[None]
    parameter = SEVERITY_PARAMETERS[name][severity - 1]
    out = _CORRUPT[name](batched, parameter, np.random.default_rng(seed))
    out = out.reshape(x.shape)
    if np.asarray(images).dtype == np.uint8:
        return _to_uint8(out)
    return np.clip(out, 0.0, 1.0).astype(np.float32)

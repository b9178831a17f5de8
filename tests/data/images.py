"""Real tiny image files for the loader tests: solid-colour JPEGs (one colour
per class, so a served pixel tells which class an image came from), and the
bad files users meet: grey and CMYK JPEGs, garbage, text, truncated JPEGs."""

import io
import os

import numpy as np
from PIL import Image

# Far apart in RGB so JPEG error (a few levels) never confuses two classes.
COLOURS = [(220, 30, 30), (30, 220, 30), (30, 30, 220), (220, 220, 30)]


def jpeg_bytes(array, mode=None):
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, np.uint8), mode=mode).save(
        buffer, format="JPEG", quality=95
    )
    return buffer.getvalue()


def solid(colour, size=64):
    return np.full((size, size, 3), colour, np.uint8)


def write(path, payload):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(payload)


def grey_jpeg(level, size=64):
    return jpeg_bytes(np.full((size, size), level, np.uint8), mode="L")


def cmyk_jpeg(size=64, seed=0):
    rng = np.random.default_rng(seed)
    return jpeg_bytes(rng.integers(0, 256, (size, size, 4)), mode="CMYK")


def truncated_jpeg(colour, size=64):
    # Enough of the file to pass the signature scan, not enough to decode.
    return jpeg_bytes(solid(colour, size))[:200]


def nearest_class(pixel):
    distances = [np.abs(np.asarray(c) - pixel).sum() for c in COLOURS]
    return int(np.argmin(distances))


def unnormalize(images, mean, std):
    """Float images (normalised) back to [0, 255]."""
    return (np.asarray(images) * np.asarray(std) + np.asarray(mean)) * 255.0

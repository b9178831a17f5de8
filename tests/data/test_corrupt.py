"""`corrupt` on real images (Fashion-MNIST test images, matplotlib's colour
photo `grace_hopper.jpg`), each corruption against an independent
reference: the formula in numpy, scipy.ndimage's gaussian filter, the
standard library's HSV conversion, Pillow's JPEG round trip and BOX resize,
and the noises' statistics."""

import colorsys
import io
import os

import matplotlib
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from r2kd_keras.data import CORRUPTIONS, corrupt, idx
from r2kd_keras.data.corrupt import SEVERITY_PARAMETERS

FASHION = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
PHOTO = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data",
                     "grace_hopper.jpg")
needs_fashion = pytest.mark.skipif(not os.path.isfile(FASHION),
                                   reason="apt-get install dataset-fashion-mnist")


@pytest.fixture(scope="module")
def fashion():
    """64 real grey test images, uint8 (64, 28, 28, 1)."""
    return idx.read_idx(FASHION)[:64, ..., None]


@pytest.fixture(scope="module")
def photos():
    """Two real colour 32x32 images, uint8 (2, 32, 32, 3)."""
    source = Image.open(PHOTO).convert("RGB")
    return np.stack([np.asarray(source.resize((32, 32))),
                     np.asarray(source.crop((100, 50, 400, 350)).resize((32, 32)))])


def _unit(images):
    return images.astype(np.float64) / 255.0


def test_the_eight_corruptions_and_hendrycks_cifar10c_parameters():
    assert CORRUPTIONS == ("gaussian_noise", "shot_noise", "impulse_noise", "gaussian_blur",
                           "contrast", "brightness", "jpeg_compression", "pixelate")
    # make_cifar_c.py of github.com/hendrycks/robustness, severities 1-5.
    assert SEVERITY_PARAMETERS["gaussian_noise"] == (0.04, 0.06, 0.08, 0.09, 0.10)
    assert SEVERITY_PARAMETERS["shot_noise"] == (500, 250, 100, 75, 50)
    assert SEVERITY_PARAMETERS["impulse_noise"] == (0.01, 0.02, 0.03, 0.05, 0.07)
    assert SEVERITY_PARAMETERS["gaussian_blur"] == (0.4, 0.6, 0.7, 0.8, 1.0)
    assert SEVERITY_PARAMETERS["contrast"] == (0.75, 0.5, 0.4, 0.3, 0.15)
    assert SEVERITY_PARAMETERS["brightness"] == (0.05, 0.1, 0.15, 0.2, 0.3)
    assert SEVERITY_PARAMETERS["jpeg_compression"] == (80, 65, 58, 50, 40)
    assert SEVERITY_PARAMETERS["pixelate"] == (0.95, 0.9, 0.85, 0.75, 0.65)


@needs_fashion
def test_gaussian_noise_is_clipped_additive_noise_of_the_table_std(fashion):
    # The documented draw: default_rng(seed).standard_normal over the batch.
    noise = np.random.default_rng(7).standard_normal(fashion.shape)
    expected = np.clip(_unit(fashion) + 0.08 * noise, 0, 1)
    np.testing.assert_allclose(corrupt(_unit(fashion), "gaussian_noise", 3, seed=7),
                               expected, atol=1e-6)
    np.testing.assert_array_equal(corrupt(fashion, "gaussian_noise", 3, seed=7),
                                  np.round(expected * 255).astype(np.uint8))
    # On mid-grey (no clipping within 5 std) the residual has std c.
    grey = np.full((8, 64, 64, 1), 0.5)
    for severity, std in enumerate(SEVERITY_PARAMETERS["gaussian_noise"], 1):
        residual = corrupt(grey, "gaussian_noise", severity) - 0.5
        assert abs(residual.mean()) < 0.003 and residual.std() == pytest.approx(std, rel=0.02)


def test_shot_noise_is_poisson_counts_over_the_rate():
    level = 0.4
    grey = np.full((8, 64, 64, 1), level)
    for severity, rate in enumerate(SEVERITY_PARAMETERS["shot_noise"], 1):
        out = corrupt(grey, "shot_noise", severity, seed=3).astype(np.float64)
        counts = out * rate
        # Poisson counts: integers, mean and variance both rate * level.
        np.testing.assert_allclose(counts, np.round(counts), atol=2e-4 * rate)
        assert counts.mean() == pytest.approx(rate * level, rel=0.01)
        assert counts.var() == pytest.approx(rate * level, rel=0.05)
    # Black stays black (Poisson(0) = 0), white saturates at 1.
    assert not corrupt(np.zeros((2, 8, 8, 1), np.uint8), "shot_noise", 5).any()


def test_impulse_noise_sets_the_table_fraction_to_black_or_white():
    grey = np.full((8, 64, 64, 3), 0.5, np.float32)
    for severity, amount in enumerate(SEVERITY_PARAMETERS["impulse_noise"], 1):
        out = corrupt(grey, "impulse_noise", severity, seed=1)
        changed = out != 0.5
        # Each of the 98,304 values independently: 3 std of the binomial.
        bound = 3 * np.sqrt(amount * (1 - amount) / grey.size)
        assert abs(changed.mean() - amount) < bound
        assert set(np.unique(out[changed])) <= {0.0, 1.0}
        assert abs((out[changed] == 1.0).mean() - 0.5) < 3 * np.sqrt(0.25 / changed.sum())


@needs_fashion
def test_gaussian_blur_is_scipys_gaussian_filter(fashion, photos):
    for images in (fashion, photos):
        x = _unit(images)
        for severity, sigma in enumerate(SEVERITY_PARAMETERS["gaussian_blur"], 1):
            # scikit-image's gaussian (used by the reference) is this filter:
            # mode "nearest", truncate 4, no blur across channels.
            expected = ndimage.gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="nearest",
                                               truncate=4.0)
            np.testing.assert_allclose(corrupt(x, "gaussian_blur", severity), expected,
                                       atol=1e-6)


def test_contrast_pulls_each_channel_to_its_image_mean(photos):
    x = _unit(photos)
    out = corrupt(x, "contrast", 4)
    for n in range(len(x)):
        for channel in range(3):
            plane = x[n, :, :, channel]
            expected = np.clip((plane - plane.mean()) * 0.3 + plane.mean(), 0, 1)
            np.testing.assert_allclose(out[n, :, :, channel], expected, atol=1e-6)


def test_brightness_raises_the_hsv_value(photos):
    x = _unit(photos)
    # A black pixel has no hue: it becomes grey at the raised value.
    x[0, 0, 0] = 0.0
    out = corrupt(x, "brightness", 5)
    expected = np.empty_like(x)
    for index in np.ndindex(x.shape[:3]):
        h, s, v = colorsys.rgb_to_hsv(*x[index])
        expected[index] = colorsys.hsv_to_rgb(h, s, min(v + 0.3, 1.0))
    np.testing.assert_allclose(out, expected, atol=1e-6)
    np.testing.assert_allclose(out[0, 0, 0], [0.3, 0.3, 0.3], atol=1e-6)


@needs_fashion
def test_brightness_of_grey_images_adds_the_shift(fashion):
    x = _unit(fashion)
    np.testing.assert_allclose(corrupt(x, "brightness", 2), np.clip(x + 0.1, 0, 1), atol=1e-6)


def _pillow_jpeg(image, quality):
    buffer = io.BytesIO()
    Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(
        buffer, "JPEG", quality=quality)
    decoded = np.asarray(Image.open(buffer))
    return decoded[..., None] if decoded.ndim == 2 else decoded


@needs_fashion
def test_jpeg_is_pillows_round_trip_at_the_table_quality(fashion, photos):
    for images in (fashion[:16], photos):
        for severity, quality in enumerate(SEVERITY_PARAMETERS["jpeg_compression"], 1):
            expected = np.stack([_pillow_jpeg(image, quality) for image in images])
            # Same libjpeg, both with the accurate integer DCT: equal bytes.
            np.testing.assert_array_equal(corrupt(images, "jpeg_compression", severity),
                                          expected)


@needs_fashion
def test_pixelate_is_pillows_box_resize_down_and_back(fashion, photos):
    for images in (fashion[:8], photos):
        x = _unit(images).astype(np.float32)
        height = x.shape[1]
        for severity, scale in enumerate(SEVERITY_PARAMETERS["pixelate"], 1):
            small = int(height * scale)
            # Pillow's float mode "F": the BOX filter without 8-bit rounding.
            expected = np.stack([
                np.stack([np.asarray(Image.fromarray(plane[..., c], "F")
                                     .resize((small, small), Image.BOX)
                                     .resize((height, height), Image.BOX))
                          for c in range(x.shape[-1])], axis=-1)
                for plane in x])
            np.testing.assert_allclose(corrupt(x, "pixelate", severity), expected,
                                       atol=1e-6)


@needs_fashion
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_higher_severity_moves_real_images_further(fashion, name):
    distances = [np.abs(corrupt(fashion, name, severity).astype(np.float64) - fashion).mean()
                 for severity in range(1, 6)]
    assert all(0 < a < b for a, b in zip(distances, distances[1:])), distances


@needs_fashion
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_seeded_and_deterministic(fashion, name):
    first = corrupt(fashion, name, 3, seed=5)
    np.testing.assert_array_equal(first, corrupt(fashion, name, 3, seed=5))
    other_seed = corrupt(fashion, name, 3, seed=6)
    noisy = name.endswith("_noise")
    assert (not np.array_equal(first, other_seed)) == noisy
    assert first.dtype == np.uint8 and first.shape == fashion.shape


@needs_fashion
def test_one_image_and_float_input_agree_with_the_uint8_batch(fashion):
    for name in ("gaussian_blur", "pixelate", "contrast"):
        single = corrupt(fashion[0], name, 2)
        np.testing.assert_array_equal(single, corrupt(fashion[:1], name, 2)[0])
        as_float = corrupt(_unit(fashion), name, 2)
        assert as_float.dtype == np.float32 and 0 <= as_float.min() <= as_float.max() <= 1
        # The uint8 result is the float one rounded to the nearest level.
        difference = as_float * 255.0 - corrupt(fashion, name, 2)
        assert np.abs(difference).max() <= 0.5 + 1e-3


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "fog"}, r"name='fog' is not a corruption; use one of gaussian_noise"),
    ({"severity": 0}, r"severity must be an int from 1 to 5, got 0"),
    ({"severity": 6}, r"severity must be an int from 1 to 5, got 6"),
    ({"severity": 2.0}, r"severity must be an int from 1 to 5, got 2.0"),
    ({"severity": True}, r"severity must be an int from 1 to 5, got True"),
    ({"images": np.zeros((4, 8, 8, 1), np.int32)},
     r"uint8 in \[0, 255\] or float in \[0, 1\], got dtype int32"),
    ({"images": np.full((4, 8, 8, 1), 255.0)}, r"float images must lie in \[0, 1\], got "
                                               r"values in \[255.0, 255.0\]"),
    ({"images": np.full((4, 8, 8, 1), np.nan)}, r"images hold 256 NaN or Inf values"),
    ({"images": np.zeros((8, 28, 28), np.uint8)},
     r"1 or 3 channels, got shape \(8, 28, 28\); add a channel axis"),
])
def test_bad_arguments_are_named(kwargs, message):
    arguments = {"images": np.zeros((4, 8, 8, 1), np.uint8), "name": "contrast",
                 "severity": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        corrupt(**arguments)

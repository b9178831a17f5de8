"""AutoAugment on a real colour photograph (matplotlib's sample
`grace_hopper.jpg`), each op checked against an independent reference:
Pillow's ImageOps/transform where Pillow and torchvision agree, else the
formula written out in numpy (with ties excluded where torch's float32 grid
decides them)."""

import math
import os

import keras
import matplotlib
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from r2kd_keras.augment import make_augmenter
from r2kd_keras.autoaugment import OPS, POLICIES, AutoAugment, apply_op, magnitude
from tests.augment_helpers import TwoViewModel

PHOTO = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data",
                     "grace_hopper.jpg")


def _photos():
    source = Image.open(PHOTO).convert("RGB")
    # A square thumbnail, a face crop, and a non-square size.
    return [source.resize((32, 32)), source.crop((100, 50, 400, 350)).resize((32, 32)),
            source.resize((40, 36))]


PHOTOS = _photos()
BATCH = np.stack([np.asarray(p, np.float32) for p in PHOTOS[:2]])


def _ours(photo, op, m):
    return apply_op(tf.constant(np.asarray(photo, np.float32)[None]), op, m).numpy()[0]


def _blend(image, degenerate, m):
    # torchvision: ratio * img1 + (1 - ratio) * img2 in float32, clamped,
    # truncated to uint8; both weights rounded from the float64 ratio.
    ratio = 1.0 + m
    mixed = np.float32(ratio) * image + np.float32(1.0 - ratio) * degenerate
    return np.floor(np.clip(mixed, 0, 255))


def _gray(image):
    r, g, b = (image[..., i] for i in range(3))
    return np.floor(np.float32(0.2989) * r + np.float32(0.587) * g + np.float32(0.114) * b)


def _sharpness_degenerate(image):
    kernel = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / np.float32(13)
    out = image.copy()
    h, w = image.shape[:2]
    for i in range(1, h - 1):
        for j in range(1, w - 1):
            window = image[i - 1:i + 2, j - 1:j + 2]
            out[i, j] = np.round(np.einsum("ij,ijc->c", kernel, window))
    return out


def _numpy_reference(op, image, m):
    if op == "Brightness":
        return _blend(image, 0.0, m)
    if op == "Color":
        return _blend(image, _gray(image)[..., None], m)
    if op == "Contrast":
        return _blend(image, np.float32(_gray(image).mean()), m)
    if op == "Sharpness":
        return _blend(image, _sharpness_degenerate(image), m)
    if op == "AutoContrast":
        low, high = image.min((0, 1)), image.max((0, 1))
        scale = np.float32(255) * (np.float32(1) / (high - low))
        return np.floor(np.clip((image - low) * scale, 0, 255))
    raise KeyError(op)


def _pil_reference(op, photo, m):
    width, height = photo.size
    if op == "TranslateX":
        return photo.transform(photo.size, Image.AFFINE, (1, 0, -int(m * width), 0, 1, 0),
                               Image.NEAREST, fillcolor=(0, 0, 0))
    if op == "TranslateY":
        return photo.transform(photo.size, Image.AFFINE, (1, 0, 0, 0, 1, -int(m * height)),
                               Image.NEAREST, fillcolor=(0, 0, 0))
    if op == "Posterize":
        return ImageOps.posterize(photo, int(m))
    if op == "Solarize":
        return ImageOps.solarize(photo, m)
    if op == "Equalize":
        return ImageOps.equalize(photo)
    if op == "Invert":
        return ImageOps.invert(photo)
    raise KeyError(op)


def _signed(op, bins=(0, 3, 6, 9)):
    signs = (1, -1) if op in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate",
                              "Brightness", "Color", "Contrast", "Sharpness") else (1,)
    return [sign * magnitude(op, b) for b in bins for sign in signs]


@pytest.mark.parametrize("op", ["TranslateX", "TranslateY", "Posterize", "Solarize",
                                "Equalize", "Invert"])
def test_ops_equal_pillow(op):
    for photo in PHOTOS:
        for m in _signed(op):
            expected = np.asarray(_pil_reference(op, photo, m), np.float32)
            np.testing.assert_array_equal(_ours(photo, op, m), expected, err_msg=f"{op} {m}")


@pytest.mark.parametrize("op", ["Brightness", "Color", "Contrast", "Sharpness", "AutoContrast"])
def test_blend_ops_equal_the_uint8_formula(op):
    for photo in PHOTOS:
        image = np.asarray(photo, np.float32)
        for m in _signed(op):
            expected = _numpy_reference(op, image, m)
            np.testing.assert_array_equal(_ours(photo, op, m), expected, err_msg=f"{op} {m}")


def _nearest_reference(image, source_x, source_y):
    """Nearest sampling at float64 source coordinates, black outside; also
    the mask of pixels whose coordinates are not within 1e-3 of a tie."""
    h, w = image.shape[:2]
    col, row = np.rint(source_x).astype(int), np.rint(source_y).astype(int)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    out = np.where(inside[..., None], image[row.clip(0, h - 1), col.clip(0, w - 1)], 0)
    clear = (np.abs(np.abs(source_x % 1) - 0.5) > 1e-3) & (
        np.abs(np.abs(source_y % 1) - 0.5) > 1e-3)
    return out, clear


@pytest.mark.parametrize("op", ["ShearX", "ShearY", "Rotate"])
def test_geometric_ops_sample_the_right_pixel_away_from_ties(op):
    for photo in PHOTOS:
        image = np.asarray(photo, np.float32)
        h, w = image.shape[:2]
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        for m in _signed(op):
            if op == "ShearX":  # about the corner of pixel (0, 0)
                source = (x + m * (y + 0.5), y)
            elif op == "ShearY":
                source = (x, y + m * (x + 0.5))
            else:  # counter-clockwise about the centre
                a, cx, cy = math.radians(m), (w - 1) / 2, (h - 1) / 2
                source = (math.cos(a) * (x - cx) - math.sin(a) * (y - cy) + cx,
                          math.sin(a) * (x - cx) + math.cos(a) * (y - cy) + cy)
            expected, clear = _nearest_reference(image, *source)
            ours = _ours(photo, op, m)
            assert clear.mean() > 0.5
            np.testing.assert_array_equal(ours[clear], expected[clear], err_msg=f"{op} {m}")


def test_magnitudes_follow_torchvision_bins():
    # torchvision: linspace(0, 0.3 | 30 | 0.9, 10), posterize 8 - round(b / 2.25),
    # solarize linspace(255, 0, 10), translate 150/331 of the side.
    assert [magnitude("Posterize", b) for b in range(10)] == [8, 8, 7, 7, 6, 6, 5, 5, 4, 4]
    np.testing.assert_allclose([magnitude("Rotate", b) for b in range(10)],
                               np.linspace(0, 30, 10), rtol=1e-6)
    np.testing.assert_allclose([magnitude("Solarize", b) for b in range(10)],
                               np.linspace(255, 0, 10), rtol=1e-6, atol=1e-5)
    assert magnitude("TranslateX", 9) == pytest.approx(150 / 331)
    assert magnitude("Equalize", None) == 0.0
    for policy in POLICIES.values():
        assert len(policy) == 25 and all(len(sub) == 2 for sub in policy)
        assert all(op in OPS and (b is None or 0 <= b <= 9) for sub in policy
                   for op, _, b in sub)


def test_a_certain_policy_is_its_ops_composed_in_order():
    policy = [[("Invert", 1.0, None), ("Posterize", 1.0, 4)]]
    assert magnitude("Posterize", 4) == 6
    expected = np.stack([np.asarray(ImageOps.posterize(ImageOps.invert(p), 6), np.float32)
                         for p in PHOTOS[:2]])
    out = AutoAugment(policy, value_range=(0, 255), seed=0)(BATCH).numpy()
    np.testing.assert_array_equal(out, expected)
    unit = AutoAugment(policy, value_range=(0, 1), seed=0)(BATCH / 255.0).numpy()
    np.testing.assert_allclose(unit, expected / 255.0, atol=1e-6)


def test_probabilities_signs_and_shared_draws():
    rng_layer = AutoAugment([[("Invert", 0.3, None)]], seed=3)
    inverted = [np.array_equal(rng_layer(BATCH).numpy(), 255.0 - BATCH) for _ in range(300)]
    # 300 draws: 4 standard deviations of a 0.3 rate is 0.106.
    assert abs(np.mean(inverted) - 0.3) < 0.106

    shift = AutoAugment([[("TranslateX", 1.0, 9)]], seed=4)
    left = _ours(PHOTOS[0], "TranslateX", magnitude("TranslateX", 9))
    right = _ours(PHOTOS[0], "TranslateX", -magnitude("TranslateX", 9))
    sides = [np.array_equal(out, left) - np.array_equal(out, right)
             for out in (shift(BATCH[:1]).numpy()[0] for _ in range(40))]
    assert set(sides) == {1, -1}

    batch = np.repeat(BATCH[:1], 64, axis=0)
    shared = AutoAugment([[("Invert", 0.5, None)]], seed=5)(batch).numpy()
    own = AutoAugment([[("Invert", 0.5, None)]], per_image=True, seed=5)(batch).numpy()
    assert len({float(image.mean()) for image in shared}) == 1
    assert 10 < sum(np.array_equal(image, 255.0 - batch[0]) for image in own) < 54


def test_seeded_determinism_and_config_round_trip():
    layer = AutoAugment("cifar10", seed=7, per_image=True)
    again = AutoAugment.from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    outputs = [np.stack([layer(BATCH).numpy() for _ in range(4)]),
               np.stack([again(BATCH).numpy() for _ in range(4)])]
    np.testing.assert_array_equal(*outputs)
    other = np.stack([AutoAugment("cifar10", seed=8, per_image=True)(BATCH).numpy()
                      for _ in range(4)])
    assert not np.array_equal(outputs[0], other)
    custom = AutoAugment([[("Equalize", 0.5, None), ("Rotate", 0.5, 3)]], seed=1)
    assert AutoAugment.from_config(custom.get_config()).get_config() == custom.get_config()


def test_graph_dataset_and_mirrored(mirrored_strategy):
    layer = AutoAugment("imagenet", seed=2)
    traced = tf.function(lambda images: layer(images))
    assert traced(tf.constant(BATCH)).shape == BATCH.shape
    # One image at a time in tf.data (before .batch): every image its own draw.
    single = AutoAugment("cifar10", seed=2)
    ds = tf.data.Dataset.from_tensor_slices(BATCH).map(single).batch(2)
    assert next(iter(ds)).shape == BATCH.shape
    with mirrored_strategy.scope():
        mirrored = AutoAugment("cifar10", seed=2)
    per_replica = mirrored_strategy.run(tf.function(lambda x: mirrored(x)),
                                        (tf.constant(BATCH[:1]),))
    shapes = [t.shape for t in mirrored_strategy.experimental_local_results(per_replica)]
    assert shapes == [(1, 32, 32, 3)] * 2


def test_second_view_picks_the_reference_policy_and_trains_without_xla():
    small = make_augmenter("autoaugment", 10, 32, seed=0, normalization="cifar100")
    large = make_augmenter("autoaugment", 200, 64, seed=0)
    assert small.layer.policy == "cifar10" and large.layer.policy == "imagenet"
    x = (BATCH / 255.0 - 0.5) / 0.25
    model = TwoViewModel(small, 10)
    with pytest.warns(UserWarning, match="jit_compile=False"):
        model.compile(optimizer="sgd", jit_compile=True)
    history = model.fit(np.repeat(x, 8, 0).astype(np.float32), np.arange(16) % 10,
                        batch_size=8, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all() and float(model.change) > 0


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="policy='cifar100'.*cifar10"):
        AutoAugment("cifar100")
    with pytest.raises(ValueError, match="'Blur'"):
        AutoAugment([[("Blur", 0.5, 3)]])
    with pytest.raises(ValueError, match="bin None or 0-9.*12"):
        AutoAugment([[("Rotate", 0.5, 12)]])
    with pytest.raises(ValueError, match="same number of ops"):
        AutoAugment([[("Invert", 0.5, None)], [("Invert", 0.5, None), ("Equalize", 1, None)]])
    with pytest.raises(ValueError, match=r"value_range.*\(1, 0\)"):
        AutoAugment(value_range=(1, 0))
    with pytest.raises(ValueError, match=r"\(32, 3\)"):
        AutoAugment()(np.zeros((32, 3), np.float32))
    with pytest.raises(ValueError, match="op='Blur'"):
        apply_op(tf.constant(BATCH), "Blur", 0.0)
    assert isinstance(keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(AutoAugment(seed=0))), AutoAugment)

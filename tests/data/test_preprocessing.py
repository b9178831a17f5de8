"""The shared pipeline pieces: crop/flip against numpy, normalisation against
the formula, seeded determinism, fresh draws per epoch, argument errors."""

import numpy as np
import pytest
import tensorflow as tf

from r2kd_keras.data import preprocessing


def _windows(image, pad):
    """Every (offset, flip) output the reference's RandomCrop+flip can give."""
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    size = image.shape[0]
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            window = padded[dy:dy + size, dx:dx + size]
            yield (dy, dx, False), window
            yield (dy, dx, True), window[:, ::-1]


def test_pad_crop_flip_is_a_window_of_the_zero_padded_image():
    rng = np.random.default_rng(0)
    image = rng.integers(1, 256, (8, 8, 3)).astype(np.uint8)
    seen = set()
    for s in range(40):
        out = preprocessing.pad_crop_flip(tf.constant(image), 2, tf.constant([s, 7])).numpy()
        matches = [key for key, window in _windows(image, 2) if np.array_equal(out, window)]
        assert matches, f"seed {s}: output is no padded window of the input"
        seen.update(matches)
    offsets = {(dy, dx) for dy, dx, _ in seen}
    assert len(offsets) > 5 and {f for *_, f in seen} == {True, False}


def test_pad_zero_and_no_flip_is_identity():
    image = tf.constant(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    out = preprocessing.pad_crop_flip(image, 0, tf.constant([1, 2]), flip=False)
    np.testing.assert_array_equal(out.numpy(), image.numpy())


def test_normalize_matches_formula():
    image = np.array([[[0, 128, 255]]], np.uint8)
    mean, std = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)
    expected = (np.array([0, 128, 255]) / 255.0 - mean) / std
    out = preprocessing.normalize(tf.constant(image), preprocessing.resolve_normalization("cifar100"))
    np.testing.assert_allclose(out.numpy()[0, 0], expected, rtol=1e-5)


def test_reference_constants():
    # Values written in the reference (mdistiller cifar100.py / R2KD.py autoaug_data).
    assert preprocessing.NORMALIZATION["cifar100"] == (
        (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))
    assert preprocessing.NORMALIZATION["imagenet"] == (
        (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@pytest.mark.parametrize("bad, match", [
    ("svhn", "not known"), ((1, 2, 3), "mean, std"), (((0.5,) * 2, (0.5,) * 2), "3 channels"),
])
def test_resolve_normalization_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        preprocessing.resolve_normalization(bad, 3)


def _pipeline(seed, images, labels):
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    return preprocessing.build_pipeline(
        ds, training=True, batch_size=8, seed=seed, pad=4, normalization="cifar100",
        shuffle_buffer=64)


def _epoch(ds):
    return np.concatenate([x.numpy() for x, _ in ds])


def test_pipeline_seeded_fresh_per_epoch_and_labels_follow_images():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (32, 16, 16, 3)).astype(np.uint8)
    # The label is written into the image (pixel value), so a mismatch shows.
    labels = np.arange(32, dtype=np.int64)
    images[:, 6:10, 6:10, :] = labels[:, None, None, None] * 7
    ds = _pipeline(3, images, labels)
    first, second = _epoch(ds), _epoch(ds)
    assert not np.array_equal(first, second), "augmentation must change per epoch"
    np.testing.assert_array_equal(first, _epoch(_pipeline(3, images, labels)))
    assert not np.array_equal(first, _epoch(_pipeline(4, images, labels)))
    for x, y in ds:
        assert x.dtype == tf.float32 and y.dtype == tf.int32 and x.shape == (8, 16, 16, 3)
        raw = preprocessing.NORMALIZATION["cifar100"]
        pixels = (x.numpy() * raw[1] + raw[0]) * 255.0
        # The 4x4 marker survives any crop of <= 4 px: its centre stays inside.
        for image, label in zip(pixels, y.numpy()):
            assert np.any(np.all(np.abs(image - label * 7) < 0.5, axis=-1))


def test_drop_remainder_and_cache_files(tmp_path):
    ds = tf.data.Dataset.from_tensor_slices((np.zeros((10, 4, 4, 3), np.uint8), np.zeros(10)))
    train = preprocessing.build_pipeline(ds, training=True, batch_size=4,
                                         cache=tmp_path / "c")
    val = preprocessing.build_pipeline(ds, training=False, batch_size=4,
                                       cache=tmp_path / "c")
    assert [int(x.shape[0]) for x, _ in train] == [4, 4]
    assert [int(x.shape[0]) for x, _ in val] == [4, 4, 2]
    names = {p.name.split(".")[1] for p in tmp_path.iterdir()}
    assert names == {"train", "val"}


def test_bad_batch_size():
    ds = tf.data.Dataset.from_tensor_slices((np.zeros((2, 4, 4, 3), np.uint8), [0, 1]))
    with pytest.raises(ValueError, match="batch_size"):
        preprocessing.build_pipeline(ds, training=True, batch_size=0)

"""Fashion-MNIST from Debian's IDX files, checked against numpy and the
dataset's published facts (60k/10k images, 6,000/1,000 per class)."""

import functools
import gzip
import os
import time

import numpy as np
import pytest

from r2kd_keras.data import NORMALIZATION, fashion_mnist, idx

DEBIAN = "/usr/share/datasets/fashion-mnist"
pytestmark = pytest.mark.skipif(
    not os.path.isdir(DEBIAN), reason="apt-get install dataset-fashion-mnist")


@functools.lru_cache(maxsize=None)
def _raw(name):
    # Independent reader: skip the 16/8-byte headers of the IDX format.
    with gzip.open(os.path.join(DEBIAN, name)) as f:
        data = np.frombuffer(f.read(), np.uint8)
    return data[16:].reshape(-1, 28, 28) if "images" in name else data[8:]


def test_read_idx_shapes_and_class_balance():
    images = idx.read_idx(os.path.join(DEBIAN, "train-images-idx3-ubyte.gz"))
    labels = idx.read_idx(os.path.join(DEBIAN, "train-labels-idx1-ubyte.gz"))
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [6000] * 10
    test_labels = idx.read_idx(os.path.join(DEBIAN, "t10k-labels-idx1-ubyte.gz"))
    assert np.bincount(test_labels).tolist() == [1000] * 10
    np.testing.assert_array_equal(images[:50], _raw("train-images-idx3-ubyte.gz")[:50])


def test_normalisation_constants_are_the_training_set_statistics():
    pixels = _raw("train-images-idx3-ubyte.gz") / 255.0
    (mean,), (std,) = NORMALIZATION["fashion_mnist"]
    assert abs(pixels.mean() - mean) < 5e-4 and abs(pixels.std() - std) < 5e-4


def test_val_pipeline_is_padded_repeated_and_normalised():
    _, val_ds, info = fashion_mnist(image_size=32, channels=3, batch_size=16,
                                    val_batch_size=16)
    x, y = next(iter(val_ds))
    assert x.shape == (16, 32, 32, 3) and x.dtype.name == "float32" and y.dtype.name == "int32"
    raw = _raw("t10k-images-idx3-ubyte.gz")[:16]
    expected = (np.pad(raw, ((0, 0), (2, 2), (2, 2))) / 255.0 - 0.2860) / 0.3530
    np.testing.assert_allclose(x.numpy(), np.repeat(expected[..., None], 3, -1), atol=1e-5)
    np.testing.assert_array_equal(y.numpy(), _raw("t10k-labels-idx1-ubyte.gz")[:16])
    assert (info.num_classes, info.image_size, info.channels) == (10, 32, 3)
    assert (info.train_examples, info.val_examples) == (60000, 10000)
    # A known length: Keras's evaluate then ends without "ran out of data".
    assert int(val_ds.cardinality()) == 10000 // 16


def test_train_subset_is_seeded_and_labels_stay_with_images():
    def subset(seed):
        train_ds, _, info = fashion_mnist(train_subset=100, batch_size=100, seed=seed,
                                          pad=0, flip=False)
        x, y = next(iter(train_ds))
        return info, x.numpy(), y.numpy()

    info, x, y = subset(5)
    assert info.train_examples == 100
    _, x2, y2 = subset(5)
    np.testing.assert_array_equal(x, x2)
    assert not np.array_equal(y, subset(6)[2])
    # Every served (image, label) is a pair of the training files.
    raw_x, raw_y = _raw("train-images-idx3-ubyte.gz"), _raw("train-labels-idx1-ubyte.gz")
    served = np.round((x[..., 0] * 0.3530 + 0.2860) * 255).astype(np.uint8)
    lookup = {raw_x[i].tobytes(): raw_y[i] for i in range(len(raw_x))}
    assert all(lookup[img.tobytes()] == label for img, label in zip(served, y))


def test_missing_files_fail_fast(tmp_path):
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist") as err:
        fashion_mnist(data_dir=tmp_path)
    assert time.perf_counter() - start < 5
    assert str(tmp_path) in str(err.value)


def test_truncated_idx_file_is_a_clear_error(tmp_path):
    with gzip.open(os.path.join(DEBIAN, "t10k-labels-idx1-ubyte.gz")) as f:
        data = f.read()
    bad = tmp_path / "labels.gz"
    with gzip.open(bad, "wb") as f:
        f.write(data[:-10])
    with pytest.raises(ValueError, match="truncated"):
        idx.read_idx(str(bad))


@pytest.mark.parametrize("kwargs, match", [
    (dict(channels=2), "channels"), (dict(train_subset=0), "train_subset"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fashion_mnist(**kwargs)


def test_smaller_size_is_resized():
    _, val_ds, info = fashion_mnist(image_size=14, batch_size=4, val_batch_size=4)
    x, _ = next(iter(val_ds))
    assert x.shape == (4, 14, 14, 1) and info.image_size == 14
    raw = _raw("t10k-images-idx3-ubyte.gz")[0].astype(np.float32)
    # Halving with bilinear resize (half-pixel centres) averages 2x2 blocks.
    expected = raw.reshape(14, 2, 14, 2).mean((1, 3))
    served = x.numpy()[0, ..., 0] * 0.3530 * 255 + 0.2860 * 255
    assert np.abs(served - expected).max() <= 0.51


def test_arrays_are_the_raw_pixels_padded_and_scaled():
    x, y = idx.fashion_mnist_arrays("val", 7)
    raw = idx.read_idx(os.path.join(DEBIAN, "t10k-images-idx3-ubyte.gz"))[:7]
    labels = idx.read_idx(os.path.join(DEBIAN, "t10k-labels-idx1-ubyte.gz"))[:7]
    assert x.shape == (7, 32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 2:30, 2:30, 1], raw / np.float32(255))
    assert not x[:, :2].any() and not x[:, :, 30:].any()
    np.testing.assert_array_equal(x[..., 0], x[..., 2])
    np.testing.assert_array_equal(y, labels)

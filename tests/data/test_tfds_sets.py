"""tfds-backed loaders: absent data fails fast with a useful message; the
success path (served by `tfds.testing.mock_data`) yields normalised batches."""

import os
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from r2kd_keras.data import NORMALIZATION, cifar100, fgvr, imagenet, tfds_sets

MOCK = tfds.testing.MockPolicy.USE_CODE


@pytest.mark.parametrize("load, name, hint", [
    (cifar100, "cifar100", "cs.toronto.edu/~kriz/cifar.html"),
    (lambda **kw: fgvr("caltech_birds2011", **kw), "caltech_birds2011", "cub_200_2011"),
    (lambda **kw: fgvr("cars196", **kw), "cars196", "tfds build cars196"),
    (imagenet, "imagenet2012", "ILSVRC2012_img_train.tar"),
])
def test_absent_data_fails_fast(tmp_path, load, name, hint):
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as err:
        load(data_dir=str(tmp_path))
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert os.path.join(str(tmp_path), name) in message and hint in message


def test_imagenet_download_without_tars_fails_fast(tmp_path):
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="manual"):
        imagenet(data_dir=str(tmp_path), download=True)
    assert time.perf_counter() - start < 5


def test_default_data_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    assert tfds_sets.default_data_dir() == str(tmp_path)
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        cifar100()


def test_is_prepared_reads_the_tfds_layout(tmp_path):
    assert not tfds_sets.is_prepared("cars196", str(tmp_path))
    os.makedirs(tmp_path / "cars196" / "2.1.0")
    assert not tfds_sets.is_prepared("cars196", str(tmp_path))
    (tmp_path / "cars196" / "2.1.0" / "dataset_info.json").write_text("{}")
    assert tfds_sets.is_prepared("cars196", str(tmp_path))
    os.makedirs(tmp_path / "x" / "config" / "1.0.0")
    (tmp_path / "x" / "config" / "1.0.0" / "dataset_info.json").write_text("{}")
    assert tfds_sets.is_prepared("x", str(tmp_path))


def _assert_normalised_pixels(x, normalization):
    mean, std = NORMALIZATION[normalization]
    raw = (x * np.asarray(std) + np.asarray(mean)) * 255.0
    assert raw.min() > -1e-3 and raw.max() < 255 + 1e-3
    # Every value is a uint8 level, or a black padded pixel: nothing else.
    np.testing.assert_allclose(raw, np.round(raw), atol=2e-3)


def test_cifar100_pipeline_on_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=20, policy=MOCK):
        train_ds, val_ds, info = cifar100(data_dir=str(tmp_path), download=True,
                                          batch_size=8, seed=1)
        batches = [(x.numpy(), y.numpy()) for x, y in train_ds]
        x_val, y_val = next(iter(val_ds))
    assert (info.num_classes, info.image_size, info.train_examples) == (100, 32, 20)
    assert len(info.class_names) == 100
    assert [x.shape for x, _ in batches] == [(8, 32, 32, 3)] * 2  # drop_remainder
    assert all(x.dtype == np.float32 and y.dtype == np.int32 for x, y in batches)
    assert x_val.shape == (8, 32, 32, 3) and y_val.dtype.name == "int32"
    for x, _ in batches:
        _assert_normalised_pixels(x, "cifar100")
    _assert_normalised_pixels(x_val.numpy(), "cifar100")


def test_fgvr_and_imagenet_on_mock_data(tmp_path):
    # A prepared-dataset folder makes the loader go on with download=False.
    os.makedirs(tmp_path / "imagenet2012" / "5.1.0")
    (tmp_path / "imagenet2012" / "5.1.0" / "dataset_info.json").write_text("{}")
    with tfds.testing.mock_data(num_examples=6, policy=MOCK):
        train_ds, _, info = fgvr("stanford_dogs", data_dir=str(tmp_path), download=True,
                                 image_size=48, batch_size=3)
        x, y = next(iter(train_ds))
        assert info.num_classes == 120 and x.shape == (3, 48, 48, 3)
        _assert_normalised_pixels(x.numpy(), "imagenet")
        train_ds, val_ds, info = imagenet(data_dir=str(tmp_path), image_size=40, batch_size=2)
        x, y = next(iter(val_ds))
    assert info.num_classes == 1000 and x.shape == (2, 40, 40, 3)
    assert 0 <= y.numpy().min() and y.numpy().max() < 1000


def test_unknown_fgvr_name():
    with pytest.raises(ValueError, match="'cub'"):
        fgvr("cub")

"""`image_folder` on a class-per-folder tree of real images."""

import contextlib
import os
import time

import numpy as np
import pytest

from r2kd_keras.data import NORMALIZATION, image_folder
from tests.data import images as im

CLASSES = ["apple", "banana", "cherry"]


def _tree(root, per_class=4, size=(40, 50)):
    for label, name in enumerate(CLASSES):
        for k in range(per_class):
            image = np.full(size + (3,), im.COLOURS[label], np.uint8)
            image[:8, :8] = 10 + 20 * k  # makes every file of a class distinct
            im.write(os.path.join(root, name, f"{k}.jpg"), im.jpeg_bytes(image))
    im.write(os.path.join(root, "banana", "broken.jpg"), b"\x00" * 50)
    im.write(os.path.join(root, "banana", "readme.txt"), b"ignored: not an image name")
    return str(root)


def _served(ds):
    mean, std = NORMALIZATION["imagenet"]
    out = []
    for x, y in ds:
        for image, label in zip(im.unnormalize(x.numpy(), mean, std), y.numpy()):
            out.append((im.nearest_class(image[16, 16]), int(label)))
    return out


def test_split_labels_resize_and_warnings(tmp_path):
    root = _tree(tmp_path)
    with pytest.warns(UserWarning) as record:
        train_ds, val_ds, info = image_folder(root, val_fraction=0.25, image_size=32,
                                              batch_size=2, drop_remainder=False)
    messages = " ".join(str(w.message) for w in record)
    assert "skipped 1 of 13" in messages and "broken.jpg" in messages
    assert info.class_names == ["apple", "banana", "cherry"]
    assert info.num_classes == 3 and (info.train_examples, info.val_examples) == (9, 3)
    val = _served(val_ds)
    assert sorted(label for _, label in val) == [0, 1, 2]  # one per class
    train = _served(train_ds)
    assert len(train) == 9
    assert all(colour == label for colour, label in val + train)
    x, _ = next(iter(val_ds))
    assert x.shape[1:] == (32, 32, 3)


def test_split_is_seeded(tmp_path):
    root = _tree(tmp_path, per_class=10)

    def val_files(seed):
        with pytest.warns(UserWarning):
            _, val_ds, _ = image_folder(root, val_fraction=0.3, seed=seed, image_size=16)
        return np.concatenate([x.numpy() for x, _ in val_ds])

    np.testing.assert_array_equal(val_files(1), val_files(1))
    assert not np.array_equal(val_files(1), val_files(2))


def test_separate_val_dir_and_extra_class(tmp_path):
    train_root = _tree(tmp_path / "train")
    val_root = _one_image_per_class(tmp_path / "val", CLASSES)
    with pytest.warns(UserWarning):
        _, val_ds, info = image_folder(train_root, val_dir=val_root, image_size=32)
    assert info.val_examples == 3 and sorted(_served(val_ds)) == [(0, 0), (1, 1), (2, 2)]
    im.write(str(tmp_path / "val" / "durian" / "a.jpg"),
             im.jpeg_bytes(im.solid(im.COLOURS[3], 20)))
    with pytest.warns(UserWarning), pytest.raises(
            ValueError, match=r"only in val_dir: \['durian'\], only in data_dir: \[\]"):
        image_folder(train_root, val_dir=val_root)


def _one_image_per_class(root, classes):
    for label, name in enumerate(classes):
        im.write(os.path.join(root, name, "a.jpg"), im.jpeg_bytes(im.solid(im.COLOURS[label], 20)))
    return str(root)


def test_one_class_is_an_error(tmp_path):
    root = _one_image_per_class(tmp_path, ["apple"])
    with pytest.raises(ValueError, match=r"data_dir=.* has 1 class folder \('apple'\).*at least 2"):
        image_folder(root)


@pytest.mark.parametrize("bad", ["empty", "unreadable"])
def test_class_without_a_readable_image_is_an_error(tmp_path, bad):
    root = _one_image_per_class(tmp_path, ["apple", "banana"])
    if bad == "empty":
        os.makedirs(os.path.join(root, "cherry"))
    else:
        im.write(os.path.join(root, "cherry", "x.jpg"), b"\x00" * 50)
    with pytest.warns(UserWarning) if bad == "unreadable" else contextlib.nullcontext():
        with pytest.raises(ValueError, match=r"1 class folders hold no readable image: \['cherry'\]"):
            image_folder(root)


def test_class_served_by_val_fraction_alone_is_not_unreadable(tmp_path):
    # One image, a 60% hold-out: the image goes to val; still a readable class.
    root = _one_image_per_class(tmp_path, ["apple", "banana"])
    _, _, info = image_folder(root, val_fraction=0.6)
    assert (info.train_examples, info.val_examples) == (0, 2)


def test_val_dir_missing_a_class_is_an_error(tmp_path):
    train_root = _one_image_per_class(tmp_path / "train", ["apple", "banana", "cherry"])
    val_root = _one_image_per_class(tmp_path / "val", ["apple", "banana"])
    with pytest.raises(ValueError, match=r"only in val_dir: \[\], only in data_dir: \['cherry'\]"):
        image_folder(train_root, val_dir=val_root)


def test_val_dir_class_without_readable_image_is_an_error(tmp_path):
    train_root = _one_image_per_class(tmp_path / "train", ["apple", "banana"])
    val_root = _one_image_per_class(tmp_path / "val", ["apple"])
    os.makedirs(os.path.join(val_root, "banana"))
    with pytest.raises(ValueError, match=r"val_dir=.*\['banana'\]"):
        image_folder(train_root, val_dir=val_root)


def test_missing_folder_fails_fast(tmp_path):
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="nowhere"):
        image_folder(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="sub-folder"):
        image_folder(tmp_path)
    assert time.perf_counter() - start < 5


def test_bad_val_fraction(tmp_path):
    with pytest.raises(ValueError, match="val_fraction"):
        image_folder(tmp_path, val_fraction=1.5)

"""`image_folder` on a class-per-folder tree of real images."""

import contextlib
import io
import os
import time
import warnings

import numpy as np
import pytest
from PIL import Image

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


def _encoded(colour, image_format, size=20):
    buffer = io.BytesIO()
    Image.fromarray(im.solid(colour, size)).save(buffer, format=image_format)
    return buffer.getvalue()


def _ignored_warnings(record):
    return [str(w.message) for w in record
            if "ignores these entries" in str(w.message)]


def test_unread_files_and_sub_folders_are_counted_in_one_warning(tmp_path):
    root = _tree(tmp_path)
    kwargs = dict(val_fraction=0.25, image_size=32, batch_size=2, drop_remainder=False)
    with pytest.warns(UserWarning):
        _, val_before, info_before = image_folder(root, **kwargs)
    # Real images of a colour no class has, in files and places that are not read.
    yellow = im.COLOURS[3]
    im.write(os.path.join(root, "banana", "photo.webp"), _encoded(yellow, "WEBP"))
    im.write(os.path.join(root, "banana", "notes.txt"), b"shot on a phone")
    im.write(os.path.join(root, "banana", "album", "nested.png"),
             _encoded(yellow, "PNG"))
    im.write(os.path.join(root, "apple", ".DS_Store"), b"\x00\x00\x00\x01Bud1")

    with pytest.warns(UserWarning) as record:
        train_ds, val_ds, info = image_folder(root, **kwargs)

    [message] = _ignored_warnings(record)
    assert f"data_dir={root!r}: 3 file(s) (2 .txt, 1 .webp; e.g. " in message
    assert os.path.join("banana", "photo.webp") in message
    assert os.path.join("banana", "notes.txt") in message
    assert f"1 sub-folder(s) (e.g. {os.path.join('banana', 'album')}{os.sep})" in message
    assert ".jpeg, .jpg, .png, .gif, .bmp" in message
    assert ".DS_Store" not in message
    assert (info.train_examples, info.val_examples) == (
        info_before.train_examples, info_before.val_examples) == (9, 3)
    np.testing.assert_array_equal(np.concatenate([x.numpy() for x, _ in val_ds]),
                                  np.concatenate([x.numpy() for x, _ in val_before]))
    served = _served(train_ds) + _served(val_ds)
    assert len(served) == 12 and all(colour == label for colour, label in served)


def test_one_warning_names_the_unread_entries_of_both_folders(tmp_path):
    train_root = _one_image_per_class(tmp_path / "train", CLASSES)
    val_root = _one_image_per_class(tmp_path / "val", CLASSES)
    im.write(os.path.join(train_root, "apple", "IMG_0001.HEIC"), b"not decoded")
    im.write(os.path.join(train_root, "cherry", "README"), b"no extension")
    im.write(os.path.join(val_root, "cherry", "more", "b.jpg"),
             im.jpeg_bytes(im.solid(im.COLOURS[2], 20)))
    with pytest.warns(UserWarning) as record:
        _, _, info = image_folder(train_root, val_dir=val_root)
    [message] = _ignored_warnings(record)
    assert (f"data_dir={train_root!r}: 2 file(s) (1 .heic, 1 without extension; "
            f"e.g. {os.path.join('apple', 'IMG_0001.HEIC')}, "
            f"{os.path.join('cherry', 'README')}); ") in message
    assert f"val_dir={val_root!r}: 1 sub-folder(s) (e.g. " in message
    assert (info.train_examples, info.val_examples) == (3, 3)


def test_separate_val_dir_and_extra_class(tmp_path):
    train_root = _tree(tmp_path / "train")
    val_root = _one_image_per_class(tmp_path / "val", CLASSES)
    with pytest.warns(UserWarning):
        _, val_ds, info = image_folder(train_root, val_dir=val_root, image_size=32)
    assert info.val_examples == 3 and sorted(_served(val_ds)) == [(0, 0), (1, 1), (2, 2)]
    im.write(str(tmp_path / "val" / "durian" / "a.jpg"),
             im.jpeg_bytes(im.solid(im.COLOURS[3], 20)))
    # Raised before any file is scanned, so no warning comes first.
    with warnings.catch_warnings(record=True) as caught, pytest.raises(
            ValueError, match=r"only in val_dir: \['durian'\], only in data_dir: \[\]"):
        warnings.simplefilter("always")
        image_folder(train_root, val_dir=val_root)
    assert caught == []


def _one_image_per_class(root, classes):
    for label, name in enumerate(classes):
        im.write(os.path.join(root, name, "a.jpg"), im.jpeg_bytes(im.solid(im.COLOURS[label], 20)))
    return str(root)


def test_one_class_is_an_error(tmp_path):
    root = _one_image_per_class(tmp_path, ["apple"])
    with pytest.raises(ValueError, match=r"data_dir=.* has 1 class folder \('apple'\).*at least 2"):
        image_folder(root)


@pytest.mark.parametrize("bad, warning", [
    ("empty", None), ("unreadable", "not readable images"), ("webp", "1 .webp")])
def test_class_without_a_readable_image_is_an_error(tmp_path, bad, warning):
    root = _one_image_per_class(tmp_path, ["apple", "banana"])
    if bad == "empty":
        os.makedirs(os.path.join(root, "cherry"))
    elif bad == "unreadable":
        im.write(os.path.join(root, "cherry", "x.jpg"), b"\x00" * 50)
    else:
        im.write(os.path.join(root, "cherry", "x.webp"), _encoded(im.COLOURS[2], "WEBP"))
    with pytest.warns(UserWarning, match=warning) if warning else contextlib.nullcontext():
        with pytest.raises(ValueError,
                           match=r"1 class folders hold no readable image: \['cherry'\]"):
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

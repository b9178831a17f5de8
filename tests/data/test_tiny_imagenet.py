"""TinyImageNet from a miniature `tiny-imagenet-200/` tree of real JPEG files,
including the bad files users meet."""

import os
import time

import numpy as np
import pytest
from PIL import Image

from r2kd_keras.data import NORMALIZATION, _files, tiny_imagenet
from tests.data import images as im

# wnids.txt lists them unsorted; labels follow sorted order (torchvision ImageFolder).
WNIDS = ["n003", "n001", "n002", "n004"]  # n004: a class with no images


def _tree(root, annotations=None):
    base = os.path.join(root, "tiny-imagenet-200")
    im.write(os.path.join(base, "wnids.txt"), "\n".join(WNIDS).encode() + b"\n")
    im.write(os.path.join(base, "words.txt"), b"n001\tred thing\nn002\tgreen thing\n")
    for label, wnid in enumerate(sorted(WNIDS)[:3]):
        folder = os.path.join(base, "train", wnid, "images")
        for k in range(3):
            im.write(os.path.join(folder, f"{wnid}_{k}.JPEG"), im.jpeg_bytes(im.solid(im.COLOURS[label])))
    os.makedirs(os.path.join(base, "train", "n004", "images"))
    bad = os.path.join(base, "train", "n001", "images")
    im.write(os.path.join(bad, "grey.JPEG"), im.grey_jpeg(128))
    im.write(os.path.join(bad, "cmyk.JPEG"), im.cmyk_jpeg())
    im.write(os.path.join(bad, "garbage.JPEG"), os.urandom(300))
    im.write(os.path.join(bad, "notes.JPEG"), b"not an image\n")
    im.write(os.path.join(base, "train", "n002", "images", "cut.JPEG"), im.truncated_jpeg(im.COLOURS[1]))
    # A PNG of another size, named .JPEG: decoded by content and resized.
    png = os.path.join(base, "train", "n003", "images", "big.JPEG")
    os.makedirs(os.path.dirname(png), exist_ok=True)
    Image.fromarray(im.solid(im.COLOURS[2], 80)).save(png, format="PNG")
    val = [("v0.JPEG", "n001", im.COLOURS[0]), ("v1.JPEG", "n002", im.COLOURS[1]),
           ("v2.JPEG", "n003", im.COLOURS[2]), ("v3.JPEG", "n001", im.COLOURS[0])]
    for name, _, colour in val:
        im.write(os.path.join(base, "val", "images", name), im.jpeg_bytes(im.solid(colour)))
    lines = annotations or [f"{n}\t{w}\t0\t0\t63\t63" for n, w, _ in val]
    im.write(os.path.join(base, "val", "val_annotations.txt"), "\n".join(lines).encode())
    return base


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    root = tmp_path_factory.mktemp("tin")
    _tree(str(root))
    with pytest.warns(UserWarning) as record:
        result = tiny_imagenet(root, batch_size=4, seed=1, drop_remainder=False)
    return root, result, [str(w.message) for w in record]


def test_info_counts_and_warnings(loaded):
    _, (_, _, info), messages = loaded
    assert info.num_classes == 4 and info.image_size == 64
    # 3+2 (n001: grey, cmyk kept) + 3+1 (n002: truncated passes the scan) + 3+1 (n003).
    assert info.train_examples == 13 and info.val_examples == 4
    assert sorted(os.path.basename(p) for p in info.skipped_files) == ["garbage.JPEG", "notes.JPEG"]
    assert info.class_names == ["red thing", "green thing", "n003", "n004"]
    assert any("skipped 2 of 15" in m for m in messages)
    assert any("no training images" in m and "n004" in m for m in messages)


def test_val_labels_match_image_colours(loaded):
    _, (_, val_ds, _), _ = loaded
    mean, std = NORMALIZATION["imagenet"]
    labels, classes = [], []
    for x, y in val_ds:
        assert x.shape[1:] == (64, 64, 3) and x.dtype.name == "float32"
        pixels = im.unnormalize(x.numpy(), mean, std)
        classes += [im.nearest_class(p[32, 32]) for p in pixels]
        labels += y.numpy().tolist()
    assert labels == [0, 1, 2, 0] and classes == labels


def test_train_epoch_drops_truncated_file_and_keeps_labels(loaded):
    _, (train_ds, _, _), _ = loaded
    mean, std = NORMALIZATION["imagenet"]
    served, coloured, padded = 0, 0, 0
    for x, y in train_ds:
        for image, label in zip(im.unnormalize(x.numpy(), mean, std), y.numpy()):
            served += 1
            centre = image[32, 32]
            if min(np.abs(np.asarray(c) - centre).sum() for c in im.COLOURS) < 40:
                coloured += 1
                assert im.nearest_class(centre) == label
            padded += any(np.all(edge < 1) for edge in (image[0], image[-1], image[:, 0], image[:, -1]))
    assert served == 12  # the truncated JPEG is dropped by the pipeline
    assert coloured == 3 + 3 + 4  # solid images; grey and CMYK ones are not
    assert padded > 0  # pad-and-random-crop brought black borders in


def test_grey_and_cmyk_become_rgb(tmp_path):
    decode = _files.decoder(64)
    grey, cmyk = tmp_path / "g.jpg", tmp_path / "c.jpg"
    grey.write_bytes(im.grey_jpeg(100))
    cmyk.write_bytes(im.cmyk_jpeg())
    g, _ = decode(str(grey), 0)
    assert g.shape == (64, 64, 3) and np.abs(g.numpy().astype(int) - 100).max() <= 2
    c, _ = decode(str(cmyk), 0)
    reference = np.asarray(Image.open(cmyk).convert("RGB")).astype(int)
    assert np.abs(c.numpy().astype(int) - reference).mean() < 2


def test_unknown_val_class_is_a_clear_error(tmp_path):
    _tree(str(tmp_path), annotations=["v0.JPEG\tn001\t0\t0\t1\t1", "v1.JPEG\tn999\t0\t0\t1\t1"])
    with pytest.raises(ValueError, match=r"val_annotations.txt has 1 lines.*line 2"):
        tiny_imagenet(tmp_path)


def test_missing_tree_fails_fast(tmp_path):
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="tiny-imagenet-200.zip") as err:
        tiny_imagenet(tmp_path)
    assert time.perf_counter() - start < 5 and str(tmp_path) in str(err.value)


def test_val_tree_reorganised_per_class(tmp_path):
    base = _tree(str(tmp_path))
    os.remove(os.path.join(base, "val", "val_annotations.txt"))
    im.write(os.path.join(base, "val", "n002", "images", "x.JPEG"), im.jpeg_bytes(im.solid(im.COLOURS[1])))
    with pytest.warns(UserWarning):
        _, val_ds, info = tiny_imagenet(base, batch_size=2)
    assert info.val_examples == 1
    assert [y.numpy().tolist() for _, y in val_ds] == [[1]]

"""TinyImageNet from the `tiny-imagenet-200/` tree as users unzip it."""

import os
import warnings

from r2kd_keras.data import _files

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


def _find_root(data_dir):
    for root in (data_dir, os.path.join(data_dir, "tiny-imagenet-200")):
        if os.path.isfile(os.path.join(root, "wnids.txt")):
            return root
    raise _files.missing(
        "TinyImageNet (wnids.txt)",
        f"{data_dir!r} and {os.path.join(data_dir, 'tiny-imagenet-200')!r}",
        f"Download {URL} (about 240 MB) and unzip it, e.g. "
        f"`wget {URL} && unzip tiny-imagenet-200.zip -d {data_dir}`, then pass "
        "data_dir=<folder containing tiny-imagenet-200/ or the folder itself>.",
    )


def _read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def _class_images(split_dir, wnid):
    # The official train tree nests images/ under each class; val trees
    # re-organised per class (as the reference's ImageFolder expects) may not.
    nested = _files.list_images(os.path.join(split_dir, wnid, "images"))
    return nested or _files.list_images(os.path.join(split_dir, wnid))


def _train_files(root, wnids):
    paths, labels, empty = [], [], []
    for label, wnid in enumerate(wnids):
        files = _class_images(os.path.join(root, "train"), wnid)
        if not files:
            empty.append(wnid)
        paths += files
        labels += [label] * len(files)
    if empty:
        warnings.warn(
            f"tiny_imagenet: {len(empty)} classes of wnids.txt have no training "
            f"images (first: {empty[0]}); their labels are kept but never served.",
            stacklevel=3,
        )
    return paths, labels


def _val_files(root, wnids):
    index = {wnid: i for i, wnid in enumerate(wnids)}
    val_dir = os.path.join(root, "val")
    annotations = os.path.join(val_dir, "val_annotations.txt")
    if not os.path.isfile(annotations):
        paths, labels = [], []
        for wnid in wnids:
            files = _class_images(val_dir, wnid)
            paths += files
            labels += [index[wnid]] * len(files)
        return paths, labels
    paths, labels, unknown = [], [], []
    for number, line in enumerate(_read_lines(annotations), start=1):
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            unknown.append(f"line {number}: {line[:80]!r}")
            continue
        paths.append(os.path.join(val_dir, "images", fields[0]))
        labels.append(index[fields[1]])
    if unknown:
        raise ValueError(
            f"{annotations} has {len(unknown)} lines whose class is not in "
            f"wnids.txt or that lack the tab-separated 'file<TAB>wnid' fields "
            f"(first: {unknown[0]}). The val annotations and wnids.txt come from "
            "different trees: unzip the official archive again."
        )
    return paths, labels


def _class_names(root, wnids):
    words = os.path.join(root, "words.txt")
    if not os.path.isfile(words):
        return list(wnids)
    names = dict(line.split("\t", 1) for line in _read_lines(words) if "\t" in line)
    return [names.get(wnid, wnid) for wnid in wnids]


def tiny_imagenet(
    data_dir,
    batch_size=64,
    seed=42,
    image_size=64,
    cache=False,
    drop_remainder=True,
    val_batch_size=None,
    normalization="imagenet",
    shuffle_buffer=10_000,
):
    """TinyImageNet train/val pipelines with the reference's augmentation.

    Labels are the index of the class's wnid in sorted order, as torchvision's
    `ImageFolder` (used by the reference) assigns them; the class count is the
    number of lines of `wnids.txt` (200 for the real tree). Files that are not
    images are skipped with a warning; grey and CMYK JPEGs are converted to RGB.

    Args:
        data_dir: the `tiny-imagenet-200` folder or the folder containing it.
        batch_size: training batch size (global batch under `tf.distribute`).
        seed: seed of the shuffle and of the crops/flips.
        image_size: served image size; 64 is native, other sizes are resized.
        cache: `False`, `True` (memory, ~1.2 GB for the 100k decoded training
            images) or a file path.
        drop_remainder: drop the last partial training batch.
        val_batch_size: validation batch size; defaults to `batch_size`.
        normalization: see `preprocessing.resolve_normalization`.
        shuffle_buffer: shuffle buffer size.

    Returns:
        `(train_ds, val_ds, info)`: batched `(float32 images, int32 labels)`
        datasets and a `DatasetInfo`.

    Example:
    ```python
    train_ds, val_ds, info = tiny_imagenet("~/data/tiny-imagenet-200")
    assert info.num_classes == 200
    ```
    """
    root = _find_root(os.path.expanduser(str(data_dir)))
    wnids = sorted(set(_read_lines(os.path.join(root, "wnids.txt"))))
    train = _files.scan(*_train_files(root, wnids), "tiny_imagenet train")
    val = _files.scan(*_val_files(root, wnids), "tiny_imagenet val")
    if not train[0]:
        raise _files.missing(
            "TinyImageNet training images", os.path.join(root, "train"),
            f"The tree is incomplete: unzip {URL} again.",
        )
    return _files.file_pipelines(
        "tiny_imagenet", train, val, _class_names(root, wnids), image_size,
        batch_size=batch_size, seed=seed, pad=image_size // 8,
        drop_remainder=drop_remainder, shuffle_buffer=shuffle_buffer,
        val_batch_size=val_batch_size, normalization=normalization, cache=cache,
    )

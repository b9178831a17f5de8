"""A user's own images, one folder per class."""

import os
import random
import warnings

from r2kd_keras.data import _files


def _class_folders(data_dir):
    if not os.path.isdir(data_dir):
        raise _files.missing(
            "Image folder", repr(data_dir),
            "Pass data_dir=<folder with one sub-folder of images per class>.",
        )
    classes = sorted(
        name for name in os.listdir(data_dir)
        if os.path.isdir(os.path.join(data_dir, name)) and not name.startswith(".")
    )
    if not classes:
        raise _files.missing(
            "Class sub-folders", repr(data_dir),
            "Put each class's images in its own sub-folder: data_dir/<class>/*.jpg.",
        )
    return classes


def _files_per_class(data_dir, classes):
    per_class = [_files.list_images(os.path.join(data_dir, c)) for c in classes]
    empty = [c for c, files in zip(classes, per_class) if not files]
    if empty:
        warnings.warn(
            f"image_folder: {len(empty)} class folders of {data_dir!r} hold no "
            f"images (first: {empty[0]!r}); their labels are kept but never served.",
            stacklevel=3,
        )
    return per_class


def _flatten(per_class):
    paths = [p for files in per_class for p in files]
    labels = [label for label, files in enumerate(per_class) for _ in files]
    return paths, labels


def _split(per_class, val_fraction, seed):
    # Per class, so every class keeps the same share in both splits.
    rng = random.Random(seed)
    train, val = [], []
    for files in per_class:
        files = list(files)
        rng.shuffle(files)
        n_val = int(round(len(files) * val_fraction))
        val.append(sorted(files[:n_val]))
        train.append(sorted(files[n_val:]))
    return train, val


def image_folder(
    data_dir,
    val_dir=None,
    val_fraction=0.2,
    batch_size=64,
    seed=42,
    image_size=64,
    pad=None,
    cache=False,
    drop_remainder=True,
    val_batch_size=None,
    normalization="imagenet",
    shuffle_buffer=10_000,
):
    """Train/val pipelines over `data_dir/<class>/<image>` files.

    Classes are the sub-folder names in sorted order. The validation split is
    either `val_dir` (same class sub-folders) or a seeded, per-class
    `val_fraction` of `data_dir`. Images of any size are resized to
    `image_size`; grey, CMYK and RGBA images become RGB; files that are not
    images are skipped with a warning.

    Args:
        data_dir: folder of class sub-folders.
        val_dir: optional separate validation folder with the same classes.
        val_fraction: share of each class held out when `val_dir` is `None`.
        batch_size: training batch size.
        seed: seed of the split, the shuffle and the crops/flips.
        image_size: served image size.
        pad: pad-and-random-crop padding; defaults to `image_size // 8`.
        cache: `False`, `True` (memory) or a file path prefix.
        drop_remainder: drop the last partial training batch.
        val_batch_size: validation batch size; defaults to `batch_size`.
        normalization: see `preprocessing.resolve_normalization`.
        shuffle_buffer: shuffle buffer size.

    Returns:
        `(train_ds, val_ds, info)`.

    Example:
    ```python
    train_ds, val_ds, info = image_folder("photos/", image_size=64, val_fraction=0.1)
    ```
    """
    data_dir = os.path.expanduser(str(data_dir))
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}.")
    classes = _class_folders(data_dir)
    per_class = _files_per_class(data_dir, classes)
    if val_dir is None:
        train_per_class, val_per_class = _split(per_class, val_fraction, seed)
    else:
        val_dir = os.path.expanduser(str(val_dir))
        val_classes = _class_folders(val_dir)
        unknown = sorted(set(val_classes) - set(classes))
        if unknown:
            raise ValueError(
                f"val_dir={val_dir!r} has class folders absent from "
                f"data_dir={data_dir!r}: {unknown[:5]}. Both must use the same "
                "class names."
            )
        train_per_class = per_class
        val_per_class = [
            _files.list_images(os.path.join(val_dir, c)) for c in classes
        ]
    train = _files.scan(*_flatten(train_per_class), "image_folder train")
    val = _files.scan(*_flatten(val_per_class), "image_folder val")
    if not train[0]:
        raise _files.missing(
            "Training images", repr(data_dir),
            f"Supported files: {', '.join(_files.IMAGE_EXTENSIONS)}.",
        )
    return _files.file_pipelines(
        os.path.basename(os.path.normpath(data_dir)), train, val, classes,
        image_size, batch_size=batch_size, seed=seed,
        pad=image_size // 8 if pad is None else pad, drop_remainder=drop_remainder,
        shuffle_buffer=shuffle_buffer, val_batch_size=val_batch_size,
        normalization=normalization, cache=cache,
    )

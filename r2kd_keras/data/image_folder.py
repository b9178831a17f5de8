"""A user's own images, one folder per class."""

import collections
import os
import random
import warnings

from r2kd_keras.data import _files

# Ignored entries the warning names per folder: enough to find the rest, too
# few to flood the console.
_EXAMPLES = 3


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


def _listed(folder, classes):
    """Per class, the paths with an image extension; and `(other_files,
    sub_folders)` of all the class folders, as `class/name` paths."""
    per_class, other_files, sub_folders = [], [], []
    for c in classes:
        images, files, folders = _files.list_entries(os.path.join(folder, c))
        per_class.append(images)
        other_files += [os.path.relpath(path, folder) for path in files]
        sub_folders += [os.path.relpath(path, folder) for path in folders]
    return per_class, (other_files, sub_folders)


def _extension(path):
    return os.path.splitext(path)[1].lower() or "without extension"


def _warn_ignored(folders, ignored):
    """One warning for all the files and sub-folders of the class folders that
    are not read: users expect a .webp, .heic or .tif photo, or a nested album,
    to be trained on, and would otherwise never learn it was not."""
    parts = []
    for flag, (other_files, sub_folders) in ignored.items():
        found = []
        if other_files:
            counts = collections.Counter(_extension(path) for path in other_files)
            by_extension = ", ".join(
                f"{n} {extension}" for extension, n in
                sorted(counts.items(), key=lambda item: (-item[1], item[0])))
            found.append(f"{len(other_files)} file(s) ({by_extension}; e.g. "
                         f"{', '.join(other_files[:_EXAMPLES])})")
        if sub_folders:
            examples = ", ".join(path + os.sep for path in sub_folders[:_EXAMPLES])
            found.append(f"{len(sub_folders)} sub-folder(s) (e.g. {examples})")
        if found:
            parts.append(f"{flag}={folders[flag]!r}: {' and '.join(found)}")
    if parts:
        warnings.warn(
            "image_folder ignores these entries of the class folders: "
            f"{'; '.join(parts)}. "
            "Only the files directly in a class folder with the extensions "
            f"{', '.join(_files.IMAGE_EXTENSIONS)} (any case) are read; convert "
            "other images to JPEG or PNG and move images out of sub-folders into "
            "their class folder to train on them.",
            stacklevel=3,
        )


def _readable(folder, classes, listed, flag):
    """Per class, the `listed` files that pass the image scan (checked before
    any split, so a held-out share never hides an unreadable class); and the
    skipped ones."""
    paths, labels, skipped = _files.scan(*_flatten(listed), f"image_folder {flag}")
    per_class = [[] for _ in classes]
    for path, label in zip(paths, labels):
        per_class[label].append(path)
    unreadable = [c for c, files in zip(classes, per_class) if not files]
    if unreadable:
        raise ValueError(
            f"{flag}={folder!r}: {len(unreadable)} class folders hold no readable "
            f"image: {unreadable[:5]}. Add .jpg/.png images to them or remove them "
            f"(supported: {', '.join(_files.IMAGE_EXTENSIONS)})."
        )
    return per_class, skipped


def _check_classes(data_dir, classes):
    if len(classes) < 2:
        raise ValueError(
            f"data_dir={data_dir!r} has {len(classes)} class folder ({classes[0]!r}); "
            "a classifier needs at least 2. Put each class's images in its own "
            "sub-folder: data_dir/<class>/*.jpg."
        )


def _check_same_classes(data_dir, classes, val_dir, val_classes):
    if val_classes != classes:
        only_val = sorted(set(val_classes) - set(classes))
        only_train = sorted(set(classes) - set(val_classes))
        raise ValueError(
            f"val_dir={val_dir!r} and data_dir={data_dir!r} must have the same class "
            f"folders; only in val_dir: {only_val[:5]}, only in data_dir: "
            f"{only_train[:5]}."
        )


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
    `val_fraction` of `data_dir`. Read are the files directly in a class
    folder whose name ends with `.jpeg`, `.jpg`, `.png`, `.gif` or `.bmp` (any
    case); one warning counts the other files (by extension) and the
    sub-folders, which are not read, hidden names such as `.DS_Store` aside.
    Images of any size are resized to `image_size`; grey, CMYK and RGBA images
    become RGB; files with an image name that do not start like an image are
    skipped with a warning that counts them. Checked before any image is
    decoded: at least 2 classes, the same class folders in `val_dir`, and a
    readable image in every class folder.

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

    Raises:
        FileNotFoundError: no such folder, or no class sub-folders.
        ValueError: one class only, a class without a readable image, or
            `val_dir` classes that differ from `data_dir`'s.

    Example:
    ```python
    train_ds, val_ds, info = image_folder("photos/", image_size=64, val_fraction=0.1)
    ```
    """
    data_dir = os.path.expanduser(str(data_dir))
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}.")
    classes = _class_folders(data_dir)
    _check_classes(data_dir, classes)
    folders = {"data_dir": data_dir}
    if val_dir is not None:
        val_dir = os.path.expanduser(str(val_dir))
        _check_same_classes(data_dir, classes, val_dir, _class_folders(val_dir))
        folders["val_dir"] = val_dir
    images, ignored = {}, {}
    for flag, folder in folders.items():
        images[flag], ignored[flag] = _listed(folder, classes)
    _warn_ignored(folders, ignored)
    per_class, skipped = _readable(data_dir, classes, images["data_dir"], "data_dir")
    if val_dir is None:
        train_per_class, val_per_class = _split(per_class, val_fraction, seed)
        val_skipped = []
    else:
        train_per_class = per_class
        val_per_class, val_skipped = _readable(val_dir, classes, images["val_dir"],
                                               "val_dir")
    train = (*_flatten(train_per_class), skipped)
    val = (*_flatten(val_per_class), val_skipped)
    return _files.file_pipelines(
        os.path.basename(os.path.normpath(data_dir)), train, val, classes,
        image_size, batch_size=batch_size, seed=seed,
        pad=image_size // 8 if pad is None else pad, drop_remainder=drop_remainder,
        shuffle_buffer=shuffle_buffer, val_batch_size=val_batch_size,
        normalization=normalization, cache=cache,
    )

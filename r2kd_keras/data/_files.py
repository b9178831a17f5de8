"""Image files on disk: the load-time validation scan and the decode step shared
by `tiny_imagenet` and `image_folder`."""

import os
import warnings

import tensorflow as tf

from r2kd_keras.data.preprocessing import DatasetInfo
from r2kd_keras.data.preprocessing import build_pipeline
from r2kd_keras.data.preprocessing import resize_uint8
from r2kd_keras.data.preprocessing import resolve_normalization

# First bytes of the formats `tf.io.decode_image` reads.
_MAGIC = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",  # PNG
    b"GIF87a",
    b"GIF89a",
    b"BM",  # BMP
)
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".gif", ".bmp")


def list_entries(directory):
    """Sorts the entries of `directory` (not recursive) into the files an image
    loader reads and the ones it ignores.

    Hidden entries (`.DS_Store`, `.ipynb_checkpoints`) are neither read nor
    counted as ignored, unless their name has an image extension.

    Args:
        directory: a folder; a missing one has no entries.

    Returns:
        `(images, other_files, sub_folders)`: sorted paths of the entries whose
        name ends with one of `IMAGE_EXTENSIONS` (any case), of the other
        files, and of the other folders.

    Example:
    ```python
    images, other_files, sub_folders = list_entries("photos/cat")
    ```
    """
    if not os.path.isdir(directory):
        return [], [], []
    images, other_files, sub_folders = [], [], []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.lower().endswith(IMAGE_EXTENSIONS):
            images.append(path)
        elif name.startswith("."):
            continue
        elif os.path.isdir(path):
            sub_folders.append(path)
        else:
            other_files.append(path)
    return images, other_files, sub_folders


def list_images(directory):
    """Sorted paths of the files with an image extension in `directory` (not
    recursive); `[]` when the directory does not exist."""
    return list_entries(directory)[0]


def scan(paths, labels, dataset_name):
    """Drops files that are empty or do not start with an image signature.

    Reading a few bytes per file keeps the scan fast (about 100k files/s from a
    warm cache); truncated files that pass it are dropped by the pipeline's
    `ignore_errors` safety net instead of stopping training.

    Returns:
        `(paths, labels, skipped)`; a warning counts the skipped files.
    """
    kept_paths, kept_labels, skipped = [], [], []
    for path, label in zip(paths, labels):
        try:
            with open(path, "rb") as f:
                head = f.read(8)
        except OSError:
            head = b""
        if head.startswith(_MAGIC):
            kept_paths.append(path)
            kept_labels.append(label)
        else:
            skipped.append(path)
    if skipped:
        warnings.warn(
            f"{dataset_name}: skipped {len(skipped)} of {len(paths)} files that are "
            f"not readable images (first: {skipped[0]}).",
            stacklevel=3,
        )
    return kept_paths, kept_labels, skipped


def decoder(image_size):
    """Returns `(path, label) -> (uint8 (image_size, image_size, 3), label)`.

    `decode_image(channels=3)` turns grey, CMYK and RGBA files into RGB; images
    of another size are resized (bilinear) so batches always stack.
    """

    def decode(path, label):
        image = tf.io.decode_image(
            tf.io.read_file(path), channels=3, expand_animations=False
        )
        size = tf.shape(image)[:2]
        image = tf.cond(
            tf.reduce_all(size == image_size),
            lambda: image,
            lambda: resize_uint8(image, image_size),
        )
        image.set_shape((image_size, image_size, 3))
        return image, label

    return decode


def files_dataset(paths, labels):
    """`(path, int32 label)` dataset, to be decoded by `decoder`."""
    return tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, tf.string), tf.constant(labels, tf.int32))
    )


def missing(what, looked, how):
    """The `FileNotFoundError` every loader raises when its data is absent."""
    return FileNotFoundError(f"{what} not found; looked in: {looked}. {how}")


def file_pipelines(name, train, val, class_names, image_size, *, batch_size, seed,
                   pad, drop_remainder, shuffle_buffer, val_batch_size,
                   normalization, cache):
    """`(train_ds, val_ds, info)` from scanned `(paths, labels, skipped)` splits.

    The one assembly step of the file-based loaders, so they differ only in
    how they find their files.
    """
    (train_paths, train_labels, train_bad), (val_paths, val_labels, val_bad) = train, val
    common = dict(seed=seed, normalization=normalization,
                  decode_fn=decoder(image_size), cache=cache)
    train_ds = build_pipeline(
        files_dataset(train_paths, train_labels), training=True,
        batch_size=batch_size, pad=pad, drop_remainder=drop_remainder,
        shuffle_buffer=shuffle_buffer, **common,
    )
    val_ds = build_pipeline(
        files_dataset(val_paths, val_labels), training=False,
        batch_size=val_batch_size or batch_size, **common,
    )
    info = DatasetInfo(
        name=name,
        num_classes=len(class_names),
        image_size=image_size,
        channels=3,
        train_examples=len(train_paths),
        val_examples=len(val_paths),
        class_names=list(class_names),
        normalization=resolve_normalization(normalization),
        skipped_files=train_bad + val_bad,
    )
    return train_ds, val_ds, info

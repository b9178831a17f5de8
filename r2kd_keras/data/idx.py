"""Fashion-MNIST from its four IDX `.gz` files (offline: Debian's
`dataset-fashion-mnist` package installs them)."""

import gzip
import os

import numpy as np
import tensorflow as tf

from r2kd_keras.data import _files
from r2kd_keras.data.label_noise import symmetric_label_noise
from r2kd_keras.data.preprocessing import (
    DatasetInfo,
    build_pipeline,
    resize_uint8,
    resolve_normalization,
)

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
URL = "https://github.com/zalandoresearch/fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "val": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


def read_idx(path):
    """Reads an IDX file (gzip-compressed or not) into a numpy array.

    Args:
        path: path of an IDX file of unsigned bytes (`ubyte`), e.g.
            `train-images-idx3-ubyte.gz`.

    Returns:
        uint8 array of the shape written in the file header.

    Example:
    ```python
    labels = read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
    ```
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    # Header: two zero bytes, a type code (0x08 = unsigned byte), the number of
    # dimensions, then one big-endian uint32 per dimension.
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path!r} is not an IDX file of unsigned bytes.")
    ndim = data[3]
    shape = tuple(np.frombuffer(data, ">u4", count=ndim, offset=4).astype(int))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(shape)):
        raise ValueError(
            f"{path!r}: the header announces shape {shape} but the file holds "
            f"{len(data) - offset} bytes of data (truncated download?)."
        )
    return np.frombuffer(data, np.uint8, offset=offset).reshape(shape)


def _load_split(data_dir, split):
    images_file, labels_file = FILES[split]
    images = read_idx(os.path.join(data_dir, images_file))
    labels = read_idx(os.path.join(data_dir, labels_file))
    if len(images) != len(labels):
        raise ValueError(
            f"{data_dir!r}: {images_file} holds {len(images)} images but "
            f"{labels_file} {len(labels)} labels."
        )
    return images[..., None], labels.astype(np.int32)


def fashion_mnist_arrays(split, count=None, data_dir=DEBIAN_DIR):
    """The first `count` images of a split as numpy arrays: float32
    `(N, 32, 32, 3)` in [0, 1] (zero-padded from 28, grey repeated to RGB)
    and int64 labels; what calibration and benchmark scripts feed a model.

    Args:
        split: `"train"` or `"val"`.
        count: how many images (None: all).
        data_dir: the folder of the four IDX `.gz` files.

    Example:
    >>> x, y = fashion_mnist_arrays("val", 500)
    """
    images, labels = _load_split(data_dir, split)
    images = np.pad(images[:count, ..., 0], ((0, 0), (2, 2), (2, 2)))[..., None]
    return images.repeat(3, -1).astype(np.float32) / 255.0, labels[:count].astype(np.int64)


def _from_tfds(data_dir):
    import tensorflow_datasets as tfds

    splits = tfds.as_numpy(
        tfds.load("fashion_mnist", split=["train", "test"], data_dir=data_dir,
                  batch_size=-1, as_supervised=True, download=True)
    )
    return [(x, y.astype(np.int32)) for x, y in splits]


def _fit(image, image_size, channels):
    if image_size != 28:
        if image_size > 28 and (image_size - 28) % 2 == 0:
            # Zero padding keeps every pixel value exact (32x32 for CIFAR models).
            margin = (image_size - 28) // 2
            image = tf.pad(image, [[margin, margin], [margin, margin], [0, 0]])
        else:
            image = resize_uint8(image, image_size)
    if channels == 3:
        image = tf.repeat(image, 3, axis=-1)
    return image


def fashion_mnist(
    data_dir=None,
    batch_size=64,
    seed=42,
    image_size=28,
    channels=1,
    train_subset=None,
    download=False,
    pad=None,
    flip=True,
    cache=False,
    drop_remainder=True,
    val_batch_size=None,
    normalization="fashion_mnist",
    label_noise=0.0,
):
    """Fashion-MNIST (60k/10k, 10 classes) as train/val pipelines.

    Reads the IDX files with numpy, so it needs neither network nor tfds. With
    `image_size=32, channels=3` the 28x28 grey images are zero-padded to 32x32
    and repeated to three channels, so CIFAR models run unchanged.

    Args:
        data_dir: folder with the four IDX `.gz` files; defaults to Debian's
            `/usr/share/datasets/fashion-mnist`.
        batch_size: training batch size.
        seed: seed of the subset draw, the shuffle and the crops/flips.
        image_size: 28 (native), a larger size of even margin (zero-padded), or
            any other size (resized).
        channels: 1 (grey) or 3 (grey repeated).
        train_subset: keep this many training images, drawn at random (seeded).
        download: when the files are absent, fetch the data through tfds
            instead of raising.
        pad: pad-and-random-crop padding; defaults to `image_size // 8`.
        flip: random horizontal flip for training.
        cache: `False`, `True` or a file path prefix.
        drop_remainder: drop the last partial training batch.
        val_batch_size: validation batch size; defaults to `batch_size`.
        normalization: see `preprocessing.resolve_normalization`.
        label_noise: share of the training labels (after `train_subset`)
            replaced by a random other class, fixed by `seed`
            (`symmetric_label_noise`); the test split keeps its labels.

    Returns:
        `(train_ds, val_ds, info)`.

    Example:
    ```python
    train_ds, val_ds, info = fashion_mnist(image_size=32, channels=3,
                                           train_subset=20_000)
    ```
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}.")
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an int >= 8, got {image_size!r}.")
    data_dir = os.path.expanduser(str(data_dir or DEBIAN_DIR))
    needed = [os.path.join(data_dir, f) for pair in FILES.values() for f in pair]
    if all(os.path.isfile(f) for f in needed):
        (x_train, y_train), (x_val, y_val) = (
            _load_split(data_dir, "train"), _load_split(data_dir, "val")
        )
    elif download:
        (x_train, y_train), (x_val, y_val) = _from_tfds(data_dir)
    else:
        absent = [os.path.basename(f) for f in needed if not os.path.isfile(f)]
        raise _files.missing(
            f"Fashion-MNIST files {absent}", repr(data_dir),
            "Install them with `apt-get install dataset-fashion-mnist` (Debian/"
            f"Ubuntu), or download the four .gz files from {URL} into data_dir, "
            "or pass download=True to fetch them through tensorflow-datasets.",
        )
    if train_subset is not None:
        if not 0 < train_subset <= len(x_train):
            raise ValueError(
                f"train_subset must be in [1, {len(x_train)}], got {train_subset!r}."
            )
        keep = np.sort(
            np.random.default_rng(seed).choice(len(x_train), train_subset, False)
        )
        x_train, y_train = x_train[keep], y_train[keep]
    if label_noise:
        y_train, _ = symmetric_label_noise(y_train, label_noise, len(CLASS_NAMES), seed)

    def fitted(images, labels):
        # Resizing arrays cannot fail: a plain map keeps the dataset's length
        # known (decode_fn's ignore_errors would lose it, and Keras then warns
        # "Your input ran out of data" at the end of every evaluation).
        return tf.data.Dataset.from_tensor_slices((images, labels)).map(
            lambda image, label: (_fit(image, image_size, channels), label),
            num_parallel_calls=tf.data.AUTOTUNE)

    common = dict(seed=seed, normalization=normalization, channels=channels, cache=cache)
    train_ds = build_pipeline(
        fitted(x_train, y_train),
        training=True,
        batch_size=batch_size,
        pad=image_size // 8 if pad is None else pad,
        flip=flip,
        drop_remainder=drop_remainder,
        **common,
    )
    val_ds = build_pipeline(
        fitted(x_val, y_val),
        training=False,
        batch_size=val_batch_size or batch_size,
        **common,
    )
    info = DatasetInfo(
        name="fashion_mnist",
        num_classes=10,
        image_size=image_size,
        channels=channels,
        train_examples=len(x_train),
        val_examples=len(x_val),
        class_names=list(CLASS_NAMES),
        normalization=resolve_normalization(normalization, channels),
    )
    return train_ds, val_ds, info

"""Shared input-pipeline pieces: normalisation constants, pad-and-random-crop,
horizontal flip, and the one function that assembles every loader's pipeline.

Every loader in `r2kd_keras.data` decodes its own files into `(uint8 image,
int32 label)` elements and hands them to `build_pipeline`, so cropping, flipping,
normalisation, shuffling, batching and prefetching are defined here only.
"""

import dataclasses

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE

# (mean, std) per channel, for images scaled to [0, 1]. CIFAR-100 and ImageNet
# values are those of the reference (mdistiller / R2KD); Fashion-MNIST's are the
# statistics of its 60k training images (checked against the IDX files in tests).
NORMALIZATION = {
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
}


@dataclasses.dataclass
class DatasetInfo:
    """What a loader tells its caller about the data it serves.

    Args:
        name: dataset name, e.g. `"cifar100"`.
        num_classes: number of classes; labels are in `[0, num_classes)`.
        image_size: height and width of the served images (square).
        channels: channels of the served images.
        train_examples: number of training examples (before `drop_remainder`).
        val_examples: number of validation examples.
        class_names: class names in label order, or `None` when unknown.
        normalization: the `(mean, std)` the images were normalised with.
        skipped_files: paths that the load-time scan rejected (unreadable or not
            an image); empty for in-memory and tfds data.

    Example:
    ```python
    train_ds, val_ds, info = r2kd_keras.data.fashion_mnist(image_size=32, channels=3)
    model = get_model("resnet8x4", info.num_classes, (info.image_size,) * 2 + (3,))
    ```
    """

    name: str
    num_classes: int
    image_size: int
    channels: int
    train_examples: int
    val_examples: int
    class_names: list = None
    normalization: tuple = None
    skipped_files: list = dataclasses.field(default_factory=list)


def resolve_normalization(normalization, channels=3):
    """Returns `(mean, std)` as float tuples of length `channels`.

    Args:
        normalization: a key of `NORMALIZATION` (`"cifar100"`, `"imagenet"`,
            `"fashion_mnist"`), or a `(mean, std)` pair of sequences, or `None`
            for no normalisation (images stay in [0, 1]).
        channels: number of image channels; one-value statistics are repeated.

    Returns:
        `(mean, std)` tuples, or `None` when `normalization` is `None`.

    Example:
    ```python
    mean, std = resolve_normalization("cifar100")
    ```
    """
    if normalization is None:
        return None
    if isinstance(normalization, str):
        if normalization not in NORMALIZATION:
            raise ValueError(
                f"normalization={normalization!r} is not known; use one of "
                f"{sorted(NORMALIZATION)}, a (mean, std) pair, or None."
            )
        mean, std = NORMALIZATION[normalization]
    else:
        try:
            mean, std = normalization
            mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        except (TypeError, ValueError):
            raise ValueError(
                f"normalization={normalization!r} must be a name, a (mean, std) "
                "pair of per-channel sequences, or None."
            ) from None
    if len(mean) == 1 and channels > 1:
        mean, std = mean * channels, std * channels
    if len(mean) != channels or len(std) != channels:
        raise ValueError(
            f"normalization={normalization!r} has {len(mean)} mean and {len(std)} "
            f"std values but the images have {channels} channels."
        )
    return tuple(mean), tuple(std)


def normalize(image, mean_std):
    """Scales a uint8 (or [0, 255] float) image to [0, 1], then `(x - mean) / std`.

    Args:
        image: `(..., H, W, C)` tensor with values in [0, 255].
        mean_std: output of `resolve_normalization`, or `None` (only scaling).

    Returns:
        float32 tensor of the same shape.

    Example:
    ```python
    x = normalize(tf.zeros((32, 32, 3), tf.uint8), NORMALIZATION["cifar100"])
    ```
    """
    image = tf.cast(image, tf.float32) / 255.0
    if mean_std is None:
        return image
    mean, std = mean_std
    return (image - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def resize_uint8(image, size):
    """Bilinear resize of a uint8 image to `size` x `size`, rounded back to uint8.

    Args:
        image: `(H, W, C)` uint8 tensor.
        size: output height and width.

    Returns:
        `(size, size, C)` uint8 tensor.

    Example:
    ```python
    small = resize_uint8(tf.zeros((80, 60, 3), tf.uint8), 64)
    ```
    """
    resized = tf.image.resize(image, (size, size))
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def pad_crop_flip(image, pad, seed, flip=True):
    """The reference's training augmentation: zero-pad by `pad` pixels on each
    side, crop back to the original size at a random offset, flip left-right
    with probability 1/2 (torchvision `RandomCrop(size, padding=pad)` +
    `RandomHorizontalFlip()`).

    Padding is applied before normalisation, so padded pixels are black, as in
    the reference.

    Args:
        image: `(H, W, C)` tensor.
        pad: pixels of padding per side; 0 disables the crop.
        seed: int32 tensor of shape `(2,)` for the stateless random ops.
        flip: whether to flip at random.

    Returns:
        tensor with the shape and dtype of `image`.

    Example:
    ```python
    out = pad_crop_flip(image, 4, tf.constant([1, 2]))
    ```
    """
    crop_seed, flip_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=2)
    )
    if pad:
        padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
        image = tf.image.stateless_random_crop(padded, tf.shape(image), seed=crop_seed)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    return image


def build_pipeline(
    ds,
    *,
    training,
    batch_size,
    seed=42,
    pad=0,
    flip=True,
    normalization=None,
    channels=3,
    cache=False,
    drop_remainder=None,
    shuffle_buffer=10_000,
    decode_fn=None,
):
    """Assembles a batched pipeline from `(image, label)` elements.

    Order: decode (parallel) -> cache -> shuffle (train) -> pad-crop-flip (train)
    -> normalise -> batch -> prefetch. Caching comes after decoding so each epoch
    after the first skips file reads and JPEG decoding, and before augmentation
    so every epoch still sees fresh crops and flips.

    Args:
        ds: dataset of `(image_or_path, label)` elements.
        training: shuffle and augment when `True`.
        batch_size: batch size (the global batch under `tf.distribute`).
        seed: seed of the shuffle and of the random crops/flips; the augmentation
            draws are new on every epoch and identical across runs.
        pad: pad-and-random-crop padding in pixels (train only).
        flip: random horizontal flip (train only).
        normalization: see `resolve_normalization`.
        channels: channels of the decoded images.
        cache: `False`, `True` (in memory) or a file path prefix for
            `Dataset.cache` (`.train` / `.val` is appended).
        drop_remainder: drop the last partial batch; defaults to `training`
            (`tf.distribute` needs equal batches).
        shuffle_buffer: shuffle buffer size.
        decode_fn: optional function `(x, label) -> (uint8 image, label)` run
            first, in parallel; elements whose decoding fails are dropped.

    Returns:
        a batched, prefetched `tf.data.Dataset` of `(float32 images, int32 labels)`.

    Example:
    ```python
    ds = tf.data.Dataset.from_tensor_slices((images_uint8, labels))
    train = build_pipeline(ds, training=True, batch_size=64, pad=4,
                           normalization="cifar100")
    ```
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    mean_std = resolve_normalization(normalization, channels)
    if drop_remainder is None:
        drop_remainder = training
    if decode_fn is not None:
        ds = ds.map(decode_fn, num_parallel_calls=AUTOTUNE, deterministic=True)
        # A file that passed the loader's signature scan can still be truncated:
        # drop it (TensorFlow logs a warning) rather than abort the epoch.
        ds = ds.ignore_errors(log_warning=True)
    if cache:
        # One cache file per split: train and val of a loader share `cache`.
        split = "train" if training else "val"
        ds = ds.cache() if cache is True else ds.cache(f"{cache}.{split}")
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        # A seeded stream of fresh random ints per epoch gives the stateless
        # crop/flip ops seeds that differ between epochs yet repeat across runs.
        seeds = tf.data.Dataset.random(
            seed=seed, rerandomize_each_iteration=True
        ).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds))

        def augment(example, op_seed):
            image, label = example
            op_seed = tf.cast(op_seed % (2**31 - 1), tf.int32)
            image = pad_crop_flip(image, pad, op_seed, flip=flip)
            return normalize(image, mean_std), tf.cast(label, tf.int32)

        ds = ds.map(augment, num_parallel_calls=AUTOTUNE, deterministic=True)
    else:
        ds = ds.map(
            lambda image, label: (normalize(image, mean_std), tf.cast(label, tf.int32)),
            num_parallel_calls=AUTOTUNE,
        )
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(AUTOTUNE)


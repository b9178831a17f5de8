"""Datasets served by tensorflow-datasets: CIFAR-100, the FGVR sets of the
paper (CUB-200-2011, Stanford Dogs, Stanford Cars) and ImageNet.

Without network a real `tfds.load` retries for minutes, so each loader first
looks for the prepared dataset on disk and, when it is absent and
`download=False`, raises at once with where it looked and how to get the data.
"""

import os

from r2kd_keras.data import _files
from r2kd_keras.data.preprocessing import (
    DatasetInfo,
    build_pipeline,
    resize_uint8,
    resolve_normalization,
)

FGVR = {
    # tfds name: (train split, val split, official source)
    "caltech_birds2011": ("train", "test", "https://www.vision.caltech.edu/datasets/cub_200_2011/"),
    "stanford_dogs": ("train", "test", "http://vision.stanford.edu/aditya86/ImageNetDogs/"),
    "cars196": ("train", "test", "https://ai.stanford.edu/~jkrause/cars/car_dataset.html"),
}
IMAGENET_URL = "https://image-net.org/download-images"


def default_data_dir(data_dir=None):
    """The tfds data dir a loader reads: `data_dir`, else `$TFDS_DATA_DIR`,
    else `~/tensorflow_datasets` (the places tfds itself uses).

    Args:
        data_dir: an explicit folder, or `None`.

    Returns:
        the folder as an absolute-or-user-expanded string.

    Example:
    ```python
    default_data_dir()  # '/home/me/tensorflow_datasets'
    ```
    """
    data_dir = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    return os.path.expanduser(str(data_dir))


def is_prepared(name, data_dir):
    """Whether a prepared tfds dataset is on disk, without touching the network.

    Args:
        name: tfds dataset name, e.g. `"cifar100"`.
        data_dir: tfds data dir.

    Returns:
        `True` when `data_dir/<name>/[<config>/]<version>/dataset_info.json`
        exists (the layout `tfds build` writes).

    Example:
    ```python
    if not is_prepared("cifar100", default_data_dir()):
        print("run `tfds build cifar100` first")
    ```
    """
    top = os.path.join(data_dir, name)
    for depth_one in _subdirs(top):
        if os.path.isfile(os.path.join(depth_one, "dataset_info.json")):
            return True
        if any(
            os.path.isfile(os.path.join(d, "dataset_info.json"))
            for d in _subdirs(depth_one)
        ):
            return True
    return False


def _subdirs(path):
    if not os.path.isdir(path):
        return []
    return [os.path.join(path, d) for d in os.listdir(path)
            if os.path.isdir(os.path.join(path, d))]


def _resizer(image_size):
    def resize(image, label):
        return resize_uint8(image, image_size), label

    return resize


def _load(name, splits, data_dir, download, how, *, image_size, resize, batch_size,
          seed, pad, normalization, cache, drop_remainder, val_batch_size,
          download_and_prepare_kwargs=None):
    data_dir = default_data_dir(data_dir)
    if not download and not is_prepared(name, data_dir):
        raise _files.missing(
            f"tfds dataset {name!r}", os.path.join(data_dir, name), how
        )
    # Imported only once the data is known to be there: the check above must
    # answer in well under a second.
    import tensorflow_datasets as tfds

    (train, val), builder_info = tfds.load(
        name, split=list(splits), data_dir=data_dir, as_supervised=True,
        with_info=True, download=download, shuffle_files=True,
        read_config=tfds.ReadConfig(shuffle_seed=seed),
        download_and_prepare_kwargs=download_and_prepare_kwargs,
    )
    decode = _resizer(image_size) if resize else None
    common = dict(seed=seed, normalization=normalization, decode_fn=decode, cache=cache)
    train_ds = build_pipeline(train, training=True, batch_size=batch_size, pad=pad,
                              drop_remainder=drop_remainder, **common)
    val_ds = build_pipeline(val, training=False,
                            batch_size=val_batch_size or batch_size, **common)
    label = builder_info.features["label"]
    info = DatasetInfo(
        name=name,
        num_classes=label.num_classes,
        image_size=image_size,
        channels=3,
        train_examples=_num_examples(builder_info, splits[0], train),
        val_examples=_num_examples(builder_info, splits[1], val),
        class_names=list(label.names),
        normalization=resolve_normalization(normalization),
    )
    return train_ds, val_ds, info


def _num_examples(builder_info, split, ds):
    # A dataset served without its split metadata (tfds's mock_data in tests)
    # still knows its length when tfds can count its records.
    try:
        return builder_info.splits[split].num_examples
    except KeyError:
        count = int(ds.cardinality())
        return count if count >= 0 else None


def cifar100(data_dir=None, batch_size=64, seed=42, download=False, cache=False,
             drop_remainder=True, val_batch_size=None, normalization="cifar100"):
    """CIFAR-100 (tfds `cifar100`) with the reference's augmentation
    (pad 4 + random crop 32, horizontal flip) and normalisation.

    Args:
        data_dir: tfds data dir; defaults to `$TFDS_DATA_DIR` or
            `~/tensorflow_datasets`.
        batch_size: training batch size.
        seed: seed of the file and example shuffle and of the crops/flips.
        download: download and prepare the data when it is absent.
        cache: `False`, `True` (memory, ~150 MB) or a file path prefix.
        drop_remainder: drop the last partial training batch.
        val_batch_size: validation batch size; defaults to `batch_size`.
        normalization: see `preprocessing.resolve_normalization`.

    Returns:
        `(train_ds, val_ds, info)`; the validation split is CIFAR's test split.

    Example:
    ```python
    train_ds, val_ds, info = cifar100(batch_size=64, cache=True)
    ```
    """
    return _load(
        "cifar100", ("train", "test"), data_dir, download,
        "Get it from https://www.cs.toronto.edu/~kriz/cifar.html through "
        "`tfds build cifar100` on a machine with network, and copy the prepared "
        "folder here, or pass download=True (needs network).",
        image_size=32, resize=False, batch_size=batch_size, seed=seed, pad=4,
        normalization=normalization, cache=cache, drop_remainder=drop_remainder,
        val_batch_size=val_batch_size,
    )


def fgvr(name, data_dir=None, image_size=224, batch_size=64, seed=42, download=False,
         cache=False, drop_remainder=True, val_batch_size=None,
         normalization="imagenet"):
    """A fine-grained visual recognition set of the paper through tfds.

    Images are resized to `image_size` x `image_size` (aspect ratio not kept),
    then trained with pad `image_size // 8` + random crop and horizontal flip,
    and ImageNet normalisation.

    Args:
        name: `"caltech_birds2011"`, `"stanford_dogs"` or `"cars196"`.
        data_dir: tfds data dir; defaults to `$TFDS_DATA_DIR` or
            `~/tensorflow_datasets`.
        image_size: served image size.
        batch_size: training batch size.
        seed: seed of the shuffles and of the crops/flips.
        download: download and prepare the data when it is absent.
        cache: `False`, `True` or a file path prefix.
        drop_remainder: drop the last partial training batch.
        val_batch_size: validation batch size; defaults to `batch_size`.
        normalization: see `preprocessing.resolve_normalization`.

    Returns:
        `(train_ds, val_ds, info)`; the validation split is the test split.

    Example:
    ```python
    train_ds, val_ds, info = fgvr("stanford_dogs", image_size=224)
    ```
    """
    if name not in FGVR:
        raise ValueError(f"name={name!r} is not an FGVR set; use one of {sorted(FGVR)}.")
    train_split, val_split, url = FGVR[name]
    return _load(
        name, (train_split, val_split), data_dir, download,
        f"The official source is {url}; prepare it with `tfds build {name}` on a "
        "machine with network and copy the prepared folder here, or pass "
        "download=True (needs network).",
        image_size=image_size, resize=True, batch_size=batch_size, seed=seed,
        pad=image_size // 8, normalization=normalization, cache=cache,
        drop_remainder=drop_remainder, val_batch_size=val_batch_size,
    )


def imagenet(data_dir=None, manual_dir=None, image_size=224, batch_size=64, seed=42,
             download=False, cache=False, drop_remainder=True, val_batch_size=None,
             normalization="imagenet"):
    """ImageNet-1k (tfds `imagenet2012`, which needs a manual download).

    Images are resized to `image_size` (aspect ratio not kept) and trained with
    pad-and-random-crop and flip; this is not the usual RandomResizedCrop.

    Args:
        data_dir: tfds data dir; defaults to `$TFDS_DATA_DIR` or
            `~/tensorflow_datasets`.
        manual_dir: folder with `ILSVRC2012_img_train.tar` and
            `ILSVRC2012_img_val.tar`; defaults to `<data_dir>/downloads/manual`.
        image_size: served image size.
        batch_size: training batch size.
        seed: seed of the shuffles and of the crops/flips.
        download: prepare the dataset from the tar files in `manual_dir` when it
            is not prepared yet (takes hours).
        cache: `False` or a file path prefix (memory caching does not fit).
        drop_remainder: drop the last partial training batch.
        val_batch_size: validation batch size; defaults to `batch_size`.
        normalization: see `preprocessing.resolve_normalization`.

    Returns:
        `(train_ds, val_ds, info)`; the validation split is `validation`.

    Example:
    ```python
    train_ds, val_ds, info = imagenet("/data/tfds", manual_dir="/data/ilsvrc")
    ```
    """
    data_dir = default_data_dir(data_dir)
    manual_dir = os.path.expanduser(
        str(manual_dir or os.path.join(data_dir, "downloads", "manual"))
    )
    how = (
        f"Download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from "
        f"{IMAGENET_URL} (an account is needed) into {manual_dir}, then run "
        f"`tfds build imagenet2012 --data_dir={data_dir} --manual_dir={manual_dir}`"
        " or call imagenet(..., download=True)."
    )
    tars = [os.path.join(manual_dir, f"ILSVRC2012_img_{s}.tar") for s in ("train", "val")]
    if download and not all(os.path.isfile(t) for t in tars):
        if not is_prepared("imagenet2012", data_dir):
            raise _files.missing("ImageNet tar files", repr(manual_dir), how)
    kwargs = None
    if download:
        import tensorflow_datasets as tfds

        kwargs = dict(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
        )
    return _load(
        "imagenet2012", ("train", "validation"), data_dir, download, how,
        image_size=image_size, resize=True, batch_size=batch_size, seed=seed,
        pad=image_size // 8, normalization=normalization, cache=cache,
        drop_remainder=drop_remainder, val_batch_size=val_batch_size,
        download_and_prepare_kwargs=kwargs,
    )

"""The datasets the runner knows by name: one registry that `load_data`,
the `--dataset` flag and `TrainConfig.validate` all read."""

import dataclasses

from r2kd_keras.data.idx import fashion_mnist
from r2kd_keras.data.image_folder import image_folder
from r2kd_keras.data.tfds_sets import cifar100, fgvr, imagenet
from r2kd_keras.data.tiny_imagenet import tiny_imagenet


@dataclasses.dataclass(frozen=True)
class DatasetRequest:
    """What the runner asks of a loader.

    Args:
        data_dir: where the data is; None: the loader's default.
        batch_size: training batch.
        seed: seed of the subset draw, shuffle and augmentation.
        image_size: served size; None: the dataset's default.
        train_subset: keep only this many training images (loaders that
            cannot draw a subset leave it to the step count).
        label_noise: share of the training labels (after `train_subset`)
            replaced by a random other class, fixed by `seed`
            (`label_noise.symmetric_label_noise`); only loaders registered
            with `label_noise=True` take it.
        options: loader-specific settings, e.g. `{"fgvr_dataset": "cars196"}`.
    """

    data_dir: str = None
    batch_size: int = 64
    seed: int = 42
    image_size: int = None
    train_subset: int = None
    label_noise: float = 0.0
    options: dict = dataclasses.field(default_factory=dict)

    def size(self, default=None):
        """`{"image_size": ...}` to pass on: the request's, else `default`."""
        size = self.image_size or default
        return {"image_size": size} if size else {}


_LOADERS = {}
_NOISY_LABELS = set()  # names whose loader applies `DatasetRequest.label_noise`


def register_dataset(name, load, description, label_noise=False):
    """Makes `load` the loader of `name` (for `load_dataset` and `--dataset`).

    Args:
        name: the dataset's name.
        load: a function `DatasetRequest -> (train_ds, val_ds, info)`.
        description: one line for the flag documentation.
        label_noise: whether `load` applies `DatasetRequest.label_noise`
            (otherwise a request with label noise is refused).

    Example:
    >>> register_dataset("my_set", lambda r: my_loader(r.data_dir, r.batch_size),
    ...                  "My images.")
    """
    _LOADERS[name] = (load, description)
    if label_noise:
        _NOISY_LABELS.add(name)
    else:
        _NOISY_LABELS.discard(name)


def dataset_names():
    """The registered dataset names, in registration order."""
    return tuple(_LOADERS)


def dataset_descriptions():
    """`{name: description}` of the registered datasets."""
    return {name: description for name, (_, description) in _LOADERS.items()}


def load_dataset(name, **request):
    """`(train_ds, val_ds, info)` of the registered dataset `name`.

    Args:
        name: a name of `dataset_names()`.
        **request: the fields of `DatasetRequest`.

    Example:
    >>> train_ds, val_ds, info = load_dataset("fashion_mnist", batch_size=32)
    """
    if name not in _LOADERS:
        raise ValueError(
            f"dataset={name!r} is not known; use one of {', '.join(_LOADERS)}.")
    request = DatasetRequest(**request)
    if request.label_noise and name not in _NOISY_LABELS:
        raise ValueError(
            f"label_noise={request.label_noise!r}: dataset={name!r} cannot replace its "
            f"training labels; the datasets that can: {', '.join(sorted(_NOISY_LABELS))}.")
    load, _ = _LOADERS[name]
    return load(request)


def _fashion_mnist(request):
    # Padded to 32 and repeated to 3 channels so the CIFAR models run.
    return fashion_mnist(data_dir=request.data_dir, channels=3,
                         train_subset=request.train_subset, batch_size=request.batch_size,
                         seed=request.seed, label_noise=request.label_noise,
                         **request.size(32))


def _cifar100(request):
    return cifar100(data_dir=request.data_dir, batch_size=request.batch_size,
                    seed=request.seed)


def _tiny_imagenet(request):
    if not request.data_dir:
        raise ValueError(
            "dataset='tiny_imagenet' needs data_dir: the `tiny-imagenet-200` "
            "folder (from http://cs231n.stanford.edu/tiny-imagenet-200.zip) "
            "or the folder containing it."
        )
    return tiny_imagenet(request.data_dir, batch_size=request.batch_size,
                         seed=request.seed, **request.size())


def _fgvr(request):
    if "fgvr_dataset" not in request.options:
        raise ValueError(
            "dataset='fgvr' needs options={'fgvr_dataset': NAME}, a tfds name "
            "such as 'caltech_birds2011', 'stanford_dogs' or 'cars196'.")
    return fgvr(request.options["fgvr_dataset"], data_dir=request.data_dir,
                batch_size=request.batch_size, seed=request.seed, **request.size())


def _imagenet(request):
    return imagenet(data_dir=request.data_dir, batch_size=request.batch_size,
                    seed=request.seed, **request.size())


def _image_folder(request):
    return image_folder(request.data_dir, val_dir=request.options.get("val_dir"),
                        val_fraction=request.options.get("val_fraction", 0.2),
                        batch_size=request.batch_size, seed=request.seed, **request.size())


register_dataset("fashion_mnist", _fashion_mnist,
                 "Fashion-MNIST IDX files, served 32x32x3 (Debian dataset-fashion-mnist).",
                 label_noise=True)
register_dataset("cifar100", _cifar100, "CIFAR-100 prepared by tfds (32x32).")
register_dataset("tiny_imagenet", _tiny_imagenet,
                 "The tiny-imagenet-200 folder (64x64, 200 classes).")
register_dataset("fgvr", _fgvr, "A fine-grained tfds set named by --fgvr_dataset.")
register_dataset("imagenet", _imagenet, "ImageNet-1k prepared by tfds (224).")
register_dataset("image_folder", _image_folder,
                 "Your images: data_dir/<class>/*.jpg|png (--val_dir or --val_fraction).")

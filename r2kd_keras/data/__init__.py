"""tf.data input pipelines for the paper's datasets.

Every loader returns `(train_ds, val_ds, info)`: batched `(float32 images,
int32 labels)` datasets (shuffled with a seed, augmented with the reference's
pad-and-random-crop + horizontal flip for training, normalised per dataset,
prefetched) and a `DatasetInfo`. Loaders never wait on the network: absent
data raises `FileNotFoundError` at once, saying where they looked and how to
get it.
"""

from r2kd_keras.data.corrupt import CORRUPTIONS, corrupt
from r2kd_keras.data.idx import fashion_mnist
from r2kd_keras.data.image_folder import image_folder
from r2kd_keras.data.label_noise import symmetric_label_noise
from r2kd_keras.data.preprocessing import (
    NORMALIZATION,
    DatasetInfo,
    build_pipeline,
    normalize,
    pad_crop_flip,
    resize_uint8,
    resolve_normalization,
)
from r2kd_keras.data.registry import (
    DatasetRequest,
    dataset_descriptions,
    dataset_names,
    load_dataset,
    register_dataset,
)
from r2kd_keras.data.tfds_sets import cifar100, fgvr, imagenet
from r2kd_keras.data.tiny_imagenet import tiny_imagenet

__all__ = [
    "CORRUPTIONS",
    "NORMALIZATION",
    "DatasetInfo",
    "DatasetRequest",
    "build_pipeline",
    "cifar100",
    "dataset_descriptions",
    "dataset_names",
    "corrupt",
    "fashion_mnist",
    "fgvr",
    "image_folder",
    "imagenet",
    "load_dataset",
    "normalize",
    "pad_crop_flip",
    "register_dataset",
    "resize_uint8",
    "resolve_normalization",
    "symmetric_label_noise",
    "tiny_imagenet",
]

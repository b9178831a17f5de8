"""Distil on ImageNet-1k (resnet34 -> resnet18, 224x224).

    python examples/imagenet.py --data_dir ~/tensorflow_datasets \
        --teacher_weights resnet34.keras --strategy mirrored --batch_size 256

The data must be prepared by tensorflow-datasets from the ILSVRC2012 tar files.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from absl import app  # noqa: E402

from r2kd_keras import train  # noqa: E402

train.define_flags(dataset="imagenet", teacher="resnet34", student="resnet18",
                   image_size=224, output_dir="runs/imagenet")

if __name__ == "__main__":
    app.run(train.main)

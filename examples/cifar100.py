"""Distil on CIFAR-100 with the paper's recipe (resnet32x4 -> resnet8x4).

    python examples/cifar100.py --data_dir ~/tensorflow_datasets \
        --teacher_weights resnet32x4.keras --strategy mirrored

The data must be prepared by tensorflow-datasets (`tfds build cifar100`).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from absl import app  # noqa: E402

from r2kd_keras import train  # noqa: E402

train.define_flags(dataset="cifar100", teacher="resnet32x4", student="resnet8x4",
                   output_dir="runs/cifar100")

if __name__ == "__main__":
    app.run(train.main)

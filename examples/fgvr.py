"""Distil on a fine-grained recognition set (CUB-200, Stanford Dogs or Cars)
at 224x224 (resnet34 -> resnet18).

    python examples/fgvr.py --fgvr_dataset stanford_dogs --data_dir ~/tensorflow_datasets

The data must be prepared by tensorflow-datasets (`tfds build stanford_dogs`).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from absl import app  # noqa: E402

from r2kd_keras import train  # noqa: E402

train.define_flags(dataset="fgvr", teacher="resnet34", student="resnet18",
                   image_size=224, output_dir="runs/fgvr")

if __name__ == "__main__":
    app.run(train.main)

"""Distil on TinyImageNet (64x64, 200 classes) with the paper's recipe
(resnet32x4 -> resnet8x4).

    python examples/tinyimagenet.py --data_dir ~/data/tiny-imagenet-200 \
        --strategy mirrored --batch_size 256

`--data_dir` is the unzipped http://cs231n.stanford.edu/tiny-imagenet-200.zip.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from absl import app  # noqa: E402

from r2kd_keras import train  # noqa: E402

train.define_flags(dataset="tiny_imagenet", teacher="resnet32x4", student="resnet8x4",
                   output_dir="runs/tinyimagenet")

if __name__ == "__main__":
    app.run(train.main)

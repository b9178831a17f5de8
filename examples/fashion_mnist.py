"""The offline demo: Fashion-MNIST from Debian's `dataset-fashion-mnist`.

Trains a teacher (resnet14), then the same student (resnet8) alone and with
KD (the classic baselines, one view) and with R2KD (CutMix second view), each
pruned to 50% and exported to TFLite with int8 weights, and prints a table of
test accuracy and exported size. Defaults (6k training images, 4 epochs,
one evaluation on the 10k test images at the end, teachers' forward passes
in bfloat16 where that is faster) take 4-9 minutes on 2 CPU cores with
AVX-512 (3 min 39 s measured on idle cores; 26 min on an AVX2-only CPU); `--full` uses all 60k images for 30 epochs.

    sudo apt-get install dataset-fashion-mnist
    python examples/fashion_mnist.py
"""

import dataclasses
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from absl import app, flags  # noqa: E402

from r2kd_keras import train  # noqa: E402

train.define_flags(dataset="fashion_mnist", teacher="resnet14", student="resnet8",
                   epochs=4, batch_size=32, train_subset=6_000, validation_freq=0,
                   teacher_dtype="auto", student_sparsity=0.5,
                   output_dir="runs/fashion_mnist")
flags.DEFINE_bool("full", False, "All 60k training images, 30 epochs.")
FULL = {"train_subset": None, "epochs": 30}
METHODS = {"none": "none", "kd": "none", "r2kd": None}  # method -> second view


def main(argv):
    config = train.config_from_flags()
    if flags.FLAGS.full:
        config = dataclasses.replace(
            config, **{k: v for k, v in FULL.items() if not flags.FLAGS[k].present})
    train.main(argv, methods=METHODS, config=config)


if __name__ == "__main__":
    app.run(main)

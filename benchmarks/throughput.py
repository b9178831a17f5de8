"""Training throughput of R2KD against the work it must do and against
`keras.distillation.Distiller`, all measured in the same run.

    python benchmarks/throughput.py [--teacher resnet32x4 --student resnet8x4
                                     --batch 64 --steps 5 --rounds 3]

Prints images/s for
  (a) the student's plain train step, (b) one teacher inference,
  (c) one R2KD step (CutMix view, pruned-teacher blend), (c') the same with
  teacher_dtype="bfloat16", (c'') c' with the student in mixed_bfloat16 too,
  (d) keras.distillation.Distiller with
  LogitsDistillation (KL), (e) our distillation="kd" (one view, no blend),
and the time ratios c / (2a + 4b), c' / (2a + 4b) and e / d.
Targets (issue 2): <= 1.0, <= 0.6, <= 1.0. Configurations are interleaved in
rounds and medians are reported, because these machines are shared and noisy.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from r2kd_keras import R2KDDistiller  # noqa: E402
from r2kd_keras.models import get_model  # noqa: E402


def sgd():
    return keras.optimizers.SGD(0.05, momentum=0.9)


def build_runners(args, x, y):
    """name -> zero-argument callable running one step on the fixed batch."""
    shape = x.shape[1:]
    teacher = get_model(args.teacher, args.classes, shape)
    student = get_model(args.student, args.classes, shape)
    teacher.trainable = False

    plain = keras.models.clone_model(student)
    plain.compile(optimizer=sgd(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    teacher_call = tf.function(lambda images: teacher(images, training=False))

    def distiller(**kwargs):
        model = R2KDDistiller(keras.models.clone_model(student), teacher, **kwargs)
        model.compile(optimizer=sgd())
        return model

    keras.config.set_dtype_policy("mixed_bfloat16")
    student_bf16 = get_model(args.student, args.classes, shape)
    keras.config.set_dtype_policy("float32")
    student_bf16.set_weights(student.get_weights())

    cutmix = keras.layers.CutMix(seed=0)
    r2kd = distiller(augmenter=cutmix)
    r2kd_bf16 = distiller(augmenter=cutmix, teacher_dtype="bfloat16")
    r2kd_all_bf16 = R2KDDistiller(student_bf16, teacher, augmenter=cutmix,
                                  teacher_dtype="bfloat16")
    r2kd_all_bf16.compile(optimizer=sgd())
    ours_kd = distiller(distillation="kd", teacher_prune_rate=0.0)
    keras_kd = keras.distillation.Distiller(
        teacher=teacher,
        student=keras.models.clone_model(student),
        distillation_losses=keras.distillation.LogitsDistillation(temperature=4.0),
        student_loss_weight=0.1,
    )
    keras_kd.compile(optimizer=sgd(), loss="sparse_categorical_crossentropy")
    return {
        "a student step": lambda: plain.train_on_batch(x, y),
        "b teacher inference": lambda: teacher_call(x).numpy(),
        "c r2kd step": lambda: r2kd.train_on_batch(x, y),
        "c' r2kd step, bf16 teacher": lambda: r2kd_bf16.train_on_batch(x, y),
        "c'' + mixed_bfloat16 student": lambda: r2kd_all_bf16.train_on_batch(x, y),
        "d keras Distiller (KL)": lambda: keras_kd.train_on_batch(x, y),
        "e ours distillation='kd'": lambda: ours_kd.train_on_batch(x, y),
    }


def measure(runners, steps, rounds):
    """Median seconds per step of each runner, interleaved over rounds."""
    samples = {name: [] for name in runners}
    for run in runners.values():
        run()  # trace and warm up
        run()
    for _ in range(rounds):
        for name, run in runners.items():
            for _ in range(steps):
                start = time.perf_counter()
                run()
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="resnet32x4")
    parser.add_argument("--student", default="resnet8x4")
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, args.image_size, args.image_size, 3)).astype("float32")
    y = rng.integers(0, args.classes, size=args.batch)
    seconds = measure(build_runners(args, x, y), args.steps, args.rounds)

    print(f"{args.teacher} -> {args.student}, {args.image_size}x{args.image_size}, "
          f"batch {args.batch}, {os.cpu_count()} CPUs, TF {tf.__version__}, "
          f"Keras {keras.__version__}")
    print(f"{'configuration':32s} {'s/step':>8s} {'images/s':>9s}")
    for name, value in seconds.items():
        print(f"{name:32s} {value:8.3f} {args.batch / value:9.1f}")
    work = 2 * seconds["a student step"] + 4 * seconds["b teacher inference"]
    ratios = {
        "c / (2a + 4b)  (target <= 1.0)": seconds["c r2kd step"] / work,
        "c' / (2a + 4b) (target <= 0.6)": seconds["c' r2kd step, bf16 teacher"] / work,
        "c'' / (2a + 4b) (no target)   ": seconds["c'' + mixed_bfloat16 student"] / work,
        "e / d          (target <= 1.0)": seconds["e ours distillation='kd'"]
        / seconds["d keras Distiller (KL)"],
    }
    for name, value in ratios.items():
        print(f"{name}: {value:.3f}")


if __name__ == "__main__":
    main()

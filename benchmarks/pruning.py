"""Cost of pruning a student during training (target: ratio <= 1.05).

Times one training step of a small CNN student (32x32x3, batch 128, SGD with
momentum and weight decay) with and without `prune_low_magnitude`, in the
same process, alternating the two so machine noise hits both alike:

* custom train step: `begin_pruning_step` / `apply_pruning_masks` inside the
  compiled step, as `R2KDDistiller.train_step` does;
* `model.fit` with the `UpdatePruningStep` callback (two extra eager calls
  per batch).

Prints medians over repeats and the ratios. Run:
    python benchmarks/pruning.py [--repeats 7] [--steps 20]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from r2kd_keras import pruning  # noqa: E402

BATCH = 128


def student():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = inputs
    for filters, stride in ((32, 1), (32, 2), (64, 1), (64, 2), (128, 2)):
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same",
                                use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(100)(x))


def optimizer():
    return keras.optimizers.SGD(0.05, momentum=0.9, weight_decay=5e-4)


def pruned_student():
    schedule = pruning.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=10_000)
    return pruning.prune_low_magnitude(student(), pruning_schedule=schedule)


def custom_step(net):
    opt = optimizer()
    opt.build(net.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=False)
    def step(x, y):
        pruning.begin_pruning_step(net)
        with tf.GradientTape() as tape:
            loss = loss_fn(y, net(x, training=True))
        opt.apply(tape.gradient(loss, net.trainable_variables), net.trainable_variables)
        pruning.apply_pruning_masks(net)
        return loss

    return step


def fit_step(net, callbacks):
    net.compile(optimizer(), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=False)

    def run(x, y, steps):
        dataset = tf.data.Dataset.from_tensors((x, y)).repeat(steps)
        net.fit(dataset, epochs=1, verbose=0, callbacks=list(callbacks))

    return run


def time_custom(step, x, y, steps):
    for _ in range(steps):
        loss = step(x, y)
    loss.numpy()


def time_fit(run, x, y, steps):
    run(x, y, steps)


def _sample(timer, fn, x, y, steps):
    """(wall, process CPU) seconds per step; CPU time is what other users of
    a shared machine disturb least."""
    wall, cpu = time.perf_counter(), time.process_time()
    timer(fn, x, y, steps)
    return ((time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps)


def compare(name, plain, pruned, timer, x, y, steps, repeats):
    timer(plain, x, y, 3)  # trace and warm up
    timer(pruned, x, y, 3)
    samples = {"plain": [], "pruned": []}
    for repeat in range(repeats):
        # Alternate the order so drifts in machine load hit both alike.
        order = ("plain", "pruned") if repeat % 2 == 0 else ("pruned", "plain")
        for key in order:
            samples[key].append(
                _sample(timer, plain if key == "plain" else pruned, x, y, steps)
            )
    for index, clock in enumerate(("wall", "cpu")):
        plain_ms = statistics.median(s[index] for s in samples["plain"]) * 1e3
        pruned_ms = statistics.median(s[index] for s in samples["pruned"]) * 1e3
        print(f"{name + ', ' + clock:<40} {plain_ms:9.2f} ms {pruned_ms:9.2f} ms "
              f"{pruned_ms / plain_ms:6.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(BATCH, 32, 32, 3)).astype("float32"))
    y = tf.constant(rng.integers(0, 100, BATCH))
    print(f"batch {BATCH}, {args.steps} steps x {args.repeats} repeats, medians")
    print(f"{'':<40} {'plain':>12} {'pruned':>12} {'ratio':>6}")
    compare("custom train step (distiller path)", custom_step(student()),
            custom_step(pruned_student()), time_custom, x, y, args.steps, args.repeats)
    compare("fit + UpdatePruningStep", fit_step(student(), []),
            fit_step(pruned_student(), [pruning.UpdatePruningStep()]),
            time_fit, x, y, args.steps, args.repeats)


if __name__ == "__main__":
    main()

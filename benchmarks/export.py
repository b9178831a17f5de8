"""Size, LiteRT latency and accuracy of exported students, by sparsity and
quantization; and which converter path `r2kd_keras.export` should use.

For each student (default: the zoo's resnet8x4 and MobileNetV2, 10 classes,
32x32x3): train briefly on Fashion-MNIST (Debian's IDX files, zero-padded to
32x32, grey repeated to RGB, scaled to [0, 1]); for each sparsity, prune every
Conv/Dense kernel one-shot by magnitude (`magnitude_mask`, layer-wise) and
fine-tune a few steps with the masks held; then export with each quantize
mode through `to_tflite` (int8 with int8 io, calibrated on training images)
and verify on held-out test images. A second table compares the converter
paths on the dense float32 student.

Writes `benchmarks/results/export.md` (or `--output`). Run:
    python benchmarks/export.py [--models resnet8x4,MobileNetV2]
        [--sparsities 0,0.5,0.8,0.9] [--train_examples 2000] [--epochs 1]
        [--finetune_steps 30] [--test_examples 300]
"""

import argparse
import contextlib
import gzip
import io
import os
import platform
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from r2kd_keras import export  # noqa: E402
from r2kd_keras.data.idx import fashion_mnist_arrays  # noqa: E402
from r2kd_keras.models import get_model  # noqa: E402
from r2kd_keras.pruning import magnitude_mask, prunable_kernels  # noqa: E402
from r2kd_keras.pruning.magnitude import walk_layers  # noqa: E402

QUANTIZE_MODES = (None, "dynamic", "float16", "int8")
BATCH = 32
TRAIN_LR = 3e-3
FINETUNE_LR = 1e-3


def compile_model(model, learning_rate):
    model.compile(
        keras.optimizers.Adam(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


class HoldMasks(keras.callbacks.Callback):
    """Re-zeroes the pruned weights after every optimizer step."""

    def __init__(self, masked):
        super().__init__()
        self.masked = masked

    def on_train_batch_end(self, batch, logs=None):
        for kernel, mask in self.masked:
            kernel.assign(kernel * mask)


def pruned_copy(model, sparsity, x, y, finetune_steps):
    """One-shot layer-wise magnitude pruning, then a masked fine-tune.

    Sparsity 0 gets the same fine-tune, so every row has the same training.
    """
    pruned = keras.models.clone_model(model)
    pruned.set_weights(model.get_weights())
    masked = []
    for layer in walk_layers(pruned):  # the model itself has no kernels
        for kernel in prunable_kernels(layer) if sparsity else []:
            mask = magnitude_mask(keras.ops.convert_to_numpy(kernel), sparsity)
            kernel.assign(kernel * mask)
            masked.append((kernel, tf.constant(mask)))
    if finetune_steps:
        compile_model(pruned, FINETUNE_LR)
        count = min(len(x), finetune_steps * BATCH)
        pruned.fit(x[:count], y[:count], batch_size=BATCH, epochs=1, verbose=0,
                   callbacks=[HoldMasks(masked)])
    return pruned


def litert_max_abs_diff(path, model, x):
    interpreter = Interpreter(model_path=path, num_threads=1)
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return float(np.max(np.abs(got - np.asarray(model(x, training=False)))))


def converter_paths(model):
    """The ways to turn a Keras 3 model into float32 .tflite bytes."""

    def keras_export(path):
        model.export(path, format="litert", verbose=False)

    def from_keras_model(path):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        with contextlib.redirect_stdout(io.StringIO()):
            content = converter.convert()
        with open(path, "wb") as f:
            f.write(content)

    def from_concrete_function(path):
        # Without `trackable_obj` the converter freezes the variables; this is
        # the path TensorFlow logs as deprecated.
        fn = tf.function(
            lambda t: model(t, training=False),
            input_signature=[tf.TensorSpec((None,) + model.input_shape[1:])],
        )
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [fn.get_concrete_function()]
        )
        with open(path, "wb") as f:
            f.write(converter.convert())

    return {
        'model.export(format="litert")': keras_export,
        "TFLiteConverter.from_keras_model (chosen)": from_keras_model,
        "TFLiteConverter.from_concrete_functions": from_concrete_function,
    }


def compare_converters(model, x, workdir):
    rows = [
        "| converter | bytes raw | bytes gzip | max abs diff | convert s |",
        "|---|---|---|---|---|",
    ]
    for name, convert in converter_paths(model).items():
        path = os.path.join(workdir, "converter.tflite")
        start = time.perf_counter()
        try:
            convert(path)
        except Exception as error:  # a failing path is a result, not a crash
            rows.append(f"| {name} | failed: {str(error).splitlines()[0][:80]} | | | |")
            continue
        seconds = time.perf_counter() - start
        with open(path, "rb") as f:
            raw = f.read()
        rows.append(
            f"| {name} | {len(raw):,} | {len(gzip.compress(raw, 9)):,} | "
            f"{litert_max_abs_diff(path, model, x[:64]):.2e} | {seconds:.2f} |"
        )
    return rows


def run(args):
    x_train, y_train = fashion_mnist_arrays("train", args.train_examples)
    x_test, y_test = fashion_mnist_arrays("val", args.test_examples)
    rows, converter_rows, notes = [], [], []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.models:
            keras.utils.set_random_seed(0)
            model = get_model(name, 10, (32, 32, 3))
            compile_model(model, TRAIN_LR)
            start = time.perf_counter()
            model.fit(x_train, y_train, batch_size=BATCH, epochs=args.epochs, verbose=0)
            print(f"{name}: trained in {time.perf_counter() - start:.0f} s", flush=True)
            converter_rows.append(f"\n**{name}**, dense, float32:\n")
            converter_rows.extend(compare_converters(model, x_test, workdir))
            for sparsity in args.sparsities:
                student = pruned_copy(model, sparsity, x_train, y_train,
                                      args.finetune_steps)
                for quantize in QUANTIZE_MODES:
                    path = os.path.join(
                        workdir, f"{name}_s{round(100 * sparsity)}_{quantize or 'f32'}.tflite"
                    )
                    report = export.to_tflite(
                        student,
                        path,
                        quantize=quantize,
                        representative_data=x_train[: args.calibration_examples],
                        verify=(x_test, y_test),
                        inference_io="int8" if quantize == "int8" else "float32",
                        max_samples=len(x_test),
                    )
                    rows.append(report.markdown_row())
                    notes.extend(f"{os.path.basename(path)}: {n}" for n in report.notes)
                    print(rows[-1], flush=True)
    return rows, converter_rows, notes


def write_markdown(args, rows, converter_rows, notes, seconds):
    lines = [
        "# Export benchmark: size, LiteRT latency and accuracy",
        "",
        f"Command: `python benchmarks/export.py --models {','.join(args.models)} "
        f"--sparsities {','.join(map(str, args.sparsities))} "
        f"--train_examples {args.train_examples} --epochs {args.epochs} "
        f"--finetune_steps {args.finetune_steps} --test_examples {args.test_examples}` "
        f"({seconds / 60:.1f} min, {platform.machine()}, {os.cpu_count()} CPU cores "
        "shared with other jobs: latencies are noisy).",
        "",
        f"Students from `r2kd_keras.models.get_model(name, 10, (32, 32, 3))`, trained "
        f"{args.epochs} epoch(s) on {args.train_examples} Fashion-MNIST images "
        f"(padded to 32x32x3, [0, 1], Adam {TRAIN_LR}, batch {BATCH}). Sparsity: one-shot "
        "layer-wise magnitude pruning of every Conv/Dense kernel, then "
        f"{args.finetune_steps} fine-tuning steps (Adam {FINETUNE_LR}) with the masks "
        "held (sparsity 0 gets the same steps). Export: "
        "`r2kd_keras.export.to_tflite` (sparsity=True; int8 = full integer with "
        f"int8 io, calibrated on {args.calibration_examples} training images). "
        f"Accuracy and agreement on {args.test_examples} held-out test images. "
        "Latency: LiteRT (XNNPACK), 1 thread, batch 1, median of 50 runs; this "
        "CPU has AMX-INT8 and AVX512-VNNI, which XNNPACK uses for int8 kernels, "
        "so the int8 / dynamic speed-up here is far larger than on a phone. "
        "Short training: accuracies compare export modes, they are not the "
        "students' potential.",
        "",
        export.ExportReport.markdown_header(),
        *rows,
        "",
    ]
    if notes:
        lines += ["Notes from the exporter:", ""] + [f"- {n}" for n in notes] + [""]
    lines += [
        "## Converter path (float32, dense)",
        "",
        "max abs diff: LiteRT vs Keras on 64 test images.",
        *converter_rows,
        "",
    ]
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        f.write("\n".join(lines))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet8x4,MobileNetV2",
                        type=lambda s: s.split(","),
                        help="comma-separated names for r2kd_keras.models.get_model")
    parser.add_argument("--sparsities", default="0,0.5,0.8,0.9",
                        type=lambda s: [float(v) for v in s.split(",")])
    parser.add_argument("--train_examples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--finetune_steps", type=int, default=30)
    parser.add_argument("--calibration_examples", type=int, default=200)
    parser.add_argument("--test_examples", type=int, default=300)
    parser.add_argument(
        "--output",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             "results", "export.md"),
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    rows, converter_rows, notes = run(args)
    write_markdown(args, rows, converter_rows, notes, time.perf_counter() - start)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

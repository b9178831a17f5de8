"""Pruning latency benchmark: dense vs unstructured vs filters vs XNNPACK-sparse in LiteRT.

For each student (zoo resnet8x4 and MobileNetV2): train it dense on a
Fashion-MNIST subset (32x32x3), then for every pruning configuration start
from that dense student, prune with `pruning.prune_for_structure` (one-shot,
`ConstantSparsity(s, 0, end_step=0)`: masks set on the first batch, held
after), fine-tune a few steps with `R2KDDistiller` (the dense student as
teacher), `pruning.finalize` (filter-pruned students are shrunk) and export
with `export.to_tflite(..., sparsity=True)` as float32 and as int8. The same
weights are also exported at a larger input (fully convolutional students).
LiteRT latency: batch 1, 1 and 2 threads; the configurations of one (model,
input, quantisation) are timed in interleaved rounds on the shared machine
and reported as medians and as ratios to the dense file of the same run.

    python benchmarks/latency.py --out benchmarks/results/latency
"""

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from r2kd_keras import export  # noqa: E402
from r2kd_keras import pruning  # noqa: E402
from r2kd_keras.data.idx import fashion_mnist_arrays  # noqa: E402
from r2kd_keras.distiller import R2KDDistiller  # noqa: E402
from r2kd_keras.models import get_model  # noqa: E402

BATCH = 32
# (label, structure, sparsity); the first is the dense reference.
CONFIGS = [
    ("dense", None, 0.0),
    ("unstructured 50%", "unstructured", 0.5),
    ("unstructured 80%", "unstructured", 0.8),
    ("unstructured 90%", "unstructured", 0.9),
    ("filters 25%", "filters", 0.25),
    ("filters 50%", "filters", 0.5),
    ("filters 75%", "filters", 0.75),
    ("xnnpack-sparse 80%", "xnnpack", 0.8),
]
LARGE_CONFIGS = ("dense", "unstructured 80%", "filters 50%", "xnnpack-sparse 80%")
NOTES = []


def flops(model):
    """Multiply-adds x 2 of the Conv / depthwise / Dense layers at batch 1."""
    total = 0
    for layer in model.layers:
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                                  keras.layers.SeparableConv2D, keras.layers.Dense)):
            continue
        out = layer.output.shape
        positions = int(np.prod(out[1:-1])) if len(out) > 2 else 1
        for kernel in pruning.prunable_kernels(layer):
            # Every kernel entry is one multiply-add per output position.
            total += 2 * positions * int(np.prod(kernel.shape))
    return total


def at_input_size(model, size):
    """The same network and weights with a (size, size, 3) input."""
    config = model.get_config()
    for entry in config["layers"]:
        if entry["class_name"] == "InputLayer":
            entry["config"]["batch_shape"] = [None, size, size, 3]
        entry.pop("build_config", None)
    resized = keras.Model.from_config(config)
    resized.set_weights(model.get_weights())
    return resized


def train_dense(name, x, y, epochs):
    model = get_model(name, 10, (32, 32, 3))
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0)
    return model


def keepdims_head(model):
    """The same function with XNNPACK's sparse-subgraph end: global pooling
    with keepdims, a 1x1 conv classifier, Flatten (tfmot's rule)."""
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(
        model.get_layer("avg_pool").input
    )
    dense = model.get_layer("logits")
    classifier = keras.layers.Conv2D(dense.units, 1, name="logits")
    outputs = keras.layers.Flatten(name="flat_logits")(classifier(pooled))
    classifier.set_weights([dense.kernel.numpy()[None, None], dense.bias.numpy()])
    return keras.Model(model.inputs, outputs, name=model.name)


def copy_of(model):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def prune_and_finetune(dense, structure, sparsity, x, y, steps):
    """One-shot prune, R2KD fine-tune with the dense student as teacher."""
    student = copy_of(dense)
    if structure == "xnnpack":
        student = keepdims_head(student)
    if structure is not None:
        schedule = pruning.ConstantSparsity(sparsity, 0, end_step=0)
        student = pruning.prune_for_structure(student, structure, schedule)
    if steps:
        # A copy as teacher: the distiller freezes its teacher, and the next
        # configuration's student is cloned from `dense`.
        distiller = R2KDDistiller(student=student, teacher=copy_of(dense))
        distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
        count = steps * BATCH
        distiller.fit(x[:count], y[:count], batch_size=BATCH, epochs=1, verbose=0,
                      callbacks=[pruning.UpdatePruningStep()])
    else:
        pruning.begin_pruning_step(student)  # step 0: the one-shot masks
    return pruning.finalize(student) if structure is not None else student


def export_file(model, path, quantize, calibration):
    with contextlib.redirect_stdout(io.StringIO()):
        return export.to_tflite(
            model, path, quantize=quantize,
            representative_data=calibration if quantize else None,
            inference_io="int8" if quantize else "float32",
            sparsity=True, latency_runs=1,
        )


def _as_input(interpreter, x):
    """`x` as the file's input tensor expects it (quantised for int8 io)."""
    detail = interpreter.get_input_details()[0]
    if detail["dtype"] == np.int8:
        scale, zero = detail["quantization"]
        x = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
    return detail["index"], x


def litert_top1(path, x, y):
    """Top-1 of the `.tflite` file itself on `(x, y)`, one image per call
    (int8 logits keep their order: the output scale is positive)."""
    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    output = interpreter.get_output_details()[0]["index"]
    hits = 0
    for image, label in zip(x, y):
        interpreter.set_tensor(*_as_input(interpreter, image[None]))
        interpreter.invoke()
        hits += int(np.argmax(interpreter.get_tensor(output)[0]) == label)
    return hits / len(y)


def interleaved_latency(paths, size, threads, rounds, reps):
    """Median ms per image of each file, timed in interleaved rounds."""
    x = np.random.default_rng(0).random((1, size, size, 3)).astype(np.float32)
    interpreters = {}
    for key, path in paths.items():
        interpreter = Interpreter(model_path=path, num_threads=threads)
        interpreter.allocate_tensors()
        interpreter.set_tensor(*_as_input(interpreter, x))
        for _ in range(5):
            interpreter.invoke()
        interpreters[key] = interpreter
    samples = {key: [] for key in paths}
    for _ in range(rounds):
        for key, interpreter in interpreters.items():
            for _ in range(reps):
                start = time.perf_counter()
                interpreter.invoke()
                samples[key].append(1e3 * (time.perf_counter() - start))
    return {key: statistics.median(values) for key, values in samples.items()}


def run(args, on_rows):
    x, y = fashion_mnist_arrays("train", args.train_examples)
    x_test, y_test = fashion_mnist_arrays("val", args.test_examples)
    calibration = x[: args.calibration_examples]
    workdir = tempfile.mkdtemp(prefix="latency_")
    rows = []
    for name in args.models.split(","):
        dense = train_dense(name, x, y, args.epochs)
        finals = {}
        for label, structure, sparsity in CONFIGS:
            if label not in args.configs:
                continue
            try:
                final = prune_and_finetune(dense, structure, sparsity, x, y,
                                           args.finetune_steps)
            except ValueError as error:  # PruneForLatencyOnXNNPack's refusal
                NOTES.append(f"{name}, {label}: not run: {str(error)[:160]}")
                continue
            accuracy = float(np.mean(
                np.argmax(final.predict(x_test, verbose=0), -1) == y_test
            ))
            finals[label] = (final, accuracy)
        for size in (32, args.large_input) if args.large_input else (32,):
            labels = [c[0] for c in CONFIGS if c[0] in finals and (
                size == 32 or c[0] in LARGE_CONFIGS)]
            for quantize in (None, "int8"):
                paths, reports, models = {}, {}, {}
                for label in labels:
                    model = finals[label][0]
                    if size != 32:
                        model = at_input_size(model, size)
                    tag = label.replace(" ", "_").replace("%", "")
                    path = os.path.join(workdir, f"{name}_{size}_{tag}_{quantize or 'f32'}.tflite")
                    calib = calibration if size == 32 else np.asarray(
                        keras.ops.image.resize(calibration, (size, size))
                    )
                    reports[label] = export_file(model, path, quantize, calib)
                    paths[label] = path
                    models[label] = model
                timing = {
                    threads: interleaved_latency(paths, size, threads, args.rounds, args.reps)
                    for threads in (1, 2)
                }
                for label in labels:
                    report = reports[label]
                    rows.append({
                        "model": name, "input": size, "config": label,
                        "quantize": quantize or "float32",
                        "params": int(models[label].count_params()),
                        "flops": flops(models[label]),
                        "weight_sparsity": report.weight_sparsity,
                        "sparse_encoding": bool(report.sparse_encoding),
                        "bytes_gzip": report.bytes_gzip,
                        "ms_1_thread": timing[1][label],
                        "ms_2_threads": timing[2][label],
                        "x_dense_1_thread": timing[1][label] / timing[1]["dense"],
                        "x_dense_2_threads": timing[2][label] / timing[2]["dense"],
                        "top1": finals[label][1] if size == 32 else None,
                        "top1_litert": (litert_top1(paths[label], x_test, y_test)
                                        if size == 32 else None),
                    })
                    print(json.dumps(rows[-1]), flush=True)
                on_rows(rows)
    return rows


def write(args, rows, seconds):
    with open(args.out + ".json", "w") as f:
        json.dump({"args": vars(args), "rows": rows, "notes": NOTES, "seconds": seconds},
                  f, indent=1)
    lines = [
        "# Pruning latency benchmark (LiteRT, batch 1)",
        "",
        f"Command: `python benchmarks/latency.py {' '.join(args.argv)}` "
        f"({seconds / 60:.1f} min, {platform.machine()}, 2 CPU cores shared with "
        "other jobs). Generated by the script; do not edit by hand.",
        "",
        f"Students trained {args.epochs} epoch(s) on {args.train_examples} Fashion-MNIST "
        "images (32x32x3); each configuration starts from that dense student, is "
        "pruned one-shot with `pruning.prune_for_structure`, "
        + (f"fine-tuned {args.finetune_steps} steps with `R2KDDistiller` (dense "
           "student as teacher; the dense row gets the same steps)"
           if args.finetune_steps else "not fine-tuned (masks set by one pruning step)")
        + ", then `pruning.finalize`. "
        f"Top-1 on {args.test_examples} test images"
        + (f" (32x32 only; the {args.large_input}x{args.large_input} rows reuse the "
           "same weights, for latency and size)" if args.large_input else "")
        + "; `top-1` is the Keras model's, `LiteRT` the exported file's (so the int8 "
        "rows show what quantisation costs). int8 = full integer with int8 io. "
        f"Latency: median over {args.rounds} interleaved rounds x {args.reps} "
        "invocations; `x dense` is the ratio to the dense file timed in the same "
        "rounds. FLOPs: 2 x multiply-adds of Conv/Dense layers as executed "
        "(zeros of unstructured sparsity are still multiplied by dense kernels).",
        "",
        "| model | input | config | quant | params | MFLOPs | weight sparsity | sparse enc. "
        "| gzip bytes | ms 1 thr | x dense | ms 2 thr | x dense | top-1 | LiteRT |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        top1, litert = (f"{r[key]:.1%}" if r.get(key) is not None else ""
                        for key in ("top1", "top1_litert"))
        lines.append(
            f"| {r['model']} | {r['input']} | {r['config']} | {r['quantize']} "
            f"| {r['params']:,} | {r['flops'] / 1e6:.1f} | {r['weight_sparsity']:.0%} "
            f"| {'yes' if r['sparse_encoding'] else 'no'} | {r['bytes_gzip']:,} "
            f"| {r['ms_1_thread']:.3f} | {r['x_dense_1_thread']:.2f} "
            f"| {r['ms_2_threads']:.3f} | {r['x_dense_2_threads']:.2f} | {top1} "
            f"| {litert} |"
        )
    lines += [""] + [f"- {note}" for note in NOTES]
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet8x4,mobilenetv2")
    parser.add_argument("--train_examples", type=int, default=2000)
    parser.add_argument("--test_examples", type=int, default=500)
    parser.add_argument("--calibration_examples", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--finetune_steps", type=int, default=30)
    parser.add_argument("--large_input", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--configs", default=",".join(c[0] for c in CONFIGS),
                        help="comma-separated labels of CONFIGS; 'dense' is needed")
    parser.add_argument("--out", default="benchmarks/results/latency")
    args = parser.parse_args(argv)
    args.configs = args.configs.split(",")
    args.argv = list(argv if argv is not None else sys.argv[1:])
    return args


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    rows = run(args, lambda rows: write(args, rows, time.time() - start))
    write(args, rows, time.time() - start)


if __name__ == "__main__":
    main()

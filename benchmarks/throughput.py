"""Training throughput of R2KD against the work it must do and against
`keras.distillation.Distiller`, all measured in the same run; peak memory,
batch/class scaling and a oneDNN profile on request.

    python benchmarks/throughput.py [--teacher resnet32x4 --student resnet8x4
                                     --batch 64 --steps 3 --rounds 3]
    python benchmarks/throughput.py [--keys a,b,cf,...]  # a subset of the rows
    python benchmarks/throughput.py --rss [--keys ...]   # peak RSS, a process per row
    python benchmarks/throughput.py --scaling    # R2KD / KD over batch x classes
    python benchmarks/throughput.py --profile c2f   # oneDNN primitive times

Rows (seconds per step, images/s):
  a   the student's plain train step
  b   one teacher inference (float32, BatchNorm unfolded)
  bf  b with BatchNorm folded (`folding.fold_batchnorm`)
  bh  bf in bfloat16 (`folding.inference_teacher(teacher, "bfloat16")`)
  c   one R2KD step (CutMix view, pruned-teacher blend), teachers unfolded
  cf  c with folded teachers (the default, `fold_teachers=True`)
  c1  c with `teacher_dtype="bfloat16"`; c1f folded
  c2  c1 with the student in mixed_bfloat16 too; c2f folded
  d   keras.distillation.Distiller with LogitsDistillation (KL)
  e   our distillation="kd" (one view, no blend; folded teacher)
  p   one batch of the CIFAR input pipeline (`data.build_pipeline`: pad 4,
      crop, flip, normalise), in memory
and the ratios x / (2a + 4b) (the work an R2KD step must do: two student
steps, two teachers on two views; b stays the unfolded float32 teacher so
that all ratios share one denominator), e / d, and p / c2f (does the input
pipeline outrun the fastest step?). Targets (issue 15): cf <= 0.85,
c1f <= 0.50, c2f <= 0.42 times (2a + 4b); e / d <= 1.0. Configurations are
interleaved in rounds and medians are reported, because these machines are
shared and noisy: compare ratios from one run, not absolute times.
"""

import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from r2kd_keras import R2KDDistiller  # noqa: E402
from r2kd_keras import data  # noqa: E402
from r2kd_keras import folding  # noqa: E402
from r2kd_keras.models import get_model  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
SCALING_BATCHES = (32, 64, 128, 256)
SCALING_CLASSES = (10, 100, 1000)
PROFILE_WARMUP_STEPS = 2
LOAD_AT_START = os.getloadavg()[0]


def sgd():
    return keras.optimizers.SGD(0.05, momentum=0.9)


class Models:
    """The teacher and student of one run, built once."""

    def __init__(self, args, num_classes):
        shape = (args.image_size, args.image_size, 3)
        self.teacher = get_model(args.teacher, num_classes, shape)
        self.teacher.trainable = False
        self.student = get_model(args.student, num_classes, shape)
        keras.config.set_dtype_policy("mixed_bfloat16")
        self.student_bf16 = get_model(args.student, num_classes, shape)
        keras.config.set_dtype_policy("float32")
        self.student_bf16.set_weights(self.student.get_weights())


def plain_step(models, x, y):
    plain = keras.models.clone_model(models.student)
    plain.compile(optimizer=sgd(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return lambda: plain.train_on_batch(x, y)


def inference(model, x):
    call = tf.function(lambda images: model(images, training=False))
    return lambda: call(x).numpy()


def distiller_step(models, x, y, bf16_student=False, **kwargs):
    student = models.student_bf16 if bf16_student else keras.models.clone_model(models.student)
    model = R2KDDistiller(student, models.teacher, **kwargs)
    model.compile(optimizer=sgd())
    return lambda: model.train_on_batch(x, y)


def r2kd_step(models, x, y, **kwargs):
    return distiller_step(models, x, y, augmenter=keras.layers.CutMix(seed=0), **kwargs)


def keras_kd_step(models, x, y):
    model = keras.distillation.Distiller(
        teacher=models.teacher,
        student=keras.models.clone_model(models.student),
        distillation_losses=keras.distillation.LogitsDistillation(temperature=4.0),
        student_loss_weight=0.1,
    )
    model.compile(optimizer=sgd(), loss="sparse_categorical_crossentropy")
    return lambda: model.train_on_batch(x, y)


def pipeline_batch(models, x, y):
    """One batch of the CIFAR pipeline at the run's batch and image size."""
    size = x.shape[1]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10_000, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, models.student.output_shape[-1], 10_000)
    ds = data.build_pipeline(
        tf.data.Dataset.from_tensor_slices((images, labels)), training=True,
        batch_size=x.shape[0], pad=4, normalization="cifar100",
    ).repeat()
    iterator = iter(ds)
    return lambda: next(iterator)[0].numpy()


BF16 = {"teacher_dtype": "bfloat16"}
UNFOLDED = {"fold_teachers": False}
# key -> (description, factory(models, x, y) -> zero-argument step)
CONFIGS = {
    "a": ("student step", plain_step),
    "b": ("teacher inference", lambda m, x, y: inference(m.teacher, x)),
    "bf": ("  folded", lambda m, x, y: inference(folding.fold_batchnorm(m.teacher), x)),
    "bh": ("  folded, bfloat16",
           lambda m, x, y: inference(folding.inference_teacher(m.teacher, "bfloat16"), x)),
    "c": ("r2kd step, unfolded", lambda m, x, y: r2kd_step(m, x, y, **UNFOLDED)),
    "cf": ("  folded (default)", r2kd_step),
    "c1": ("r2kd, bf16 teacher, unfolded", lambda m, x, y: r2kd_step(m, x, y, **BF16, **UNFOLDED)),
    "c1f": ("  folded", lambda m, x, y: r2kd_step(m, x, y, **BF16)),
    "c2": ("c1 + bf16 student, unfolded",
           lambda m, x, y: r2kd_step(m, x, y, bf16_student=True, **BF16, **UNFOLDED)),
    "c2f": ("  folded", lambda m, x, y: r2kd_step(m, x, y, bf16_student=True, **BF16)),
    "d": ("keras Distiller (KL)", keras_kd_step),
    "e": ("ours distillation='kd'",
          lambda m, x, y: distiller_step(m, x, y, distillation="kd", teacher_prune_rate=0.0)),
    "p": ("input pipeline, one batch", pipeline_batch),
}
RATIOS = [  # (numerator, target or None)
    ("c", None), ("cf", 0.85), ("c1", None), ("c1f", 0.50), ("c2", None), ("c2f", 0.42),
]


def measure(runners, steps, rounds):
    """Median seconds per step of each runner, interleaved over rounds.

    Each round's running medians go to stderr, so a run cut short on a busy
    machine still leaves numbers."""
    samples = {name: [] for name in runners}
    for run in runners.values():
        run()  # trace and warm up
        run()
    for index in range(rounds):
        for name, run in runners.items():
            for _ in range(steps):
                start = time.perf_counter()
                run()
                samples[name].append(time.perf_counter() - start)
        medians = {str(name): round(statistics.median(t), 4) for name, t in samples.items()}
        print(f"round {index + 1}/{rounds}: {json.dumps(medians)}", file=sys.stderr, flush=True)
    return {name: statistics.median(times) for name, times in samples.items()}


def fixed_batch(batch, image_size, classes):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, image_size, image_size, 3)).astype("float32")
    return x, rng.integers(0, classes, size=batch)


def peak_rss_mb():
    """This process's peak resident set size (VmHWM), in MB."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def header(args):
    return (f"{args.teacher} -> {args.student}, {args.image_size}x{args.image_size}, "
            f"batch {args.batch}, {args.classes} classes, {os.cpu_count()} CPUs, "
            f"TF {tf.__version__}, Keras {keras.__version__}, load average "
            f"{LOAD_AT_START:.1f} at the start")


def throughput(args):
    x, y = fixed_batch(args.batch, args.image_size, args.classes)
    models = Models(args, args.classes)
    keys = selected(args)
    runners = {key: CONFIGS[key][1](models, x, y) for key in keys}
    seconds = measure(runners, args.steps, args.rounds)
    print(header(args))
    print(f"{'configuration':36s} {'s/step':>8s} {'images/s':>9s}")
    for key in keys:
        print(f"{key:4s} {CONFIGS[key][0]:31s} {seconds[key]:8.3f} {args.batch / seconds[key]:9.1f}")
    lines = [
        (f"{key:>3s} / (2a + 4b) " + (f"(target <= {target:.2f})" if target else "(no target)"),
         key, ("a", "b"))
        for key, target in RATIOS
    ] + [
        ("  e / d          (target <= 1.00)", "e", ("d",)),
        ("  bf / b  (folding, one pass)     ", "bf", ("b",)),
        ("  bh / b  (+ bfloat16, one pass)  ", "bh", ("b",)),
    ]
    for label, key, needs in lines:
        if key in seconds and all(n in seconds for n in needs):
            base = 2 * seconds["a"] + 4 * seconds["b"] if needs == ("a", "b") else seconds[needs[0]]
            print(f"{label:34s}: {seconds[key] / base:.3f}")
    fastest = min((k for k in seconds if k.startswith("c")), key=seconds.get, default=None)
    if fastest and "p" in seconds:
        print(f"  p / {fastest} (input pipeline's rate over the fastest step's consumption): "
              f"{seconds[fastest] / seconds['p']:.1f}")


def selected(args):
    keys = args.keys.split(",") if args.keys else list(CONFIGS)
    unknown = [key for key in keys if key not in CONFIGS]
    if unknown:
        raise SystemExit(f"--keys: unknown rows {unknown}; choose from {list(CONFIGS)}")
    return keys


def only(args):
    """One configuration in this process (or none: imports and models only);
    prints its peak RSS."""
    x, y = fixed_batch(args.batch, args.image_size, args.classes)
    models = Models(args, args.classes)
    if args.only != "none":
        run = CONFIGS[args.only][1](models, x, y)
        for step in range(args.steps):
            if step == PROFILE_WARMUP_STEPS:
                # oneDNN's verbose timestamps are epoch milliseconds.
                print(f"profile_from_ms={time.time() * 1000:.3f}", flush=True)
            run()
    print(f"peak_rss_mb={peak_rss_mb():.0f}")


def child(args, key, env=None):
    """Runs `--only key` in a fresh Python; returns its stdout."""
    command = [sys.executable, os.path.abspath(__file__), "--only", key, "--steps", str(args.steps)]
    for name in ("teacher", "student", "classes", "image_size", "batch"):
        command += [f"--{name}", str(getattr(args, name))]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return result.stdout


def rss(args):
    """Peak RSS of each configuration, each in its own process."""
    print(f"peak RSS (VmHWM), one process per configuration, {args.steps} steps each")
    print(f"{'configuration':36s} {'MB':>7s} {'over base':>10s}")
    base = None
    for key in ["none"] + selected(args):
        value = float(re.search(r"peak_rss_mb=(\d+)", child(args, key)).group(1))
        base = value if base is None else base
        description = "imports + models (base)" if key == "none" else CONFIGS[key][0]
        print(f"{key:4s} {description:31s} {value:7.0f} {value - base:10.0f}", flush=True)


def profile(args):
    """Time per oneDNN primitive kind and implementation over `--steps`
    steps of one configuration (ONEDNN_VERBOSE=1 in a child process; the
    first steps, which trace and warm up, are left out)."""
    if args.steps <= PROFILE_WARMUP_STEPS:
        raise SystemExit(f"--profile needs --steps > {PROFILE_WARMUP_STEPS}; got {args.steps}")
    env = dict(os.environ, ONEDNN_VERBOSE="1", ONEDNN_VERBOSE_TIMESTAMP="1")
    lines = child(args, args.profile, env).splitlines()
    start = float(next(line for line in lines if line.startswith("profile_from_ms=")).split("=")[1])
    execs = [
        fields for fields in (line.split(",") for line in lines if line.startswith("onednn_verbose"))
        if "exec" in fields and float(fields[fields.index("exec") - 2]) >= start
    ]
    if not execs:
        raise SystemExit("--profile: no oneDNN primitive ran (is TF_ENABLE_ONEDNN_OPTS=0?)")
    steps_kept = args.steps - PROFILE_WARMUP_STEPS
    by_kind = collections.defaultdict(lambda: [0, 0.0])
    for fields in execs:
        kind = fields[fields.index("exec") + 2]
        impl = fields[fields.index("exec") + 3].split(":")[0]
        dtype = "bf16" if ":bf16" in ",".join(fields) else "f32"
        entry = by_kind[(kind, impl, dtype)]
        entry[0] += 1
        entry[1] += float(fields[-1])
    total = sum(ms for _, ms in by_kind.values())
    print(f"oneDNN primitives of '{args.profile}' ({CONFIGS[args.profile][0].strip()}), "
          f"per step over the last {steps_kept} of {args.steps} steps")
    print(f"{'primitive':22s} {'impl':14s} {'dtype':5s} {'calls':>6s} {'ms':>8s} {'share':>6s}")
    for (kind, impl, dtype), (calls, ms) in sorted(by_kind.items(), key=lambda kv: -kv[1][1]):
        print(f"{kind:22s} {impl:14s} {dtype:5s} {calls // steps_kept:6d} "
              f"{ms / steps_kept:8.1f} {ms / total:6.1%}")
    print(f"{'total oneDNN':43s} {total / steps_kept:15.1f}")


def scaling(args):
    """R2KD step / KD step over batch x classes, interleaved; writes
    scaling.{json,md,png} to benchmarks/results/."""
    runners = {}
    for classes in SCALING_CLASSES:
        models = Models(args, classes)
        for batch in SCALING_BATCHES:
            x, y = fixed_batch(batch, args.image_size, classes)
            teacher = {"teacher_dtype": args.scaling_teacher_dtype}
            runners[("r2kd", batch, classes)] = r2kd_step(models, x, y, **teacher)
            runners[("kd", batch, classes)] = distiller_step(
                models, x, y, distillation="kd", teacher_prune_rate=0.0, **teacher)
    seconds = measure(runners, args.steps, args.rounds)
    rows = [
        {"batch": batch, "classes": classes,
         "r2kd_s": seconds[("r2kd", batch, classes)], "kd_s": seconds[("kd", batch, classes)],
         "ratio": seconds[("r2kd", batch, classes)] / seconds[("kd", batch, classes)]}
        for classes in SCALING_CLASSES for batch in SCALING_BATCHES
    ]
    setup = (f"{header(args).replace(f'batch {args.batch}, {args.classes} classes, ', '')}; "
             f"teacher_dtype={args.scaling_teacher_dtype}, folded teachers; R2KD: CutMix view + "
             f"pruned-teacher blend; KD: distillation='kd', one view; medians of "
             f"{args.steps * args.rounds} steps, interleaved")
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "scaling.json"), "w") as f:
        json.dump({"setup": setup, "command": " ".join(sys.argv), "rows": rows}, f, indent=1)
    ratios = [row["ratio"] for row in rows]
    lines = [
        "# R2KD step / KD step over batch and classes", "",
        f"`python {' '.join(sys.argv)}`", "", setup + ".", "",
        "| classes \\ batch | " + " | ".join(str(b) for b in SCALING_BATCHES) + " |",
        "|---|" + "---|" * len(SCALING_BATCHES),
    ]
    for classes in SCALING_CLASSES:
        cells = [f"{row['ratio']:.2f} ({row['r2kd_s']:.2f} / {row['kd_s']:.2f} s)"
                 for row in rows if row["classes"] == classes]
        lines.append(f"| {classes} | " + " | ".join(cells) + " |")
    lines += ["", f"Ratio range {min(ratios):.2f} - {max(ratios):.2f} "
              f"(max / min {max(ratios) / min(ratios):.2f}); cells: ratio (R2KD s / KD s)."]
    with open(os.path.join(RESULTS, "scaling.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    plot_scaling(rows, os.path.join(RESULTS, "scaling.png"))
    print("\n".join(lines))


def plot_scaling(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axis = pyplot.subplots(figsize=(6, 4))
    for classes in SCALING_CLASSES:
        picked = [row for row in rows if row["classes"] == classes]
        axis.plot([row["batch"] for row in picked], [row["ratio"] for row in picked],
                  marker="o", label=f"{classes} classes")
    axis.set_xscale("log", base=2)
    axis.set_xticks(SCALING_BATCHES, [str(b) for b in SCALING_BATCHES])
    axis.set_ylim(0, max(row["ratio"] for row in rows) * 1.2)
    axis.set_xlabel("batch")
    axis.set_ylabel("R2KD step / KD step (time)")
    axis.set_title("R2KD against KD: cost ratio over batch and classes")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="resnet32x4")
    parser.add_argument("--student", default="resnet8x4")
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rss", action="store_true", help="peak RSS per configuration")
    parser.add_argument("--keys", help="comma-separated rows to run (default: all)")
    parser.add_argument("--scaling", action="store_true", help="batch x classes table")
    parser.add_argument("--scaling_teacher_dtype", default="auto",
                        help="teacher_dtype of the scaling rows ('auto': bfloat16 on AMX/AVX512-BF16)")
    parser.add_argument("--profile", choices=list(CONFIGS), help="oneDNN profile of one row")
    parser.add_argument("--only", choices=["none"] + list(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        only(args)
    elif args.rss:
        rss(args)
    elif args.scaling:
        scaling(args)
    elif args.profile:
        profile(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()

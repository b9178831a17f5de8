"""Accuracy of R2KD against KD, DIST, DKD and the student alone, on real data.

The paper's claims at CPU scale (issue 7): (1) the R2KD student beats the
KD, DIST, DKD students and the student alone; (2) with augmentation (a CutMix
second view) R2KD gains where KL-based KD can lose; (3) the pruned-teacher
blend helps. One teacher per seed is trained once and cached as `.keras`;
every student configuration of the grid is then trained from it (and saved
in `<cache_dir>/students`, so evaluations such as robustness.py need not
train it again):

    none, kd, dist, dkd, r2kd          x  --augment none | cutmix
    r2kd-noblend (teacher_prune_rate=0), r2kd-softrank (rank_mode="soft"),
    r2kd-trainprune (the reference's training-mode pruned teacher): cutmix

The score is the top-1 on the whole test split after the LAST epoch (not the
best epoch), as mean and sample standard deviation over the seeds. Results go
to `<output_dir>/accuracy-<dataset>.{md,json,png}`, with seed-paired
differences (the comparisons share teacher and data per seed, so their
noise is smaller than the table's) and, per seed, how far the pruned copy of
the teacher moves the blended target. The JSON keeps every
per-seed number and a rerun skips what it already holds, so a long grid can
run across sessions (the size flags must then stay the same).

    python benchmarks/accuracy.py                       # the default grid
    python benchmarks/accuracy.py --configs 'r2kd*'     # a part of it
    python benchmarks/accuracy.py --full                # the paper's recipe
    python benchmarks/accuracy.py --dataset cifar100 --data_dir ~/tensorflow_datasets

Training is the runner's (`r2kd_keras.train`): its data loading, teacher
stage (trained with the recipe, cached), and student stage (`L2SGD`, step
decay and DKD's warm-up scaled to the epochs), which saves every student in
`<cache_dir>/students/<settings>/<configuration>/` (`last.keras`). Teachers run in `teacher_dtype="auto"` (bfloat16 on CPUs
with AVX512-BF16/AMX) for every method alike.
"""

import argparse
import dataclasses
import fnmatch
import functools
import json
import os
import platform
import shlex
import sys
import textwrap
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from r2kd_keras import pruning  # noqa: E402
from r2kd_keras import train  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


@dataclasses.dataclass(frozen=True)
class StudentConfig:
    """One configuration of the grid: a method, its second view and R2KD options.

    Args:
        method: `distillation` of `R2KDDistiller`.
        augment: `"none"` or `"cutmix"` (`augment.make_augmenter` name).
        teacher_prune_rate: rate of R2KD's pruned teacher copy; 0: no blend.
        rank_mode: R2KD's rank term, `"exact"` or `"soft"`.
        pruned_teacher_training: run the pruned teacher in training mode,
            as the reference does.
        variant: suffix of the name for R2KD variants, e.g. `"-noblend"`.

    Example:
    >>> StudentConfig("r2kd", "cutmix", rank_mode="soft", variant="-softrank").name
    'r2kd-softrank/cutmix'
    """

    method: str
    augment: str
    teacher_prune_rate: float = 0.1
    rank_mode: str = "exact"
    pruned_teacher_training: bool = False
    variant: str = ""

    @property
    def name(self):
        return f"{self.method}{self.variant}/{self.augment}"

    @property
    def label(self):
        return METHOD_LABELS[self.method + self.variant]


METHOD_LABELS = {
    "none": "student alone (CE)", "kd": "KD", "dist": "DIST", "dkd": "DKD",
    "r2kd": "R2KD", "r2kd-noblend": "R2KD, no pruned-teacher blend",
    "r2kd-softrank": "R2KD, soft rank",
    "r2kd-trainprune": "R2KD, training-mode pruned teacher (reference)",
}
AUGMENTS = ("none", "cutmix")
GRID = tuple(
    [StudentConfig(m, a) for m in ("none", "kd", "dist", "dkd", "r2kd") for a in AUGMENTS]
    + [StudentConfig("r2kd", "cutmix", teacher_prune_rate=0.0, variant="-noblend"),
       StudentConfig("r2kd", "cutmix", rank_mode="soft", variant="-softrank"),
       StudentConfig("r2kd", "cutmix", pruned_teacher_training=True,
                     variant="-trainprune")]
)
# Seed-paired differences the report lists: (label, minuend, subtrahend).
PAIRED = (
    [(f"R2KD - {METHOD_LABELS[m]}, augment {a}", f"r2kd/{a}", f"{m}/{a}")
     for a in AUGMENTS for m in ("none", "kd", "dist", "dkd")]
    + [(f"CutMix view, {METHOD_LABELS[m]}", f"{m}/cutmix", f"{m}/none")
       for m in ("none", "kd", "dist", "dkd", "r2kd")]
    + [("pruned-teacher blend (R2KD, cutmix)", "r2kd/cutmix", "r2kd-noblend/cutmix"),
       ("soft rank - exact rank (R2KD, cutmix)", "r2kd-softrank/cutmix", "r2kd/cutmix"),
       ("training-mode - inference-mode pruned teacher (R2KD, cutmix)",
        "r2kd-trainprune/cutmix", "r2kd/cutmix")]
)
# The 12 x 3 students and 3 teachers: measured 2.7 h projected on 2 cores
# shared at load ~4 (one process got ~1 core); about 1.5 h on 2 idle cores.
DEFAULTS = {"train_subset": 8_000, "epochs": 8, "teacher_epochs": 10}
# The paper's recipe (r2kd-method.md section 5) on the whole training set.
FULL = {"train_subset": None, "epochs": train.REFERENCE_EPOCHS,
        "teacher_epochs": train.REFERENCE_EPOCHS}
# Settings a result depends on: a JSON written with others cannot be resumed.
SETTINGS = ("dataset", "teacher", "student", "epochs", "teacher_epochs",
            "train_subset", "val_subset", "batch_size", "lr", "teacher_dtype")


def select_configs(patterns):
    """The grid's configurations matching any of the `fnmatch` patterns.

    Args:
        patterns: comma-separated patterns of names like `r2kd/cutmix`, or
            empty for the whole grid.

    Returns:
        list of `StudentConfig`, in grid order.

    Example:
    >>> [c.name for c in select_configs("kd/*")]
    ['kd/none', 'kd/cutmix']
    """
    if not patterns:
        return list(GRID)
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = [c for c in GRID if any(fnmatch.fnmatchcase(c.name, p) for p in wanted)]
    if not chosen:
        raise ValueError(
            f"--configs={patterns!r} matches no configuration; use names or "
            f"patterns of: {', '.join(c.name for c in GRID)}."
        )
    return chosen


# ------------------------------------------------------------------ training
def student_dir(cache_dir, config, spec):
    """The folder of the trained student of `spec` under `config` (seed and
    size settings): the runner's stage writes `last.keras` there, so that
    evaluations such as robustness.py need not train it again."""
    tag = (f"{config.dataset}-{config.teacher}-{config.student}-seed{config.seed}-"
           f"n{config.train_subset or 'all'}-e{config.teacher_epochs}-{config.epochs}"
           f"-b{config.batch_size}-lr{config.lr:g}")
    return os.path.join(cache_dir, "students", tag, spec.name.replace("/", "-"))


def student_file(cache_dir, config, spec):
    """The trained student's `.keras` file (see `student_dir`)."""
    return os.path.join(student_dir(cache_dir, config, spec), "last.keras")


def train_student(config, spec, teacher, info, train_ds, val_ds, steps, directory):
    """Trains a fresh student of `config` with `spec` by the runner's stage;
    its last-epoch top-1.

    The student's checkpoints, metrics and backup go to `directory` (with
    the runner's `run_config.json` guard), so a killed grid resumes the
    student it was training and later studies can reuse the trained students
    (`last.keras`).

    Args:
        config: a `train.TrainConfig` (student, seed, epochs, optimizer).
        spec: the `StudentConfig`.
        teacher: the trained teacher (unused for `method="none"`).
        info: the dataset's `DatasetInfo`.
        train_ds: repeated training batches.
        val_ds: test batches.
        steps: steps per epoch.
        directory: the student's output folder.

    Returns:
        `(top1, train_seconds, optimizer_steps)`.

    Example:
    >>> top1, seconds, _ = train_student(config, GRID[-1], teacher, info, train, test,
    ...                                  125, "results/students/seed0/r2kd-cutmix")
    """
    strategy = tf.distribute.get_strategy()
    config = dataclasses.replace(
        config, output_dir=directory, distillation=spec.method, augment=spec.augment,
        teacher_prune_rate=spec.teacher_prune_rate, rank_mode=spec.rank_mode,
        pruned_teacher_training=spec.pruned_teacher_training)
    train.prepare_output_dir(config, {spec.method: spec.augment})
    keras.utils.set_random_seed(config.seed)
    input_shape = (info.image_size, info.image_size, info.channels)
    student = train.build_student(config, info.num_classes, input_shape,
                                  steps * config.epochs)
    distill = spec.method != "none"
    stage = train.train_stage(
        config, strategy, student=student, teacher=teacher if distill else None,
        info=info, train_ds=train_ds, val_ds=val_ds, directory=directory,
        epochs=config.epochs, steps_per_epoch=steps, distillation=spec.method,
        augment=spec.augment)
    return stage["val_accuracy"], stage["train_seconds"], stage["steps"]


def teacher_for_seed(config, cache_dir, info, train_ds, val_ds):
    """The seed's teacher from `cache_dir`, trained there first if absent.

    Args:
        config: a `train.TrainConfig` with the seed; its teacher size
            settings name the cache folder.
        cache_dir: folder of the cached teachers.
        info: the dataset's `DatasetInfo`.
        train_ds: repeated training batches.
        val_ds: test batches.

    Returns:
        `(teacher, summary)` as `train.teacher_stage`, `val_accuracy` filled.

    Example:
    >>> teacher, summary = teacher_for_seed(config, "results/cache", info, train, test)
    """
    tag = (f"{config.dataset}-{config.teacher}-seed{config.seed}-"
           f"n{config.train_subset or 'all'}-e{config.teacher_epochs}-b{config.batch_size}"
           f"-lr{config.lr:g}")
    # Validating every epoch keeps the teacher's learning curve.
    config = dataclasses.replace(config, output_dir=os.path.join(cache_dir, tag),
                                 validation_freq=1)
    os.makedirs(config.output_dir, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    strategy = tf.distribute.get_strategy()
    input_shape = (info.image_size, info.image_size, info.channels)
    teacher, summary = train.teacher_stage(config, strategy, info, train_ds, val_ds,
                                           input_shape)
    if summary["val_accuracy"] is None:
        summary["val_accuracy"] = train.evaluate(teacher, val_ds, strategy)
    return teacher, summary


def blend_diagnostics(teacher, val_ds, rate=0.1, weight=0.7, temperature=4.0):
    """How far R2KD's pruned copy of the teacher moves the blended target
    `weight * z_t + (1 - weight) * z_p` on the test split.

    Measured for the pruned copy in inference mode (our default) and in
    training mode (the reference: BatchNorm on each test batch's statistics;
    a separate copy, so its moving averages do not leak into the other).

    Args:
        teacher: the trained teacher.
        val_ds: test batches `(images, labels)`.
        rate: pruning rate of the copy (R2KD: 0.1).
        weight: the teacher's share of the blend (R2KD: 0.7).
        temperature: softmax temperature of the targets (R2KD: 4).

    Returns:
        `{"inference": {...}, "training": {...}}`, each with `agree` (share of
        images where pruned and full teacher pick the same class),
        `pruned_top1`, `blend_top1`, `teacher_top1` and `target_tv` (mean
        total-variation distance between softmax(z_t / T) and the blend's).

    Example:
    >>> blend_diagnostics(teacher, val_ds)["inference"]["agree"]
    0.993
    """
    copies = {"inference": pruning.prune_teacher(teacher, rate),
              "training": pruning.prune_teacher(teacher, rate)}
    # Keras runs BatchNorm of a non-trainable layer in inference mode anyway.
    copies["training"].trainable = True
    sums = {mode: dict.fromkeys(("agree", "pruned_top1", "blend_top1", "teacher_top1",
                                 "target_tv"), 0.0) for mode in copies}
    count = 0
    for images, labels in val_ds:
        labels = np.asarray(labels).reshape(-1)
        z_t = np.asarray(teacher(images, training=False), np.float64)
        p_t = _softmax(z_t / temperature)
        for mode, model in copies.items():
            z_p = np.asarray(model(images, training=mode == "training"), np.float64)
            z_b = weight * z_t + (1.0 - weight) * z_p
            total = sums[mode]
            total["agree"] += np.sum(z_p.argmax(-1) == z_t.argmax(-1))
            total["pruned_top1"] += np.sum(z_p.argmax(-1) == labels)
            total["blend_top1"] += np.sum(z_b.argmax(-1) == labels)
            total["teacher_top1"] += np.sum(z_t.argmax(-1) == labels)
            total["target_tv"] += 0.5 * np.abs(_softmax(z_b / temperature) - p_t).sum()
        count += len(labels)
    return {mode: {k: float(v) / count for k, v in total.items()}
            for mode, total in sums.items()}


def _softmax(logits):
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


# ------------------------------------------------------------------- results
class Results:
    """The benchmark's JSON: settings, teachers and per-seed student scores.

    Args:
        path: the JSON file (read when it exists).
        settings: dict of `SETTINGS`; must equal the file's.

    Example:
    >>> results = Results("out/accuracy-fashion_mnist.json", settings)
    >>> results.has("r2kd/cutmix", 0)
    False
    """

    def __init__(self, path, settings):
        self.path = path
        self.data = {"settings": settings, "teachers": {}, "runs": {},
                     "blend": {}, "sessions": []}
        if os.path.isfile(path):
            with open(path) as f:
                self.data = json.load(f)
            self.data.setdefault("blend", {})
            if self.data["settings"] != settings:
                changed = {k: (self.data["settings"].get(k), v) for k, v in settings.items()
                           if self.data["settings"].get(k) != v}
                raise ValueError(
                    f"{path} holds results of other settings ({changed}, as "
                    "(file, now)); resume with the same flags, or pass another "
                    "--output_dir."
                )

    def start_session(self, command):
        """Appends this run's command, environment and (growing) wall time."""
        self._start = time.perf_counter()
        self.data["sessions"].append({
            "command": command, "environment": _environment(),
            "load_average": round(os.getloadavg()[0], 1), "wall_seconds": 0.0})

    def has(self, name, seed):
        return str(seed) in self.data["runs"].get(name, {})

    def add_run(self, name, seed, record):
        self.data["runs"].setdefault(name, {})[str(seed)] = record
        self.save()

    def add_teacher(self, seed, record):
        self.data["teachers"][str(seed)] = record
        self.save()

    def add_blend(self, seed, record):
        self.data["blend"][str(seed)] = record
        self.save()

    def save(self):
        if self.data["sessions"]:
            self.data["sessions"][-1]["wall_seconds"] = time.perf_counter() - self._start
        self.data["summary"] = {name: summarize(self.top1s(name)) for name in self.data["runs"]}
        if self.data["teachers"]:
            self.data["summary"]["teacher"] = summarize(
                [t["top1"] for t in self.data["teachers"].values()])
        temporary = self.path + ".tmp"
        with open(temporary, "w") as f:
            json.dump(self.data, f, indent=2)
        os.replace(temporary, self.path)

    def top1s(self, name):
        runs = self.data["runs"].get(name, {})
        return [runs[seed]["top1"] for seed in sorted(runs, key=int)]


def summarize(values):
    """Mean and sample standard deviation (ddof=1; None for one value), in %.

    Args:
        values: accuracies in [0, 1].

    Returns:
        dict with `mean`, `std` (percentage points) and `n`.

    Example:
    >>> summarize([0.8, 0.9, 1.0])
    {'mean': 90.0, 'std': 10.0, 'n': 3}
    """
    values = 100.0 * np.asarray(values, dtype=float)
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return {"mean": float(np.mean(values)), "std": std, "n": int(len(values))}


def _format_cell(summary):
    if summary is None:
        return "-"
    std = "" if summary["std"] is None else f" ± {summary['std']:.2f}"
    return f"{summary['mean']:.2f}{std} (n={summary['n']})"


def paired_differences(results):
    """Seed-paired differences of `PAIRED`, in percentage points.

    Args:
        results: the `Results`.

    Returns:
        list of `(label, summary)`, `summary` a dict with `mean`, `std`
        (ddof=1; None for one seed), `positive` (seeds where the difference
        is > 0) and `n`; only comparisons with at least one common seed.

    Example:
    >>> paired_differences(results)[0]
    ('R2KD - student alone (CE), augment none', {'mean': 1.6, 'std': 0.3, 'positive': 3, 'n': 3})
    """
    runs = results.data["runs"]
    out = []
    for label, first, second in PAIRED:
        seeds = sorted(set(runs.get(first, {})) & set(runs.get(second, {})), key=int)
        if not seeds:
            continue
        diffs = [100.0 * (runs[first][k]["top1"] - runs[second][k]["top1"]) for k in seeds]
        out.append((label, {
            "mean": float(np.mean(diffs)),
            "std": float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None,
            "positive": int(sum(d > 0 for d in diffs)), "n": len(diffs)}))
    return out


def _blend_lines(results):
    blend = results.data.get("blend", {})
    if not blend:
        return []
    seeds = sorted(blend, key=int)
    lines = [
        "How far the pruned copy (10% of each kernel zeroed, R2KD's 0.3 share of "
        "the target) moves the target, on the test split, mean over seeds "
        f"{', '.join(seeds)}:",
        "",
        "| pruned copy run in | same top-1 class as teacher | pruned top-1 | blend top-1 "
        "| teacher top-1 | TV distance of the T=4 targets |",
        "|---|---|---|---|---|---|",
    ]
    for mode in ("inference", "training"):
        mean = {k: np.mean([blend[seed][mode][k] for seed in seeds])
                for k in blend[seeds[0]][mode]}
        lines.append(
            f"| {mode} mode | {100 * mean['agree']:.2f}% | {100 * mean['pruned_top1']:.2f} "
            f"| {100 * mean['blend_top1']:.2f} | {100 * mean['teacher_top1']:.2f} "
            f"| {mean['target_tv']:.4f} |")
    return lines + [""]


def _rows_of(results):
    """`[(label, {augment: summary or None})]` in grid order, grid rows with
    at least one result."""
    rows = {}
    for spec in GRID:
        summary = results.data["summary"].get(spec.name)
        if summary:
            rows.setdefault(spec.label, dict.fromkeys(AUGMENTS))[spec.augment] = summary
    return list(rows.items())


def _environment():
    """Versions and CPU, for the report."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__, "cpu": cpu,
            "cpu_count": os.cpu_count()}


def write_report(results, md_path, png_path):
    """Writes the markdown table and the bar chart from the JSON's numbers.

    Args:
        results: the `Results`.
        md_path: the markdown file to write.
        png_path: the bar chart to write.

    Example:
    >>> write_report(results, "out/accuracy-fashion_mnist.md", "out/accuracy-fashion_mnist.png")
    """
    data = results.data
    settings = data["settings"]
    teacher = data["summary"].get("teacher")
    subset = settings["val_subset"]
    lines = [
        f"# Student top-1 on {settings['dataset']} (generated by benchmarks/accuracy.py)",
        "",
        f"Teacher {settings['teacher']} -> student {settings['student']}. Top-1 (%) on "
        f"the {f'first {subset} images of the ' if subset else ''}test split after "
        "the **last** epoch (not the best), mean ± sample standard deviation "
        "(ddof=1) over n seeds. Columns: the second view of the training step "
        "(none: one view; cutmix: a CutMix view, distilled by every method, CE on "
        "mixed labels for the student alone).",
        "",
        "| method | augment none | augment cutmix |",
        "|---|---|---|",
    ]
    lines += [f"| {label} | {_format_cell(cells['none'])} | {_format_cell(cells['cutmix'])} |"
              for label, cells in _rows_of(results)]
    paired = paired_differences(results)
    if paired:
        lines += [
            "",
            "Seed-paired differences (percentage points; per seed both runs share "
            "the teacher and the training images), mean ± std over the common "
            "seeds, and on how many seeds the difference is positive:",
            "",
            "| comparison | difference (pp) | positive on |",
            "|---|---|---|",
        ]
        for label, d in paired:
            std = "" if d["std"] is None else f" ± {d['std']:.2f}"
            lines.append(f"| {label} | {d['mean']:+.2f}{std} | {d['positive']} of {d['n']} |")
    lines += [""] + _blend_lines(results)
    lines += [
        f"Teacher {settings['teacher']}: {_format_cell(teacher)} top-1, trained "
        f"{settings['teacher_epochs']} epochs, once per seed, cached; every method "
        f"ran its teachers with teacher_dtype={settings['teacher_dtype']!r} "
        "(bfloat16 on CPUs with AVX512-BF16/AMX, else float32).",
        "",
        f"Settings: {settings['train_subset'] or 'all'} training images per epoch "
        f"(Fashion-MNIST: a seeded draw per seed), {settings['epochs']} student "
        f"epochs, batch "
        f"{settings['batch_size']}, SGD momentum 0.9, coupled L2 5e-4, lr "
        f"{settings['lr']} at batch 64, x0.1 at {train.milestone_epochs(settings['epochs'])} "
        "(the recipe's 150/180/210 of 240, scaled); DKD's warm-up of 20 of 240 "
        "epochs scaled the same way.",
        "",
        *report_footer(data, png_path),
    ]
    with open(md_path, "w") as f:
        f.write("\n".join(lines))
    _plot(results, png_path)


def report_footer(data, png_path, last_session=True):
    """The end of a generated report: the commands, the environment, the wall
    time and the chart, from the JSON's `sessions`.

    Args:
        data: the `Results.data`.
        png_path: the chart, linked by its file name.
        last_session: also give the last session's wall time.

    Example:
    >>> lines += report_footer(results.data, "out/accuracy-fashion_mnist.png")
    """
    session = data["sessions"][-1]
    env = session["environment"]
    total = sum(s["wall_seconds"] for s in data["sessions"])
    wall = f"Wall time: {total / 60:.1f} min over {len(data['sessions'])} session(s)"
    if last_session:
        wall += f"; last session {session['wall_seconds'] / 60:.1f} min"
    return [
        "Command(s), one per session: "
        + ", ".join(f"`{c}`" for c in dict.fromkeys(s["command"] for s in data["sessions"])),
        "",
        f"Environment: TensorFlow {env['tensorflow']}, Keras {env['keras']}, NumPy "
        f"{env['numpy']}, Python {env['python']}; {env['cpu']}, {env['cpu_count']} "
        f"CPUs (load average {session['load_average']} at the start).",
        "",
        wall + ".",
        "",
        f"![chart]({os.path.basename(png_path)})",
        "",
    ]


def _plot(results, png_path):
    """Bar chart: one group per method, one bar per augment, std error bars."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = _rows_of(results)
    figure, axis = plt.subplots(figsize=(max(6, 1.4 * len(rows)), 4))
    width = 0.38
    means = []
    for i, augment in enumerate(AUGMENTS):
        cells = [cells[augment] for _, cells in rows]
        positions = [k + (i - 0.5) * width for k, c in enumerate(cells) if c]
        heights = [c["mean"] for c in cells if c]
        errors = [c["std"] or 0.0 for c in cells if c]
        means += heights
        axis.bar(positions, heights, width, yerr=errors, capsize=3,
                 label=f"augment {augment}")
    teacher = results.data["summary"].get("teacher")
    if teacher:
        axis.axhline(teacher["mean"], color="k", linestyle="--", linewidth=1,
                     label="teacher")
        means.append(teacher["mean"])
    axis.set_xticks(range(len(rows)))
    axis.set_xticklabels([textwrap.fill(label, 18) for label, _ in rows], fontsize=8)
    if means:
        axis.set_ylim(max(0.0, min(means) - 5), min(100.0, max(means) + 3))
    settings = results.data["settings"]
    axis.set_ylabel("final top-1 (%)")
    axis.set_title(f"{settings['dataset']}: {settings['teacher']} -> "
                   f"{settings['student']}, mean ± std over seeds")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(png_path, dpi=90)
    plt.close(figure)


# ---------------------------------------------------------------------- main
def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fashion_mnist",
                        choices=("fashion_mnist", "cifar100", "tiny_imagenet"))
    parser.add_argument("--data_dir", default=None, help="Where the dataset is.")
    parser.add_argument("--teacher", default="resnet14")
    parser.add_argument("--student", default="resnet8")
    parser.add_argument("--seeds", default="0,1,2", help="Comma-separated seeds.")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"Student epochs (default {DEFAULTS['epochs']}).")
    parser.add_argument("--teacher_epochs", type=int, default=None,
                        help=f"Teacher epochs (default {DEFAULTS['teacher_epochs']}).")
    parser.add_argument("--train_subset", type=int, default=None,
                        help=f"Training images (default {DEFAULTS['train_subset']}; "
                             "0: all).")
    parser.add_argument("--test_subset", type=int, default=None,
                        help="Evaluate on the first N test images (default: all).")
    parser.add_argument("--batch_size", type=int, default=train.REFERENCE_BATCH)
    parser.add_argument("--lr", type=float, default=0.05, help="lr at batch 64.")
    parser.add_argument("--configs", default="",
                        help="Comma-separated fnmatch filter of configurations, e.g. "
                             "'r2kd*,kd/none'. Names: " + ", ".join(c.name for c in GRID))
    parser.add_argument("--full", action="store_true",
                        help="The recipe: all training images, 240 epochs.")
    parser.add_argument("--output_dir", default=RESULTS_DIR)
    parser.add_argument("--cache_dir", default=None,
                        help="Teacher cache (default: <output_dir>/cache).")
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    args = parser.parse_args(argv)
    size = FULL if args.full else DEFAULTS
    for name, value in size.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.train_subset == 0:
        args.train_subset = None
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds={args.seeds!r} must be comma-separated integers, e.g. 0,1,2.")
    if not args.seeds:
        parser.error("--seeds is empty; pass e.g. 0,1,2.")
    return args


def main(argv=None):
    """Runs the missing part of the grid and rewrites the report.

    Args:
        argv: command-line arguments; None: `sys.argv[1:]`.

    Returns:
        The `Results`.

    Example:
    >>> main(["--configs", "kd/none,r2kd/none", "--seeds", "0"])
    """
    argv = sys.argv[1:] if argv is None else argv
    args = _parse_args(argv)
    config = train.TrainConfig(
        dataset=args.dataset, data_dir=args.data_dir, teacher=args.teacher,
        student=args.student, epochs=args.epochs, teacher_epochs=args.teacher_epochs,
        batch_size=args.batch_size, lr=args.lr, teacher_dtype="auto",
        train_subset=args.train_subset, val_subset=args.test_subset,
        validation_freq=0, verbose=args.verbose, export="none").validate()
    specs = select_configs(args.configs)
    os.makedirs(args.output_dir, exist_ok=True)
    stem = os.path.join(args.output_dir, f"accuracy-{args.dataset}")
    results = Results(stem + ".json", {k: getattr(config, k) for k in SETTINGS})
    results.start_session(shlex.join(["python", "benchmarks/accuracy.py", *argv]))
    report = functools.partial(write_report, results, stem + ".md", stem + ".png")
    cache_dir = args.cache_dir or os.path.join(args.output_dir, "cache")
    for seed in args.seeds:
        todo = [s for s in specs if not results.has(s.name, seed)]
        for spec in specs:
            if spec not in todo:
                print(f"[seed {seed}] {spec.name}: done already, skipped", flush=True)
        if not todo and str(seed) in results.data["blend"]:
            continue
        seeded = dataclasses.replace(config, seed=seed)
        train_ds, val_ds, info = train.load_data(seeded)
        steps = train.steps_per_epoch_of(seeded, info)
        teacher = None
        if (any(s.method != "none" for s in todo) or str(seed) not in results.data["teachers"]
                or str(seed) not in results.data["blend"]):
            teacher, summary = teacher_for_seed(seeded, cache_dir, info, train_ds, val_ds)
            if str(seed) not in results.data["teachers"]:
                # train_seconds is None when an earlier session trained it.
                results.add_teacher(seed, {"top1": summary["val_accuracy"],
                                           "train_seconds": summary.get("seconds")})
            if str(seed) not in results.data["blend"]:
                results.add_blend(seed, blend_diagnostics(teacher, val_ds))
        for spec in todo:
            top1, seconds, steps_done = train_student(
                seeded, spec, teacher, info, train_ds, val_ds, steps,
                student_dir(cache_dir, seeded, spec))
            print(f"[seed {seed}] {spec.name}: top-1 {100 * top1:.2f}% "
                  f"({seconds:.0f} s)", flush=True)
            results.add_run(spec.name, seed, {"top1": top1, "train_seconds": seconds,
                                              "steps": steps_done})
            report()
    return finish(results, report, stem)


def finish(results, report, stem):
    """Saves `results`, writes the report and prints its markdown."""
    results.save()
    report()
    with open(stem + ".md") as f:
        print(f.read())
    return results


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None

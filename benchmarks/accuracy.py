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

Training is the runner's (`r2kd_keras.train`, through `study.py`, the
harness shared with robustness.py): its data loading, teacher
stage (trained with the recipe, cached), and student stage (`L2SGD`, step
decay and DKD's warm-up scaled to the epochs), which saves every student in
`<cache_dir>/students/<settings>/<configuration>/` (`last.keras`). Every
method's teachers compute in one dtype, `--teacher_dtype` (default "auto",
resolved on the host: bfloat16 where it is measurably faster, else float32);
the JSON stores the dtype it resolved to, so a study resumed on another host
cannot mix teachers of two precisions.
"""

import argparse
import dataclasses
import functools
import os
import shlex
import sys
import textwrap

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import study  # noqa: E402
import study_results  # noqa: E402
from r2kd_keras import pruning  # noqa: E402
from r2kd_keras import train  # noqa: E402

# Seed-paired differences the report lists: (label, minuend, subtrahend).
PAIRED = (
    [(f"R2KD - {study.METHOD_LABELS[m]}, augment {a}", f"r2kd/{a}", f"{m}/{a}")
     for a in study.AUGMENTS for m in ("none", "kd", "dist", "dkd")]
    + [(f"CutMix view, {study.METHOD_LABELS[m]}", f"{m}/cutmix", f"{m}/none")
       for m in ("none", "kd", "dist", "dkd", "r2kd")]
    + [("pruned-teacher blend (R2KD, cutmix)", "r2kd/cutmix", "r2kd-noblend/cutmix"),
       ("soft rank - exact rank (R2KD, cutmix)", "r2kd-softrank/cutmix", "r2kd/cutmix"),
       ("training-mode - inference-mode pruned teacher (R2KD, cutmix)",
        "r2kd-trainprune/cutmix", "r2kd/cutmix")]
)
# The paper's recipe (r2kd-method.md section 5) on the whole training set.
FULL = {"train_subset": None, "epochs": train.REFERENCE_EPOCHS,
        "teacher_epochs": train.REFERENCE_EPOCHS}


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


# -------------------------------------------------------------------- report
def paired_differences(results):
    """Seed-paired differences of `PAIRED`, in percentage points.

    Args:
        results: the `study_results.Results`.

    Returns:
        list of `(label, study_results.paired(...))`, only comparisons with at
        least one common seed.

    Example:
    >>> paired_differences(results)[0]
    ('R2KD - student alone (CE), augment none', {'mean': 1.6, 'std': 0.3, 'positive': 3, 'n': 3})
    """
    differences = [(label, study_results.paired(study_results.per_seed(results, first),
                                        study_results.per_seed(results, second)))
                   for label, first, second in PAIRED]
    return [(label, difference) for label, difference in differences if difference]


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
    for spec in study.GRID:
        summary = results.data["summary"].get(spec.name)
        if summary:
            rows.setdefault(spec.label, dict.fromkeys(study.AUGMENTS))[spec.augment] = summary
    return list(rows.items())
def write_report(results, md_path, png_path):
    """Writes the markdown table and the bar chart from the JSON's numbers.

    Args:
        results: the `study_results.Results`.
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
    lines += [f"| {label} | " + " | ".join(study_results.format_cell(cells[a]) for a in study.AUGMENTS)
              + " |" for label, cells in _rows_of(results)]
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
        f"Teacher {settings['teacher']}: {study_results.format_cell(teacher)} top-1, trained "
        f"{settings['teacher_epochs']} epochs, once per seed, cached; every method "
        f"computed its teachers in {settings['teacher_dtype']}.",
        "",
        f"Settings: {settings['train_subset'] or 'all'} training images per epoch "
        f"(Fashion-MNIST: a seeded draw per seed), {settings['epochs']} student "
        f"epochs, batch "
        f"{settings['batch_size']}, SGD momentum 0.9, coupled L2 5e-4, lr "
        f"{settings['lr']} at batch 64, x0.1 at {train.milestone_epochs(settings['epochs'])} "
        "(the recipe's 150/180/210 of 240, scaled); DKD's warm-up of 20 of 240 "
        "epochs scaled the same way.",
        "",
        *study_results.report_footer(data, png_path),
    ]
    with open(md_path, "w") as f:
        f.write("\n".join(lines))
    _plot(results, png_path)
def _plot(results, png_path):
    """Bar chart: one group per method, one bar per augment, std error bars."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = _rows_of(results)
    figure, axis = plt.subplots(figsize=(max(6, 1.4 * len(rows)), 4))
    width = 0.38
    means = []
    for i, augment in enumerate(study.AUGMENTS):
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
    study.add_study_flags(parser)
    parser.add_argument("--seeds", default="0,1,2", help="Comma-separated seeds.")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"Student epochs (default {study.DEFAULTS['epochs']}).")
    parser.add_argument("--teacher_epochs", type=int, default=None,
                        help=f"Teacher epochs (default {study.DEFAULTS['teacher_epochs']}).")
    parser.add_argument("--train_subset", type=int, default=None,
                        help=f"Training images (default {study.DEFAULTS['train_subset']}; "
                             "0: all).")
    parser.add_argument("--test_subset", type=int, default=None,
                        help="Evaluate on the first N test images (default: all).")
    parser.add_argument("--configs", default="*",
                        help="Comma-separated fnmatch filter of configurations, e.g. "
                             "'r2kd*,kd/none'. Names: " + ", ".join(c.name for c in study.GRID))
    parser.add_argument("--full", action="store_true",
                        help="The recipe: all training images, 240 epochs.")
    parser.add_argument("--output_dir", default=study.RESULTS_DIR)
    parser.add_argument("--cache_dir", default=None,
                        help="Teacher cache (default: <output_dir>/cache).")
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    args = parser.parse_args(argv)
    size = FULL if args.full else study.DEFAULTS
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
    config, settings = study.study_config(args, args.dataset)
    specs = study.select(args.configs)
    os.makedirs(args.output_dir, exist_ok=True)
    stem = os.path.join(args.output_dir, f"accuracy-{args.dataset}")
    results = study_results.Results(stem + ".json", settings)
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
            teacher, summary = study.teacher_for_seed(seeded, cache_dir, info, train_ds, val_ds)
            if str(seed) not in results.data["teachers"]:
                # train_seconds is None when an earlier session trained it.
                results.add_teacher(seed, {"top1": summary["val_accuracy"],
                                           "train_seconds": summary.get("seconds")})
            if str(seed) not in results.data["blend"]:
                results.add_blend(seed, blend_diagnostics(teacher, val_ds))
        for spec in todo:
            top1, seconds, steps_done = study.train_student(
                seeded, spec, teacher, info, train_ds, val_ds, steps,
                study.student_dir(cache_dir, seeded, spec))
            print(f"[seed {seed}] {spec.name}: top-1 {100 * top1:.2f}% "
                  f"({seconds:.0f} s)", flush=True)
            results.add_run(spec.name, seed, {"top1": top1, "train_seconds": seconds,
                                              "steps": steps_done})
            report()
    return study_results.finish(results, report, stem)

if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None

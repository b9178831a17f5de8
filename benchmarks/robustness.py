"""Does R2KD hold up on noisy data? Corrupted test images and noisy labels.

The method's robustness claims at CPU scale (issue 14), with the grid, seeds
and settings of `benchmarks/accuracy.py` (whose helpers this reuses):

(a) corrupt: every student of the accuracy grid (none, kd, dist, dkd, r2kd
    x augment none | cutmix) and the teacher, on the test split clean and
    under the 8 corruptions of `r2kd_keras.data.corrupt` (Hendrycks &
    Dietterich 2019) at severities 1, 3 and 5: clean top-1, mean corruption
    accuracy (mCA, over the 24 corrupted sets) and the relative drop
    1 - mCA / clean. The students are the accuracy grid's own: the grid saves
    each one in `<cache_dir>/students` (train them with either script; the
    other then loads them), and the corrupted sets are the same for every
    student and seed (corruption seed 0), so the seed-paired differences
    compare the students on identical images.
(b) noise: a teacher and the students (default: augment none) trained with
    20% and 40% of the training labels replaced by a random other class
    (the runner's `label_noise`, fixed per seed), scored by clean-test top-1.

Mean ± sample standard deviation over the seeds, seed-paired differences,
the report in `<output_dir>/robustness-fashion_mnist.{md,json,png}`. The JSON
keeps every per-seed number; a rerun skips what it holds (the settings
must stay the same), so the study can run across sessions.

    python benchmarks/robustness.py                    # the whole study
    python benchmarks/robustness.py --parts noise --seeds 0
    python benchmarks/robustness.py --quick            # minutes, into runs/

Cost on 2 cores, from the accuracy grid's measured training times (load
1-4): a teacher ~4.5 min, a student ~1.5 min (augment none) or ~3.5 min
(cutmix); evaluating a student on the 25 test sets (250k images) ~2 min, the
teacher ~4 min (forward passes at ~3x the training throughput; --quick
measured 90 images/s at load 12). Part (a): 33 evaluations ~65 min, plus
training what the cache lacks (3 teachers and 30 students: ~1.5 h; the
accuracy grid's rerun trains and saves them). Part (b): 6 teachers and 30
students ~75 min. The whole default study: ~2.3 h when the accuracy grid's
students are cached, ~3.8 h from nothing.
"""

import argparse
import dataclasses
import fnmatch
import functools
import os
import shlex
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import accuracy  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from r2kd_keras import data as data_lib  # noqa: E402
from r2kd_keras import train  # noqa: E402
from r2kd_keras.data import idx  # noqa: E402
from r2kd_keras.data.corrupt import CORRUPTIONS  # noqa: E402

PARTS = ("corrupt", "noise")
SEVERITIES = (1, 3, 5)
NOISE_RATES = (0.2, 0.4)
CORRUPTION_SEED = 0
EVAL_BATCH = 500
COMPARED = ("none", "kd", "dist", "dkd")
# The accuracy grid's methods x augments, without the R2KD variants.
GRID = tuple(spec for spec in accuracy.GRID if not spec.variant)
QUICK = {"train_subset": 512, "epochs": 1, "teacher_epochs": 1, "test_subset": 1000,
         "seeds": "0", "severities": "3"}


def select(patterns, flag="--configs"):
    """The study's configurations matching any of the `fnmatch` patterns.

    Args:
        patterns: comma-separated patterns of names like `r2kd/none`.
        flag: the option named in the error.

    Returns:
        list of `accuracy.StudentConfig`, in grid order.

    Example:
    >>> [spec.name for spec in select("*/none")]
    ['none/none', 'kd/none', 'dist/none', 'dkd/none', 'r2kd/none']
    """
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = [spec for spec in GRID if any(fnmatch.fnmatchcase(spec.name, p) for p in wanted)]
    if not chosen:
        raise ValueError(
            f"{flag}={patterns!r} matches no configuration of the study; use names or "
            f"patterns of: {', '.join(spec.name for spec in GRID)}.")
    return chosen


# ------------------------------------------------------------------ the data
class TestSets:
    """The test split, clean and corrupted, served like the loader's.

    The corrupted images are made once (on the native 28x28 grey images,
    before the loader's padding to 32x32 and channel repeat) and kept.

    Args:
        config: a `train.TrainConfig` (`data_dir`, `val_subset`).
        info: the dataset's `DatasetInfo` (size, channels, normalisation).
        severities: the corruption severities.

    Example:
    >>> sets = TestSets(config, info, (1, 3, 5))
    >>> sets.evaluate(student)["corrupted"]["contrast"]["5"]
    0.5432
    """

    def __init__(self, config, info, severities):
        folder = os.path.expanduser(config.data_dir or idx.DEBIAN_DIR)
        images_file, labels_file = idx.FILES["val"]
        count = config.val_subset or None
        self.images = idx.read_idx(os.path.join(folder, images_file))[:count, ..., None]
        self.labels = idx.read_idx(os.path.join(folder, labels_file))[:count].astype(np.int32)
        self.info = info
        self.severities = tuple(severities)
        self._corrupted = {}

    def dataset(self, images):
        """Batches of `images` through the loader's test-time preprocessing."""
        info = self.info

        def fitted(image, label):
            # The loader's own padding/resizing: the students see the
            # corrupted images exactly as they saw the clean ones.
            return idx._fit(image, info.image_size, info.channels), label

        pairs = tf.data.Dataset.from_tensor_slices((images, self.labels)).map(fitted)
        return data_lib.build_pipeline(pairs, training=False, batch_size=EVAL_BATCH,
                                       normalization=info.normalization,
                                       channels=info.channels)

    def corrupted(self, name, severity):
        key = (name, severity)
        if key not in self._corrupted:
            self._corrupted[key] = data_lib.corrupt(self.images, name, severity,
                                                    seed=CORRUPTION_SEED)
        return self._corrupted[key]

    def top1(self, model, images):
        logits = model.predict(self.dataset(images), verbose=0)
        return float(np.mean(np.argmax(logits, axis=-1) == self.labels))

    def evaluate(self, model):
        """`{"top1": clean, "corrupted": {name: {severity: top1}}, "eval_seconds"}`."""
        start = time.perf_counter()
        record = {"top1": self.top1(model, self.images), "corrupted": {
            name: {str(s): self.top1(model, self.corrupted(name, s)) for s in self.severities}
            for name in CORRUPTIONS}}
        record["eval_seconds"] = time.perf_counter() - start
        return record


# ------------------------------------------------------------------ training
def run_stage(config, prefix, specs, data, cache_dir, evaluate, results, report):
    """A teacher and its students on one training set, each evaluated once.

    Students come from `accuracy.student_file` in `cache_dir` when there,
    else are trained there (with `accuracy.train_student`); the teacher from
    `accuracy.teacher_for_seed` (cached likewise). Results go to the runs
    `<prefix>:<config name>` and `<prefix>:teacher` of `results`.

    Args:
        config: a `train.TrainConfig` with the seed.
        prefix: the runs' prefix, e.g. `"corrupt"` or `"noise0.2"`.
        specs: the `accuracy.StudentConfig`s to run.
        data: `(train_ds, val_ds, info)` of the training set.
        cache_dir: teachers' and students' folder of this training set.
        evaluate: `model -> record` (a dict with `top1`).
        results: the `accuracy.Results`.
        report: rewrites the report.

    Example:
    >>> run_stage(config, "corrupt", GRID, train.load_data(config), "cache",
    ...           test_sets.evaluate, results, report)
    """
    train_ds, val_ds, info = data
    seed = config.seed
    todo = [spec for spec in specs if not results.has(f"{prefix}:{spec.name}", seed)]
    files = {spec: accuracy.student_file(cache_dir, config, spec) for spec in todo}
    teacher = None
    if not results.has(f"{prefix}:teacher", seed) or any(
            spec.method != "none" and not os.path.isfile(files[spec]) for spec in todo):
        teacher, summary = accuracy.teacher_for_seed(config, cache_dir, info, train_ds,
                                                     val_ds)
        if not results.has(f"{prefix}:teacher", seed):
            # train_seconds is None when an earlier session trained it.
            results.add_run(f"{prefix}:teacher", seed,
                            {**evaluate(teacher), "train_seconds": summary.get("seconds")})
    steps = train.steps_per_epoch_of(config, info)
    for spec in todo:
        seconds = None
        if not os.path.isfile(files[spec]):
            _, seconds, _ = accuracy.train_student(config, spec, teacher, info, train_ds,
                                                   val_ds, steps, os.path.dirname(files[spec]))
        # The saved file is what is measured, trained now or loaded.
        student = keras.saving.load_model(files[spec], compile=False)
        record = {**evaluate(student), "train_seconds": seconds}
        results.add_run(f"{prefix}:{spec.name}", seed, record)
        print(f"[seed {seed}] {prefix}:{spec.name}: top-1 {100 * record['top1']:.2f}%"
              + (f", mCA {100 * mean_corruption_accuracy(record):.2f}%"
                 if "corrupted" in record else ""), flush=True)
        report()


# ------------------------------------------------------------------- results
def mean_corruption_accuracy(record):
    """Mean top-1 over every corruption and severity of a `corrupt` record."""
    return float(np.mean([top1 for by_severity in record["corrupted"].values()
                          for top1 in by_severity.values()]))


def relative_drop(record):
    """`1 - mCA / clean top-1`: the share of the clean accuracy the
    corruptions cost."""
    return 1.0 - mean_corruption_accuracy(record) / record["top1"]


def per_seed(results, name, value=lambda record: record["top1"]):
    """`{seed: value(record)}` of the run `name` (empty when absent)."""
    return {seed: value(record) for seed, record in results.data["runs"].get(name, {}).items()}


def paired(first, second):
    """Seed-paired difference `first - second` in percentage points.

    Args:
        first: `{seed: value in [0, 1]}`.
        second: the same for the other run.

    Returns:
        dict with `mean`, `std` (ddof=1; None for one seed), `positive`
        (seeds where the difference is > 0) and `n`; None without a common seed.

    Example:
    >>> paired({"0": 0.9, "1": 0.8}, {"0": 0.85, "1": 0.8})
    {'mean': 2.5, 'std': 3.54, 'positive': 1, 'n': 2}
    """
    seeds = sorted(set(first) & set(second), key=int)
    if not seeds:
        return None
    diffs = [100.0 * (first[seed] - second[seed]) for seed in seeds]
    return {"mean": float(np.mean(diffs)),
            "std": float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None,
            "positive": int(sum(d > 0 for d in diffs)), "n": len(diffs)}


def _cell(values):
    return accuracy._format_cell(accuracy.summarize(list(values)) if values else None)


def _difference_cell(difference):
    if difference is None:
        return "-"
    std = "" if difference["std"] is None else f" ± {difference['std']:.2f}"
    return f"{difference['mean']:+.2f}{std} ({difference['positive']} of {difference['n']} > 0)"


def _rows(results, prefix, specs):
    """`[(label, run name)]` of the runs of `prefix` that exist, teacher last."""
    runs = results.data["runs"]
    rows = [(f"{spec.label}, augment {spec.augment}", f"{prefix}:{spec.name}")
            for spec in specs]
    rows.append(("teacher", f"{prefix}:teacher"))
    return [(label, name) for label, name in rows if name in runs]


def _noise_prefixes(results):
    runs = results.data["runs"]
    return sorted({name.split(":")[0] for name in runs if name.startswith("noise")},
                  key=lambda prefix: float(prefix[len("noise"):]))


def _corruption_lines(results):
    rows = _rows(results, "corrupt", GRID)
    if not rows:
        return []
    severities = ", ".join(str(s) for s in results.data["settings"]["severities"])
    lines = [
        "## (a) Corrupted test images",
        "",
        f"Top-1 (%) on the clean test split, the mean corruption accuracy (mCA) over the "
        f"{len(CORRUPTIONS)} corruptions at severities {severities}, and the relative drop "
        "1 - mCA / clean (%; lower is more robust), mean ± std over n seeds:",
        "",
        "| model | clean | mCA | relative drop |",
        "|---|---|---|---|",
    ]
    for label, name in rows:
        lines.append(f"| {label} | {_cell(per_seed(results, name).values())} "
                     f"| {_cell(per_seed(results, name, mean_corruption_accuracy).values())} "
                     f"| {_cell(per_seed(results, name, relative_drop).values())} |")
    lines += ["", "Top-1 (%) per corruption, mean over severities and seeds:", "",
              "| model | " + " | ".join(CORRUPTIONS) + " |",
              "|---|" + "---|" * len(CORRUPTIONS)]
    for label, name in rows:
        cells = []
        for corruption in CORRUPTIONS:
            by_seed = per_seed(results, name, lambda r, c=corruption: float(
                np.mean(list(r["corrupted"][c].values()))))
            cells.append(f"{100 * np.mean(list(by_seed.values())):.2f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    differences = []
    for augment in accuracy.AUGMENTS:
        for method in COMPARED:
            first, second = f"corrupt:r2kd/{augment}", f"corrupt:{method}/{augment}"
            cells = [_difference_cell(paired(per_seed(results, first, value),
                                             per_seed(results, second, value)))
                     for value in (lambda r: r["top1"], mean_corruption_accuracy,
                                   relative_drop)]
            if cells[0] != "-":
                differences.append(f"| R2KD - {accuracy.METHOD_LABELS[method]}, augment "
                                   f"{augment} | " + " | ".join(cells) + " |")
    if differences:
        lines += ["", "Seed-paired differences R2KD - other (percentage points; per seed "
                  "both students share teacher, training images and corrupted test images), "
                  "and on how many seeds they are positive. A negative relative-drop "
                  "difference: R2KD loses less to the corruptions.", "",
                  "| comparison | clean | mCA | relative drop |", "|---|---|---|---|",
                  *differences]
    return lines + [""]


def _noise_lines(results, noise_specs):
    prefixes = _noise_prefixes(results)
    if not prefixes:
        return []
    rates = [prefix[len("noise"):] for prefix in prefixes]
    header = ["clean labels (part a)"] + [f"{float(r):.0%} noisy labels" for r in rates]
    lines = [
        "## (b) Noisy training labels",
        "",
        "Clean-test top-1 (%) of teachers and students trained with a share of the "
        "training labels replaced by a random other class (symmetric noise, fixed per "
        "seed), mean ± std over n seeds; the clean-label column is part (a)'s:",
        "",
        "| model | " + " | ".join(header) + " |",
        "|---|" + "---|" * len(header),
    ]
    for spec in [*noise_specs, None]:
        suffix = "teacher" if spec is None else spec.name
        label = "teacher" if spec is None else f"{spec.label}, augment {spec.augment}"
        cells = [_cell(per_seed(results, f"{prefix}:{suffix}").values())
                 for prefix in ["corrupt", *prefixes]]
        if any(cell != "-" for cell in cells[1:]):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    differences = []
    for spec in noise_specs:
        if spec.method == "r2kd":
            continue
        cells = [_difference_cell(paired(per_seed(results, f"{prefix}:r2kd/{spec.augment}"),
                                         per_seed(results, f"{prefix}:{spec.name}")))
                 for prefix in prefixes]
        if any(cell != "-" for cell in cells):
            differences.append(f"| R2KD - {spec.label}, augment {spec.augment} | "
                               + " | ".join(cells) + " |")
    if differences:
        lines += ["", "Seed-paired differences R2KD - other in clean-test top-1 (percentage "
                  "points; per seed both students share the noisy labels and the teacher "
                  "trained on them):", "",
                  "| comparison | " + " | ".join(header[1:]) + " |",
                  "|---|" + "---|" * len(rates), *differences]
    return lines + [""]


def write_report(results, noise_specs, md_path, png_path):
    """Writes the markdown tables and the chart from the JSON's numbers.

    Args:
        results: the `accuracy.Results`.
        noise_specs: the configurations of part (b), in table order.
        md_path: the markdown file to write.
        png_path: the chart to write.

    Example:
    >>> write_report(results, select("*/none"), "out/r.md", "out/r.png")
    """
    data = results.data
    settings = data["settings"]
    subset = settings["val_subset"]
    lines = [
        f"# Robustness on {settings['dataset']} (generated by benchmarks/robustness.py)",
        "",
        f"Teacher {settings['teacher']} -> student {settings['student']}, the settings of "
        "benchmarks/accuracy.py; every score is the top-1 after the **last** epoch on the "
        f"{f'first {subset} images of the ' if subset else ''}test split.",
        "",
        *_corruption_lines(results),
        *_noise_lines(results, noise_specs),
        f"Settings: {settings['train_subset'] or 'all'} training images (a seeded draw per "
        f"seed), {settings['epochs']} student and {settings['teacher_epochs']} teacher "
        f"epochs, batch {settings['batch_size']}, lr {settings['lr']} at batch 64 (the "
        "accuracy grid's recipe); corruptions after Hendrycks & Dietterich (2019), "
        "CIFAR-10-C parameters, applied to the 28x28 grey test images with seed "
        f"{settings['corruption_seed']} (the same corrupted images for every model).",
        "",
        *accuracy.report_footer(data, png_path, last_session=False),
    ]
    with open(md_path, "w") as f:
        f.write("\n".join(lines))
    _plot(results, noise_specs, png_path)


def _plot(results, noise_specs, png_path):
    """Left: clean top-1 and mCA per student; right: top-1 against label noise."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    rows = _rows(results, "corrupt", GRID)
    for offset, (value, label) in enumerate([(lambda r: r["top1"], "clean"),
                                             (mean_corruption_accuracy, "mCA")]):
        stats = [accuracy.summarize(list(per_seed(results, name, value).values()))
                 for _, name in rows]
        left.bar(np.arange(len(rows)) + (offset - 0.5) * 0.4, [s["mean"] for s in stats],
                 0.4, yerr=[s["std"] or 0.0 for s in stats], capsize=3, label=label)
    left.set_xticks(range(len(rows)))
    left.set_xticklabels([name.split(":")[1] for _, name in rows], fontsize=8, rotation=40,
                         ha="right")
    left.set_ylabel("top-1 (%)")
    left.set_title("(a) clean and mean corruption accuracy")
    left.legend(fontsize=8)
    prefixes = ["corrupt", *_noise_prefixes(results)]
    rates = [0.0] + [float(p[len("noise"):]) for p in prefixes[1:]]
    for spec in noise_specs:
        points = [(100 * rate, accuracy.summarize(list(by_seed.values())))
                  for rate, prefix in zip(rates, prefixes)
                  if (by_seed := per_seed(results, f"{prefix}:{spec.name}"))]
        if points:
            right.errorbar([x for x, _ in points], [s["mean"] for _, s in points],
                           yerr=[s["std"] or 0.0 for _, s in points], marker="o",
                           capsize=3, label=f"{spec.label}, {spec.augment}")
    right.set_xlabel("noisy training labels (%)")
    right.set_ylabel("clean-test top-1 (%)")
    right.set_title("(b) symmetric label noise")
    if right.get_legend_handles_labels()[0]:
        right.legend(fontsize=7)
    settings = results.data["settings"]
    figure.suptitle(f"{settings['dataset']}: {settings['teacher']} -> "
                    f"{settings['student']}, mean ± std over seeds")
    figure.tight_layout()
    figure.savefig(png_path, dpi=90)
    plt.close(figure)


# ---------------------------------------------------------------------- main
def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default=",".join(PARTS),
                        help="Comma-separated parts: corrupt, noise.")
    parser.add_argument("--seeds", default=None, help="Comma-separated seeds (default 0,1,2).")
    parser.add_argument("--severities", default=None,
                        help=f"Corruption severities, 1-5 (default {SEVERITIES}).")
    parser.add_argument("--noise_rates", default=",".join(f"{r:g}" for r in NOISE_RATES),
                        help="Shares of noisy training labels.")
    parser.add_argument("--configs", default="*",
                        help="fnmatch filter of part (a)'s configurations (default: all of "
                             + ", ".join(spec.name for spec in GRID) + ").")
    parser.add_argument("--noise_configs", default="*/none",
                        help="fnmatch filter of part (b)'s configurations.")
    parser.add_argument("--quick", action="store_true",
                        help="A tiny budget (minutes) for trying the script: "
                             + ", ".join(f"{k} {v}" for k, v in QUICK.items())
                             + "; output into runs/robustness-quick.")
    parser.add_argument("--data_dir", default=None, help="Where Fashion-MNIST is.")
    parser.add_argument("--teacher", default="resnet14")
    parser.add_argument("--student", default="resnet8")
    for name in ("epochs", "teacher_epochs", "train_subset", "test_subset"):
        parser.add_argument(f"--{name}", type=int, default=None,
                            help=f"As benchmarks/accuracy.py (default "
                                 f"{accuracy.DEFAULTS.get(name, 'all')}).")
    parser.add_argument("--batch_size", type=int, default=train.REFERENCE_BATCH)
    parser.add_argument("--lr", type=float, default=0.05, help="lr at batch 64.")
    parser.add_argument("--output_dir", default=None,
                        help=f"Default {accuracy.RESULTS_DIR} (--quick: runs/robustness-quick).")
    parser.add_argument("--cache_dir", default=None,
                        help="Teachers and students (default: <output_dir>/cache, shared "
                             "with benchmarks/accuracy.py's).")
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    args = parser.parse_args(argv)
    defaults = {**accuracy.DEFAULTS, "seeds": "0,1,2",
                "severities": ",".join(map(str, SEVERITIES)),
                **(QUICK if args.quick else {})}
    for name, value in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    if args.output_dir is None:
        args.output_dir = "runs/robustness-quick" if args.quick else accuracy.RESULTS_DIR
    if args.train_subset == 0:
        args.train_subset = None
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if not args.parts or set(args.parts) - set(PARTS):
        parser.error(f"--parts={','.join(args.parts)!r}: pass a comma-separated subset of "
                     f"{', '.join(PARTS)}.")
    for name, kind, valid, hint in (
            ("seeds", int, lambda v: True, "integers, e.g. 0,1,2"),
            ("severities", int, lambda v: 1 <= v <= 5, "integers from 1 to 5, e.g. 1,3,5"),
            ("noise_rates", float, lambda v: 0 < v < 1, "shares in (0, 1), e.g. 0.2,0.4")):
        text = getattr(args, name)
        try:
            values = [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            values = []
        if not values or not all(map(valid, values)):
            parser.error(f"--{name}={text!r} must be comma-separated {hint}.")
        setattr(args, name, values)
    try:
        args.specs = select(args.configs)
        args.noise_specs = select(args.noise_configs, "--noise_configs")
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv=None):
    """Runs the missing part of the study and rewrites the report.

    Args:
        argv: command-line arguments; None: `sys.argv[1:]`.

    Returns:
        The `accuracy.Results`.

    Example:
    >>> main(["--parts", "noise", "--seeds", "0", "--noise_rates", "0.4"])
    """
    argv = sys.argv[1:] if argv is None else argv
    args = _parse_args(argv)
    config = train.TrainConfig(
        dataset="fashion_mnist", data_dir=args.data_dir, teacher=args.teacher,
        student=args.student, epochs=args.epochs, teacher_epochs=args.teacher_epochs,
        batch_size=args.batch_size, lr=args.lr, teacher_dtype="auto",
        train_subset=args.train_subset, val_subset=args.test_subset,
        validation_freq=0, verbose=args.verbose, export="none").validate()
    os.makedirs(args.output_dir, exist_ok=True)
    stem = os.path.join(args.output_dir, f"robustness-{config.dataset}")
    settings = {**{k: getattr(config, k) for k in accuracy.SETTINGS},
                "severities": args.severities, "corruption_seed": CORRUPTION_SEED}
    results = accuracy.Results(stem + ".json", settings)
    results.start_session(shlex.join(["python", "benchmarks/robustness.py", *argv]))
    report = functools.partial(write_report, results, args.noise_specs, stem + ".md",
                               stem + ".png")
    cache_dir = args.cache_dir or os.path.join(args.output_dir, "cache")
    test_sets = None
    for seed in args.seeds:
        seeded = dataclasses.replace(config, seed=seed)
        if "corrupt" in args.parts:
            data = train.load_data(seeded)
            test_sets = test_sets or TestSets(seeded, data[2], args.severities)
            run_stage(seeded, "corrupt", args.specs, data, cache_dir, test_sets.evaluate,
                      results, report)
        if "noise" in args.parts:
            for rate in args.noise_rates:
                noisy = dataclasses.replace(seeded, label_noise=rate)
                data = train.load_data(noisy)
                test_sets = test_sets or TestSets(seeded, data[2], args.severities)
                run_stage(noisy, f"noise{rate:g}", args.noise_specs, data,
                          os.path.join(cache_dir, f"labelnoise{rate:g}"),
                          lambda model: {"top1": test_sets.top1(model, test_sets.images)},
                          results, report)
    return accuracy.finish(results, report, stem)


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None

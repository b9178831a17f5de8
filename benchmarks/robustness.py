"""Does R2KD hold up on noisy data? Corrupted test images and noisy labels.

The method's robustness claims at CPU scale (issue 14), with the grid, seeds
and settings of `benchmarks/accuracy.py` (through `study.py`, the harness
both share; the report is written by `robustness_report.py`):

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
import functools
import os
import shlex
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import robustness_report as report_lib  # noqa: E402
import study  # noqa: E402
import study_results  # noqa: E402
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
QUICK = {"train_subset": 512, "epochs": 1, "teacher_epochs": 1, "test_subset": 1000,
         "seeds": "0", "severities": "3"}


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

        # No Python control flow to convert, and AutoGraph misreads this
        # closure's source ("closure mismatch") and warns.
        @tf.autograph.experimental.do_not_convert
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

    Students come from `study.student_file` in `cache_dir` when there,
    else are trained there (with `study.train_student`); the teacher from
    `study.teacher_for_seed` (cached likewise). Results go to the runs
    `<prefix>:<config name>` and `<prefix>:teacher` of `results`.

    Args:
        config: a `train.TrainConfig` with the seed.
        prefix: the runs' prefix, e.g. `"corrupt"` or `"noise0.2"`.
        specs: the `study.StudentConfig`s to run.
        data: `(train_ds, val_ds, info)` of the training set.
        cache_dir: teachers' and students' folder of this training set.
        evaluate: `model -> record` (a dict with `top1`).
        results: the `study_results.Results`.
        report: rewrites the report.

    Example:
    >>> run_stage(config, "corrupt", study.METHODS_GRID, train.load_data(config), "cache",
    ...           test_sets.evaluate, results, report)
    """
    train_ds, val_ds, info = data
    seed = config.seed
    todo = [spec for spec in specs if not results.has(f"{prefix}:{spec.name}", seed)]
    files = {spec: study.student_file(cache_dir, config, spec) for spec in todo}
    teacher = None
    if not results.has(f"{prefix}:teacher", seed) or any(
            spec.method != "none" and not os.path.isfile(files[spec]) for spec in todo):
        teacher, summary = study.teacher_for_seed(config, cache_dir, info, train_ds,
                                                     val_ds)
        if not results.has(f"{prefix}:teacher", seed):
            # train_seconds is None when an earlier session trained it.
            results.add_run(f"{prefix}:teacher", seed,
                            {**evaluate(teacher), "train_seconds": summary.get("seconds")})
    steps = train.steps_per_epoch_of(config, info)
    for spec in todo:
        seconds = None
        if not os.path.isfile(files[spec]):
            _, seconds, _ = study.train_student(config, spec, teacher, info, train_ds,
                                                   val_ds, steps, os.path.dirname(files[spec]))
        # The saved file is what is measured, trained now or loaded.
        student = keras.saving.load_model(files[spec], compile=False)
        record = {**evaluate(student), "train_seconds": seconds}
        results.add_run(f"{prefix}:{spec.name}", seed, record)
        print(f"[seed {seed}] {prefix}:{spec.name}: top-1 {100 * record['top1']:.2f}%"
              + (f", mCA {100 * report_lib.mean_corruption_accuracy(record):.2f}%"
                 if "corrupted" in record else ""), flush=True)
        report()


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
                             + ", ".join(spec.name for spec in study.METHODS_GRID) + ").")
    parser.add_argument("--noise_configs", default="*/none",
                        help="fnmatch filter of part (b)'s configurations.")
    parser.add_argument("--quick", action="store_true",
                        help="A tiny budget (minutes) for trying the script: "
                             + ", ".join(f"{k} {v}" for k, v in QUICK.items())
                             + "; output into runs/robustness-quick.")
    parser.add_argument("--data_dir", default=None, help="Where Fashion-MNIST is.")
    study.add_study_flags(parser)
    for name in ("epochs", "teacher_epochs", "train_subset", "test_subset"):
        parser.add_argument(f"--{name}", type=int, default=None,
                            help=f"As benchmarks/accuracy.py (default "
                                 f"{study.DEFAULTS.get(name, 'all')}).")
    parser.add_argument("--output_dir", default=None,
                        help=f"Default {study.RESULTS_DIR} (--quick: runs/robustness-quick).")
    parser.add_argument("--cache_dir", default=None,
                        help="Teachers and students (default: <output_dir>/cache, shared "
                             "with benchmarks/accuracy.py's).")
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    args = parser.parse_args(argv)
    defaults = {**study.DEFAULTS, "seeds": "0,1,2",
                "severities": ",".join(map(str, SEVERITIES)),
                **(QUICK if args.quick else {})}
    for name, value in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    if args.output_dir is None:
        args.output_dir = "runs/robustness-quick" if args.quick else study.RESULTS_DIR
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
        args.specs = study.select(args.configs, study.METHODS_GRID)
        args.noise_specs = study.select(args.noise_configs, study.METHODS_GRID,
                                        "--noise_configs")
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv=None):
    """Runs the missing part of the study and rewrites the report.

    Args:
        argv: command-line arguments; None: `sys.argv[1:]`.

    Returns:
        The `study_results.Results`.

    Example:
    >>> main(["--parts", "noise", "--seeds", "0", "--noise_rates", "0.4"])
    """
    argv = sys.argv[1:] if argv is None else argv
    args = _parse_args(argv)
    config, settings = study.study_config(args, "fashion_mnist")
    os.makedirs(args.output_dir, exist_ok=True)
    stem = os.path.join(args.output_dir, f"robustness-{config.dataset}")
    settings = {**settings, "severities": args.severities,
                "corruption_seed": CORRUPTION_SEED}
    results = study_results.Results(stem + ".json", settings)
    results.start_session(shlex.join(["python", "benchmarks/robustness.py", *argv]))
    report = functools.partial(report_lib.write_report, results, args.noise_specs,
                               stem + ".md", stem + ".png")
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
    return study_results.finish(results, report, stem)


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None

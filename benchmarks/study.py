"""The harness the seeded studies share (`accuracy.py`, `robustness.py`).

One place for what makes two studies comparable: the grid of student
configurations, the settings a result depends on (and the flags that set
them), how a teacher and a student are trained and cached through the
runner, the resumable JSON of per-seed scores, and the report's footer.
"""

import dataclasses
import fnmatch
import json
import os
import platform
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from r2kd_keras import precision  # noqa: E402
from r2kd_keras import train  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


# ---------------------------------------------------------------------- grid
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
# The accuracy study runs all of it; the robustness study the first ten.
GRID = tuple(
    [StudentConfig(m, a) for m in ("none", "kd", "dist", "dkd", "r2kd") for a in AUGMENTS]
    + [StudentConfig("r2kd", "cutmix", teacher_prune_rate=0.0, variant="-noblend"),
       StudentConfig("r2kd", "cutmix", rank_mode="soft", variant="-softrank"),
       StudentConfig("r2kd", "cutmix", pruned_teacher_training=True,
                     variant="-trainprune")]
)
# Every method with and without the CutMix view, without R2KD's variants.
METHODS_GRID = tuple(spec for spec in GRID if not spec.variant)


# ------------------------------------------------------------------ settings
# The 12 x 3 students and 3 teachers: measured 2.7 h projected on 2 cores
# shared at load ~4 (one process got ~1 core); about 1.5 h on 2 idle cores.
DEFAULTS = {"train_subset": 8_000, "epochs": 8, "teacher_epochs": 10}
# Settings a result depends on: a JSON written with others cannot be resumed.
SETTINGS = ("dataset", "teacher", "student", "epochs", "teacher_epochs",
            "train_subset", "val_subset", "batch_size", "lr", "teacher_dtype")
TEACHER_DTYPES = ("auto", "bfloat16", "float16", "float32")


def add_study_flags(parser):
    """The model and recipe flags `study_config` reads, shared by the studies."""
    parser.add_argument("--teacher", default="resnet14")
    parser.add_argument("--student", default="resnet8")
    parser.add_argument("--batch_size", type=int, default=train.REFERENCE_BATCH)
    parser.add_argument("--lr", type=float, default=0.05, help="lr at batch 64.")
    parser.add_argument(
        "--teacher_dtype", default="auto", choices=TEACHER_DTYPES,
        help="The teachers' compute dtype, the same for every method. 'auto' is "
             "resolved on this host (bfloat16 where it is measurably faster, else "
             "float32) and the JSON stores what it resolved to.")


def study_config(args, dataset):
    """The runner's `TrainConfig` of a study's flags, and the settings its JSON keeps.

    The settings hold the teachers' dtype as resolved here, not "auto": `auto`
    picks by measuring the host, so the same flag can mean bfloat16 on one
    machine and float32 on the next, and a resumed study would mix them.

    Args:
        args: parsed flags with `data_dir`, `epochs`, `teacher_epochs`,
            `train_subset`, `test_subset`, `verbose` and those of `add_study_flags`.
        dataset: the dataset's name.

    Returns:
        `(config, settings)`: a validated `train.TrainConfig` and the dict of
        `SETTINGS` for `Results`.

    Example:
    >>> config, settings = study_config(args, "fashion_mnist")
    >>> settings["teacher_dtype"]  # 'float32' on a CPU without fast bfloat16
    """
    requested = None if args.teacher_dtype == "float32" else args.teacher_dtype
    teacher_dtype = precision.resolve_teacher_dtype(requested)
    config = train.TrainConfig(
        dataset=dataset, data_dir=args.data_dir, teacher=args.teacher,
        student=args.student, epochs=args.epochs, teacher_epochs=args.teacher_epochs,
        batch_size=args.batch_size, lr=args.lr, teacher_dtype=teacher_dtype,
        train_subset=args.train_subset, val_subset=args.test_subset,
        validation_freq=0, verbose=args.verbose, export="none").validate()
    settings = {k: getattr(config, k) for k in SETTINGS}
    settings["teacher_dtype"] = teacher_dtype or "float32"
    return config, settings


def select(patterns, grid=GRID, flag="--configs"):
    """The configurations of `grid` matching any of the `fnmatch` patterns.

    Args:
        patterns: comma-separated patterns of names like `r2kd/cutmix`
            (`*`: the whole grid).
        grid: the `StudentConfig`s to choose from, in report order.
        flag: the option named in the error.

    Returns:
        list of `StudentConfig`, in grid order.

    Example:
    >>> [spec.name for spec in select("kd/*")]
    ['kd/none', 'kd/cutmix']
    """
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = [spec for spec in grid if any(fnmatch.fnmatchcase(spec.name, p) for p in wanted)]
    if not chosen:
        raise ValueError(
            f"{flag}={patterns!r} matches no configuration; use names or patterns of: "
            f"{', '.join(spec.name for spec in grid)}.")
    return chosen


# ------------------------------------------------------------------ training
def student_dir(cache_dir, config, spec):
    """The folder of the trained student of `spec` under `config` (seed, size
    settings and the teachers' dtype): the runner's stage writes `last.keras`
    there, so that evaluations such as robustness.py need not train it again."""
    tag = (f"{config.dataset}-{config.teacher}-{config.student}-seed{config.seed}-"
           f"n{config.train_subset or 'all'}-e{config.teacher_epochs}-{config.epochs}"
           f"-b{config.batch_size}-lr{config.lr:g}-t{config.teacher_dtype or 'float32'}")
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
                                  steps * config.epochs, info.normalization)
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
                hint = ""
                if "teacher_dtype" in changed:
                    hint = (f" Its teachers computed in {changed['teacher_dtype'][0]}: "
                            f"pass --teacher_dtype {changed['teacher_dtype'][0]} to "
                            "continue it on this host.")
                raise ValueError(
                    f"{path} holds results of other settings ({changed}, as "
                    "(file, now)); resume with the same flags, or pass another "
                    f"--output_dir.{hint}"
                )

    def start_session(self, command):
        """Appends this run's command, environment and (growing) wall time."""
        self._start = time.perf_counter()
        self.data["sessions"].append({
            "command": command, "environment": environment(),
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


def format_cell(summary):
    """`summarize`'s dict as a table cell, "mean ± std (n=k)"; "-" for None."""
    if summary is None:
        return "-"
    std = "" if summary["std"] is None else f" ± {summary['std']:.2f}"
    return f"{summary['mean']:.2f}{std} (n={summary['n']})"


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


def per_seed(results, name, value=lambda record: record["top1"]):
    """`{seed: value(record)}` of the run `name` (empty when absent)."""
    return {seed: value(record) for seed, record in results.data["runs"].get(name, {}).items()}


# The vector units that decide which kernels oneDNN runs, so a result can be
# traced to the kind of CPU that produced it (the model name alone does not say).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
             "amx_bf16", "amx_int8")


def environment():
    """Versions, CPU model and its vector instruction sets, for the report."""
    cpu, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__, "cpu": cpu,
            "cpu_isa": [flag for flag in ISA_FLAGS if flag in flags],
            "cpu_count": os.cpu_count()}


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
    hosts = {}
    for past in data["sessions"]:
        host, isa = past["environment"]["cpu"], past["environment"].get("cpu_isa")
        host += f" ({', '.join(isa) or 'no AVX2'})" if isa is not None else ""
        hosts[host] = hosts.get(host, 0) + 1
    return [
        "Command(s), one per session: "
        + ", ".join(f"`{c}`" for c in dict.fromkeys(s["command"] for s in data["sessions"])),
        "",
        f"Environment: TensorFlow {env['tensorflow']}, Keras {env['keras']}, NumPy "
        f"{env['numpy']}, Python {env['python']}; {env['cpu_count']} CPUs of "
        + "; ".join(f"{host} in {n} session(s)" for host, n in hosts.items())
        + f" (load average {session['load_average']} at the start of the last).",
        "",
        wall + ".",
        "",
        f"![chart]({os.path.basename(png_path)})",
        "",
    ]


def finish(results, report, stem):
    """Saves `results`, writes the report and prints its markdown."""
    results.save()
    report()
    with open(stem + ".md") as f:
        print(f.read())
    return results

"""What the seeded studies record and report (`accuracy.py`, `robustness.py`):
the resumable JSON of per-seed scores, mean ± std, seed-paired differences,
the host of every session and the report's footer."""

import json
import os
import platform
import time

import keras
import numpy as np
import tensorflow as tf


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

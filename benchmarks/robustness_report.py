"""The report of `robustness.py`: tables, paired differences and the chart.

Everything here reads the study's JSON (`study_results.Results`) and nothing
else, so the report can be rewritten from the numbers at any time.
"""

import numpy as np

import study
import study_results
from r2kd_keras.data.corrupt import CORRUPTIONS

# The methods R2KD is compared with, in table order.
COMPARED = ("none", "kd", "dist", "dkd")


def mean_corruption_accuracy(record):
    """Mean top-1 over every corruption and severity of a `corrupt` record."""
    return float(np.mean([top1 for by_severity in record["corrupted"].values()
                          for top1 in by_severity.values()]))


def relative_drop(record):
    """`1 - mCA / clean top-1`: the share of the clean accuracy the
    corruptions cost."""
    return 1.0 - mean_corruption_accuracy(record) / record["top1"]
def drop_profile(record):
    """The top-1 each corrupted set costs (clean - corrupted), in a fixed order."""
    return np.array([record["top1"] - top1 for name in sorted(record["corrupted"])
                     for _, top1 in sorted(record["corrupted"][name].items())])


def teacher_tracking(results, name):
    """How closely the run `name`'s losses to the corruptions follow its teacher's.

    A student that copies its teacher closely inherits the teacher's
    weaknesses too; this measures it per seed, over the corrupted sets.

    Args:
        results: the `study_results.Results`.
        name: a `corrupt:` run.

    Returns:
        `(distance, correlation)`: the mean absolute difference between the
        two drop profiles (percentage points) and their Pearson correlation,
        each a mean over the seeds both runs have; None without such a seed.

    Example:
    >>> teacher_tracking(results, "corrupt:r2kd/none")
    (1.91, 0.995)
    """
    runs, teachers = results.data["runs"].get(name, {}), results.data["runs"].get(
        "corrupt:teacher", {})
    seeds = sorted(set(runs) & set(teachers), key=int)
    if not seeds:
        return None
    pairs = [(drop_profile(runs[seed]), drop_profile(teachers[seed])) for seed in seeds]
    return (float(np.mean([100 * np.mean(np.abs(s - t)) for s, t in pairs])),
            float(np.mean([np.corrcoef(s, t)[0, 1] for s, t in pairs])))


def _cell(values):
    return study_results.format_cell(study_results.summarize(list(values)) if values else None)


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
    rows = _rows(results, "corrupt", study.METHODS_GRID)
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
        lines.append(f"| {label} | {_cell(study_results.per_seed(results, name).values())} "
                     f"| {_cell(study_results.per_seed(results, name, mean_corruption_accuracy).values())} "
                     f"| {_cell(study_results.per_seed(results, name, relative_drop).values())} |")
    lines += ["", "Top-1 (%) per corruption, mean over severities and seeds:", "",
              "| model | " + " | ".join(CORRUPTIONS) + " |",
              "|---|" + "---|" * len(CORRUPTIONS)]
    for label, name in rows:
        cells = []
        for corruption in CORRUPTIONS:
            by_seed = study_results.per_seed(results, name, lambda r, c=corruption: float(
                np.mean(list(r["corrupted"][c].values()))))
            cells.append(f"{100 * np.mean(list(by_seed.values())):.2f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    tracking = [(label, teacher_tracking(results, name)) for label, name in rows
                if label != "teacher"]
    if any(found for _, found in tracking):
        lines += ["", "How closely each student's losses to the corruptions follow its "
                  "teacher's: per seed, the top-1 each corrupted set costs (clean - "
                  "corrupted) against the teacher's; the mean absolute difference "
                  "(percentage points; smaller: closer to the teacher) and the correlation, "
                  "mean over seeds:", "",
                  "| model | distance to the teacher's drops (pp) | correlation |",
                  "|---|---|---|"]
        lines += [f"| {label} | {found[0]:.2f} | {found[1]:.3f} |"
                  for label, found in tracking if found]
    differences = []
    for augment in study.AUGMENTS:
        for method in COMPARED:
            first, second = f"corrupt:r2kd/{augment}", f"corrupt:{method}/{augment}"
            cells = [_difference_cell(study_results.paired(study_results.per_seed(results, first, value),
                                                   study_results.per_seed(results, second, value)))
                     for value in (lambda r: r["top1"], mean_corruption_accuracy,
                                   relative_drop)]
            if cells[0] != "-":
                differences.append(f"| R2KD - {study.METHOD_LABELS[method]}, augment "
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
        cells = [_cell(study_results.per_seed(results, f"{prefix}:{suffix}").values())
                 for prefix in ["corrupt", *prefixes]]
        if any(cell != "-" for cell in cells[1:]):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    differences = []
    for spec in noise_specs:
        if spec.method == "r2kd":
            continue
        cells = [_difference_cell(study_results.paired(
            study_results.per_seed(results, f"{prefix}:r2kd/{spec.augment}"),
            study_results.per_seed(results, f"{prefix}:{spec.name}"))) for prefix in prefixes]
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
        results: the `study_results.Results`.
        noise_specs: the configurations of part (b), in table order.
        md_path: the markdown file to write.
        png_path: the chart to write.

    Example:
    >>> write_report(results, study.select("*/none", study.METHODS_GRID), "out/r.md",
    ...              "out/r.png")
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
        f"accuracy grid's recipe), teachers computed in {settings['teacher_dtype']} for "
        "every method; corruptions after Hendrycks & Dietterich (2019), "
        "CIFAR-10-C parameters, applied to the 28x28 grey test images with seed "
        f"{settings['corruption_seed']} (the same corrupted images for every model).",
        "",
        *study_results.report_footer(data, png_path, last_session=False),
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
    rows = _rows(results, "corrupt", study.METHODS_GRID)
    for offset, (value, label) in enumerate([(lambda r: r["top1"], "clean"),
                                             (mean_corruption_accuracy, "mCA")]):
        stats = [study_results.summarize(list(study_results.per_seed(results, name, value).values()))
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
        points = [(100 * rate, study_results.summarize(list(by_seed.values())))
                  for rate, prefix in zip(rates, prefixes)
                  if (by_seed := study_results.per_seed(results, f"{prefix}:{spec.name}"))]
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

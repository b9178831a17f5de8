"""What a run reports: the summary table, the training curves and
`results.json`."""

import os

import numpy as np

from r2kd_keras.callbacks import read_csv, replace_atomically, write_json

METHOD_LABELS = {"none": "student alone", "kd": "KD", "r2kd": "R2KD", "dist": "DIST",
                 "dkd": "DKD"}


def format_table(results):
    """A text table of teacher and student accuracies and exported sizes.

    Args:
        results: the dict `run` returns.

    Returns:
        str.

    Example:
    >>> print(format_table(run(config, methods=["none", "kd", "r2kd"])))
    """
    lines = ["| model | top-1 (%) | sparsity | .tflite bytes (gzip) | LiteRT top-1, "
             "first 500 (%) |",
             "|---|---|---|---|---|"]
    config = results["config"]
    if results["teacher"]:
        accuracy = results["teacher"]["val_accuracy"]
        teacher = os.path.basename(config.get("teacher_model") or config["teacher"])
        lines.append(f"| teacher {teacher} | {100 * accuracy:.2f} | - | - | - |")
    for method, row in results["students"].items():
        report = row["export"] or {}
        size = (f"{report['bytes_raw']:,} ({report['bytes_gzip']:,})"
                if report else "-")
        litert = report.get("accuracy_litert")
        lines.append(
            f"| {config['student']} {METHOD_LABELS.get(method, method)} | "
            f"{100 * row['accuracy']:.2f} | {_sparsity_cell(row)} | {size} | "
            f"{'-' if litert is None else f'{100 * litert:.2f}'} |")
    return "\n".join(lines)


def _sparsity_cell(row):
    # A filter-pruned student is exported dense and smaller: what was pruned
    # shows in its parameter count, not in zeros.
    before = row.get("params_before_pruning")
    if before and row["params"] < before:
        return f"{1 - row['params'] / before:.2f} cut"
    return f"{row['sparsity']:.2f}"


def plot_curves(csv_path, png_path, title=""):
    """Writes the loss and accuracy curves of a `MetricsCSV` file as a PNG.

    Args:
        csv_path: the metrics CSV.
        png_path: the image to write (replaced atomically).
        title: figure title.

    Example:
    >>> plot_curves("run/metrics.csv", "run/curves.png")
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = read_csv(csv_path)
    epochs = [row["epoch"] + 1 for row in rows]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        for key in (metric, f"val_{metric}"):
            values = [row.get(key, np.nan) for row in rows]
            axis.plot(epochs, values, marker="o", label=key)
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    try:
        replace_atomically(png_path, lambda path: figure.savefig(path, dpi=80))
    finally:
        plt.close(figure)


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def write_results(results, path):
    """Writes the dict `run` returns to `path` as JSON, atomically.

    Example:
    >>> write_results(results, "run/results.json")
    """
    write_json(path, results, indent=2, default=_jsonable)

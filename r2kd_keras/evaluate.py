"""`r2kd evaluate`: accuracy of a saved classifier (`.keras`, or `.tflite`
run in LiteRT) on an image folder or a named dataset.

Reports top-1, top-5, per-class accuracy and the confusion matrix, writes
`evaluation.json` and `confusion_matrix.png`, and prints a short summary.
The class order is the model's: read from the `results.json` of the run that
wrote the model (same folder or its parent) when there is one, else the
sorted class folder names.
"""

import dataclasses
import json
import os

import numpy as np

_RESULTS = "results.json"


@dataclasses.dataclass
class Evaluation:
    """What `evaluate_model` measured.

    Args:
        model: the evaluated file.
        images: images evaluated.
        top1: top-1 accuracy in [0, 1].
        top5: top-k accuracy with k = min(5, classes).
        per_class: class name -> `{"accuracy", "images"}` (accuracy None
            for a class without images).
        class_names: the model's classes in logit order.
        confusion: `confusion[i][j]` images of true class i predicted as j.
        output_dir: where the report files were written.
    """

    model: str
    images: int
    top1: float
    top5: float
    per_class: dict
    class_names: list
    confusion: list
    output_dir: str = None

    def summary(self, worst=5):
        """Short text: top-1, top-5 and the least accurate classes."""
        lines = [f"{os.path.basename(self.model)} on {self.images} images: "
                 f"top-1 {100 * self.top1:.2f}%, top-5 {100 * self.top5:.2f}%"]
        scored = [(v["accuracy"], name) for name, v in self.per_class.items()
                  if v["accuracy"] is not None]
        if scored:
            lines.append("least accurate classes: " + ", ".join(
                f"{name} {100 * acc:.1f}%" for acc, name in sorted(scored)[:worst]))
        return "\n".join(lines)


def scores(logits, labels, class_names):
    """Top-1, top-5, per-class accuracy and the confusion matrix of `logits`.

    Args:
        logits: `(N, C)` scores.
        labels: `(N,)` class ids in `[0, C)`.
        class_names: C names.

    Returns:
        dict with `images`, `top1`, `top5`, `per_class`, `confusion`.

    Example:
    >>> scores(np.eye(3), np.arange(3), ["a", "b", "c"])["top1"]
    1.0
    """
    logits, labels = np.asarray(logits), np.asarray(labels).astype(int)
    classes = len(class_names)
    predicted = logits.argmax(-1)
    k = min(5, classes)
    # Ties count against the label, as in keras.metrics.TopKCategoricalAccuracy.
    label_score = logits[np.arange(len(labels)), labels]
    top5 = np.sum(logits > label_score[:, None], axis=-1) < k
    confusion = np.zeros((classes, classes), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {}
    for c, name in enumerate(class_names):
        count = int(confusion[c].sum())
        per_class[name] = {"accuracy": float(confusion[c, c] / count) if count else None,
                           "images": count}
    return {"images": int(len(labels)), "top1": float(np.mean(predicted == labels)),
            "top5": float(np.mean(top5)), "per_class": per_class,
            "confusion": confusion.tolist()}


def evaluate_model(model_path, data_dir=None, dataset="image_folder", image_size=None,
                   batch_size=64, output_dir=None, class_names=None, num_threads=1):
    """Evaluates a `.keras` or `.tflite` classifier and writes the report.

    Args:
        model_path: the `.keras` file, or a `.tflite` file (run in LiteRT).
        data_dir: the image folder (`data_dir/<class>/*.jpg|png`, every image
            is evaluated), or the named dataset's folder.
        dataset: `"image_folder"`, or a runner dataset (its validation split).
        image_size: served size; None: the model's input size.
        batch_size: images per batch.
        output_dir: where `evaluation.json` and `confusion_matrix.png` go;
            None: `<model file without extension>_eval/`.
        class_names: the model's classes in order; None: from the run's
            `results.json` if found, else the data's.
        num_threads: LiteRT threads.

    Returns:
        An `Evaluation`.

    Raises:
        FileNotFoundError: no model file or no data.
        ValueError: classes or input shape that do not fit the model.

    Example:
    >>> report = evaluate_model("runs/photos/student.tflite", "photos/val")
    >>> print(report.summary())
    """
    predict, input_shape, classes = _predictor(model_path, num_threads)
    size = image_size or input_shape[0]
    if not size:
        raise ValueError(f"{model_path!r} takes images of any size; pass --image_size.")
    class_names = class_names or _run_class_names(model_path)
    val_ds, labels_of = _data(dataset, data_dir, size, batch_size, class_names)
    names = labels_of.names
    if classes != len(names):
        raise ValueError(
            f"model={model_path!r} outputs {classes} classes but the data has "
            f"{len(names)}; evaluate on the classes the model was trained on.")
    logits, labels = [], []
    for x, y in val_ds:
        logits.append(predict(x.numpy()))
        labels.append(labels_of(y.numpy()))
    logits, labels = np.concatenate(logits), np.concatenate(labels)
    output_dir = output_dir or os.path.splitext(model_path)[0] + "_eval"
    report = Evaluation(model=model_path, class_names=list(names), output_dir=output_dir,
                        **scores(logits, labels, names))
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "evaluation.json"), "w") as f:
        json.dump(dataclasses.asdict(report), f, indent=2)
    plot_confusion(report, os.path.join(output_dir, "confusion_matrix.png"))
    return report


def _predictor(path, num_threads):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model={path!r} does not exist.")
    if path.endswith(".tflite"):
        from r2kd_keras import export, logs

        with logs.native_output_kept_aside(logs.is_quiet()):
            runner = export.LiteRTRunner(path, num_threads)
        return runner, runner.input_shape, runner.num_outputs
    if not path.endswith(".keras"):
        raise ValueError(f"model={path!r} must be a .keras or a .tflite file.")
    from r2kd_keras.models import external

    model = external.load_keras_file(path, "model")
    return ((lambda x: np.asarray(model(x, training=False))),
            tuple(model.input_shape[1:]), model.output_shape[-1])


def _run_class_names(model_path):
    folder = os.path.dirname(os.path.abspath(model_path))
    for candidate in (folder, os.path.dirname(folder)):
        path = os.path.join(candidate, _RESULTS)
        if os.path.isfile(path):
            with open(path) as f:
                names = json.load(f).get("class_names")
            if names:
                return names
    return None


class _Identity:
    def __init__(self, names):
        self.names = names

    def __call__(self, labels):
        return labels


class _ByName(_Identity):
    # The folder's sorted class order mapped onto the model's.
    def __init__(self, folder_names, model_names, data_dir):
        unknown = sorted(set(folder_names) - set(model_names))
        if unknown:
            raise ValueError(
                f"data_dir={data_dir!r} has class folders the model does not know: "
                f"{unknown[:5]}; the model's classes: {model_names[:10]}.")
        super().__init__(model_names)
        self._index = np.array([model_names.index(n) for n in folder_names])

    def __call__(self, labels):
        return self._index[labels]


def _data(dataset, data_dir, image_size, batch_size, model_names):
    if dataset == "image_folder":
        from r2kd_keras import data

        if not data_dir:
            raise ValueError("Pass --data_dir: a folder of class sub-folders of images.")
        # The folder as its own validation split: every image, unaugmented.
        _, val_ds, info = data.image_folder(data_dir, val_dir=data_dir,
                                            image_size=image_size, batch_size=batch_size)
    else:
        from r2kd_keras import train

        config = train.TrainConfig(dataset=dataset, data_dir=data_dir,
                                   image_size=image_size, batch_size=batch_size)
        _, val_ds, info = train.load_data(config.validate())
    names = info.class_names or [str(c) for c in range(info.num_classes)]
    labels_of = _ByName(names, model_names, data_dir) if model_names else _Identity(names)
    return val_ds, labels_of


def plot_confusion(report, path):
    """Writes the row-normalised confusion matrix of `report` as a PNG.

    Example:
    >>> plot_confusion(evaluate_model("m.keras", "photos"), "confusion.png")
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    confusion = np.asarray(report.confusion, np.float64)
    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    classes = len(report.class_names)
    side = min(20, 3 + 0.4 * classes)
    figure, axis = plt.subplots(figsize=(side, side))
    image = axis.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if classes <= 40:
        axis.set_xticks(range(classes), report.class_names, rotation=90)
        axis.set_yticks(range(classes), report.class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(f"top-1 {100 * report.top1:.1f}% on {report.images} images")
    figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)

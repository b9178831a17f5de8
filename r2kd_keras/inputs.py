"""The runner's checks of what a user brings: their teacher file, their image
folder, their model names. Every check runs before any training and before
anything is written to `output_dir`, and names the flag and the value."""

import os

from absl import logging

from r2kd_keras.data.preprocessing import resolve_normalization
from r2kd_keras.models import external

DEFAULT_FOLDER_IMAGE_SIZE = 64
# A teacher within this many points of guessing has nothing to teach; a
# trained teacher scores that low when it reads the images or the labels
# differently from how the runner serves them.
GUESSING_MARGIN = 0.05


def check_config(config):
    """Raises `ValueError` / `FileNotFoundError` for user inputs of a
    `TrainConfig` that cannot work together (called by `validate`).

    Example:
    >>> check_config(TrainConfig(dataset="image_folder", data_dir="photos"))
    """
    if config.teacher_model:
        if not os.path.isfile(config.teacher_model):
            raise FileNotFoundError(
                f"teacher_model={config.teacher_model!r} does not exist. Pass a "
                ".keras file saved with model.save('teacher.keras').")
        if not config.teacher_model.endswith(".keras"):
            raise ValueError(
                f"teacher_model={config.teacher_model!r} is not a .keras file; for a "
                "weights file (.weights.h5) of a named architecture use --teacher "
                "NAME --teacher_weights FILE.")
        if config.teacher_weights:
            raise ValueError(
                f"teacher_model={config.teacher_model!r} and teacher_weights="
                f"{config.teacher_weights!r} both give the teacher; pass one.")
    if not 0.0 <= config.val_fraction < 1.0:
        raise ValueError(f"val_fraction={config.val_fraction!r} must be in [0, 1).")
    if config.dataset == "image_folder" and not config.data_dir:
        raise ValueError(
            "dataset='image_folder' needs data_dir: a folder with one sub-folder of "
            "images per class (data_dir/<class>/*.jpg).")
    if config.val_dir and config.dataset != "image_folder":
        raise ValueError(
            f"val_dir={config.val_dir!r} applies to dataset='image_folder' only; "
            f"dataset={config.dataset!r} has its own validation split.")
    if config.student_weights and not config.student.startswith(external.KERAS_PREFIX):
        raise ValueError(
            f"student_weights={config.student_weights!r} applies to keras: students "
            f"only, not student={config.student!r}.")


def default_image_size(teacher_model):
    """The size to serve an image folder at: the `.keras` teacher's input
    size when it is fixed and square, else `DEFAULT_FOLDER_IMAGE_SIZE`.

    Example:
    >>> default_image_size(None)
    64
    """
    shape = external.saved_input_shape(teacher_model) if teacher_model else None
    if shape and shape[0] and shape[0] == shape[1]:
        return shape[0]
    return DEFAULT_FOLDER_IMAGE_SIZE


def given_teacher(config, info, input_shape):
    """The trained teacher the user gave, loaded and checked against the data;
    None when the runner builds (and maybe trains) a named teacher.

    A `--teacher_model` file and a `keras_hub:` teacher are loaded as they are;
    a `.keras` `--teacher_weights` file is only checked here (its weights are
    loaded into the named architecture later). Call it in the strategy's scope.

    Args:
        config: the `TrainConfig`.
        info: the data's `DatasetInfo`.
        input_shape: `(height, width, channels)` of the served images.

    Returns:
        A `keras.Model` or None.

    Raises:
        ValueError: class count or input shape that do not fit the data.

    Example:
    >>> teacher = given_teacher(config, info, (32, 32, 3))
    """
    if config.teacher_model:
        role = f"teacher_model={config.teacher_model!r}"
        teacher = external.load_keras_file(config.teacher_model, role)
    elif config.teacher.startswith(external.KERAS_HUB_PREFIX):
        role = f"teacher={config.teacher!r}"
        task = external.load_hub_classifier(config.teacher[len(external.KERAS_HUB_PREFIX):])
        external.check_fits(role, task, info.num_classes, input_shape, info.name)
        return external.as_functional(task, input_shape, config.teacher, info.normalization)
    elif config.teacher_weights and config.teacher_weights.endswith(".keras"):
        role = f"teacher_weights={config.teacher_weights!r}"
        saved = external.load_keras_file(config.teacher_weights, role)
        external.check_fits(role, saved, info.num_classes, input_shape, info.name)
        return None
    else:
        return None
    external.check_fits(role, teacher, info.num_classes, input_shape, info.name)
    return teacher


def teacher_warning(accuracy, info):
    """A warning when the teacher you gave is no better than guessing on the
    validation images, else None; logged as a warning too.

    Such a teacher is usually fine but fed differently from how it was
    trained: other input scaling or normalisation, or its classes in another
    order. Its targets are then noise, and the student learns nothing from it.

    Args:
        accuracy: the teacher's validation top-1, in [0, 1].
        info: the dataset's `DatasetInfo`.

    Returns:
        str or None.

    Example:
    >>> teacher_warning(0.11, info)  # 10 classes
    'the teacher scores 11.0% top-1 ...'
    """
    chance = 1.0 / info.num_classes
    if accuracy > chance + GUESSING_MARGIN:
        return None
    mean, std = resolve_normalization(info.normalization, info.channels)
    names = info.class_names or []
    order = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
    message = (
        f"the teacher scores {100 * accuracy:.1f}% top-1 on the {info.val_examples:,} "
        f"validation images, no better than guessing ({100 * chance:.1f}% for "
        f"{info.num_classes} classes), so its targets would teach the student nothing. "
        "Check that it was trained on these classes in this label order"
        + (f" ({order})" if order else "")
        + f" and on the images as they are served: {info.image_size}x{info.image_size}, "
        f"{info.channels} channels, values in [0, 1] normalised with mean "
        f"{_rounded(mean)} and std {_rounded(std)} (a model trained on [0, 255] "
        "pixels needs a layer in front that turns these back into pixels: "
        "docs/your-own-data.md, 'What your teacher must expect').")
    logging.warning("%s", message)
    return message


def _rounded(values):
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"

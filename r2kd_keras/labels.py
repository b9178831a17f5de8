"""Labels in either form: class ids `(batch,)` / `(batch, 1)` or one-hot (or
soft) `(batch, classes)`. The one place the package converts between them."""

import tensorflow as tf


def _shape_error(labels, num_classes, name):
    shape = tuple(labels.shape)
    return ValueError(
        f"`{name}` must be integer class ids of shape (batch,) or (batch, 1), "
        f"or one-hot of shape (batch, {num_classes}) for num_classes={num_classes}; "
        f"received labels of shape "
        f"{shape} (dtype {labels.dtype.name}). Given the received shape {shape}, "
        f"check the dataset's class count against the model's ({num_classes})."
    )


def to_one_hot(labels, num_classes, check_range=True, name="labels"):
    """Float32 one-hot labels from class ids, or one-hot/soft labels as given.

    Args:
        labels: class ids of shape `(batch,)` or `(batch, 1)` (integer, or
            float holding whole numbers), or one-hot / soft labels of shape
            `(batch, num_classes)`.
        num_classes: the number of classes `C`.
        check_range: assert at run time that class ids lie in `[0, C)`
            (an out-of-range id would otherwise silently become a zero row).
        name: the argument name used in error messages.

    Returns:
        A float32 tensor of shape `(batch, num_classes)`.

    Example:
    >>> to_one_hot([2, 0], 3)  # [[0., 0., 1.], [1., 0., 0.]]
    """
    labels = tf.convert_to_tensor(labels)
    shape = tuple(labels.shape)
    if len(shape) == 2 and shape[-1] == num_classes and num_classes != 1:
        return tf.cast(labels, "float32")
    if len(shape) == 2 and shape[-1] == 1:
        labels = tf.squeeze(labels, -1)
    elif len(shape) != 1:
        raise _shape_error(labels, num_classes, name)
    if labels.dtype.is_floating:
        labels = tf.cast(labels, "int64")
    elif not labels.dtype.is_integer:
        raise _shape_error(labels, num_classes, name)
    if not check_range:
        return tf.one_hot(tf.cast(labels, "int32"), num_classes)
    bounds = f"`{name}` must be class ids in [0, {num_classes}); received"
    checks = [
        tf.debugging.assert_non_negative(
            labels, message=f"{bounds} a negative label (labels of shape {shape})."
        ),
        tf.debugging.assert_less(
            labels, tf.cast(num_classes, labels.dtype),
            message=f"{bounds} a label >= {num_classes} (labels of shape {shape}). "
            "Check the dataset's class count against the models'.",
        ),
    ]
    with tf.control_dependencies(checks):
        return tf.one_hot(tf.cast(labels, "int32"), num_classes)


def to_class_ids(labels):
    """Int64 class ids `(batch,)` from ids `(batch,)`/`(batch, 1)` or one-hot.

    One-hot or soft labels give their arg-max (the majority class of a mixed
    label).

    Args:
        labels: class ids of shape `(batch,)` or `(batch, 1)`, or one-hot /
            soft labels of shape `(batch, classes)` with `classes > 1`.

    Returns:
        An int64 tensor of shape `(batch,)`.

    Example:
    >>> to_class_ids([[0., 1.], [1., 0.]])  # [1, 0]
    """
    labels = tf.convert_to_tensor(labels)
    shape = tuple(labels.shape)
    if len(shape) == 2 and shape[-1] != 1:
        return tf.argmax(labels, axis=-1)
    if len(shape) == 2:
        labels = tf.squeeze(labels, -1)
    elif len(shape) != 1:
        raise ValueError(
            "`labels` must be class ids of shape (batch,) or (batch, 1), or "
            f"one-hot of shape (batch, classes); received labels of shape {shape}."
        )
    return tf.cast(labels, "int64")

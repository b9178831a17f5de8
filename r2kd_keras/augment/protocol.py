"""How `R2KDDistiller` calls any second-view augmenter: on a `{"images",
"labels"}` dict or on the images alone, with `teacher=` for those that
declare `requires_teacher = True`."""

from r2kd_keras import _compat


def takes_dict(augmenter):
    """Whether `augmenter` is called on a `{"images", "labels"}` dict.

    Keras 3 and keras-cv image layers and `r2kd_keras.augment` views (which
    declare `requires_teacher`) take dicts, and so does any object with
    `accepts_dict = True`; other callables get the images alone.

    Example:
    >>> takes_dict(keras.layers.CutMix())
    True
    """
    if getattr(augmenter, "accepts_dict", False) or hasattr(augmenter, "requires_teacher"):
        return True
    if _compat.is_keras_image_layer(augmenter):
        return True
    return type(augmenter).__module__.startswith("keras_cv.")


def second_view(augmenter, images, one_hot, teacher):
    """`(A(x), labels of A(x))`: the augmented batch and its labels.

    Args:
        augmenter: the distiller's augmenter.
        images: the clean batch `x`.
        one_hot: its float one-hot labels, returned as the view's labels
            when the augmenter gives none.
        teacher: `fn(images) -> float32 logits`, called only by an
            augmenter with `requires_teacher = True`.

    Returns:
        `(augmented images, their labels)`.

    Example:
    >>> x_aug, y_aug = second_view(keras.layers.CutMix(), x, y, teacher=None)
    """
    if takes_dict(augmenter):
        data = {"images": images, "labels": one_hot}
        if getattr(augmenter, "requires_teacher", False):
            out = augmenter(data, teacher=teacher)
        else:
            out = augmenter(data)
    else:
        out = augmenter(images)
    if isinstance(out, dict):
        return out["images"], out.get("labels", one_hot)
    return out, one_hot

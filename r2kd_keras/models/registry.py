"""Look-up of the model builders by name."""

from r2kd_keras.models import cifar, external, imagenet, mobile

_BUILDERS = {
    name: getattr(module, name)
    for module in (cifar, mobile, imagenet)
    for name in module.__all__
}

# mdistiller's spellings of the mobile students, so its configs can be reused.
# (Its "ResNet18"/"ResNet50" mean different nets for CIFAR and ImageNet: not aliased.)
_ALIASES = {
    "MobileNetV2": "mobilenetv2",
    "mobile_half": "mobilenetv2",
    "ShuffleV1": "shufflenetv1",
    "ShuffleV2": "shufflenetv2",
    "MobileNetV1": "mobilenetv1",
}


def list_models():
    """The registered model names (aliases excluded).

    Returns:
        A list of str: the CIFAR / TinyImageNet models, then the mobile ones, then
        the ImageNet ones.

    Example:
    >>> "resnet8x4" in list_models()
    True
    """
    return list(_BUILDERS)


def get_model(name, num_classes, input_shape=None, weights=None):
    """Builds a registered model: a functional `keras.Model` from images to logits.

    Args:
        name: a name from `list_models()`, or one of mdistiller's spellings
            "MobileNetV2", "mobile_half", "ShuffleV1", "ShuffleV2", "MobileNetV1";
            or a `keras:` / `keras_hub:` name (see `models.external`).
        num_classes: int >= 2, width of the logits.
        input_shape: (height, width, channels), channels last. None gives the
            model's native size: (32, 32, 3) for the CIFAR and mobile models,
            (224, 224, 3) for resnet18/34/50 and mobilenetv1. (64, 64, 3) gives
            the TinyImageNet variant of the CIFAR and mobile models.
        weights: `keras:` names only: None (random) or `"imagenet"`.

    Returns:
        A new, randomly initialised `keras.Model` named `name` (canonical spelling).

    Raises:
        ValueError: unknown name, bad `input_shape` or `num_classes < 2`.
        TypeError: `num_classes` not an int.

    Example:
    >>> model = get_model("resnet8x4", num_classes=200, input_shape=(64, 64, 3))
    >>> model.output_shape
    (None, 200)
    """
    if external.is_external(name):
        return external.get_model(name, num_classes, input_shape, weights=weights)
    if weights is not None:
        raise ValueError(f"weights={weights!r} applies to keras: names only, not {name!r}.")
    canonical = _ALIASES.get(name, name) if isinstance(name, str) else None
    if canonical not in _BUILDERS:
        raise ValueError(
            f"Unknown model name {name!r}. Valid names: {', '.join(_BUILDERS)} "
            f"(aliases: {', '.join(_ALIASES)})."
        )
    builder = _BUILDERS[canonical]
    if input_shape is None:
        return builder(num_classes)
    return builder(num_classes, input_shape)

"""Look-up of the model builders by name."""

from r2kd_keras.models import cifar, external, imagenet, mobile
from r2kd_keras.models.torch_checkpoint import load_torch_checkpoint

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


def get_model(name, num_classes, input_shape=None, weights=None, torch_checkpoint=None,
              normalization="imagenet"):
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
        torch_checkpoint: None, or the path of a PyTorch checkpoint of the reference
            architecture (e.g. mdistiller's `resnet32x4_vanilla/ckpt_epoch_240.pth`)
            to load with `load_torch_checkpoint(model, path, strict=True)`; call that
            function directly for its report or `strict=False`. Zoo names only.
        normalization: `keras:` / `keras_hub:` names: how the images they will
            be fed were normalised (a `build_pipeline` normalisation: name,
            `(mean, std)` or None); a first layer turns them into the input
            their weights expect. Zoo models learn from the images as served.

    Returns:
        A new `keras.Model` named `name` (canonical spelling): randomly initialised,
        or holding the checkpoint's weights.

    Raises:
        ValueError: unknown name, bad `input_shape` or `num_classes < 2`.
        TypeError: `num_classes` not an int.
        TorchCheckpointError: the checkpoint is unreadable, unsafe or does not fit.

    Example:
    >>> model = get_model("resnet8x4", num_classes=200, input_shape=(64, 64, 3))
    >>> model.output_shape
    (None, 200)
    """
    if external.is_external(name):
        if torch_checkpoint is not None:
            raise ValueError(
                f"torch_checkpoint={torch_checkpoint!r} applies to zoo names only, not "
                f"{name!r}: the reference checkpoints hold the zoo's architectures.")
        return external.get_model(name, num_classes, input_shape, weights=weights,
                                  normalization=normalization)
    if weights is not None:
        raise ValueError(f"weights={weights!r} applies to keras: names only, not {name!r}.")
    canonical = _ALIASES.get(name, name) if isinstance(name, str) else None
    if canonical not in _BUILDERS:
        raise ValueError(
            f"Unknown model name {name!r}. Valid names: {', '.join(_BUILDERS)} "
            f"(aliases: {', '.join(_ALIASES)})."
        )
    builder = _BUILDERS[canonical]
    model = builder(num_classes) if input_shape is None else builder(num_classes, input_shape)
    if torch_checkpoint is not None:
        load_torch_checkpoint(model, torch_checkpoint)
    return model

"""`R2KDDistiller`'s deprecated arguments (`distillation`, `loss_kwargs` and
the settings of a named method) turned into a method object, and back."""

import keras

from r2kd_keras import methods as methods_lib
from r2kd_keras.validation import check_choice


def resolve_method(method, distillation=None, loss_kwargs=None, settings=None):
    """The method object the distiller's arguments name.

    Args:
        method: a `methods.DistillationMethod`, its name, or its saved config.
        distillation: the deprecated alias of `method` (a name), or None.
        loss_kwargs: deprecated further settings of a named method, or None.
        settings: deprecated `{argument: value}` of a named method; None
            values keep its recipe default, and a setting the method does
            not have is ignored.

    Returns:
        A `methods.DistillationMethod`.

    Example:
    >>> resolve_method("kd", settings={"temperature": 2.0})
    """
    if isinstance(method, dict):  # from a saved config
        method = keras.saving.deserialize_keras_object(method)
    settings = {k: v for k, v in (settings or {}).items() if v is not None}
    if isinstance(method, methods_lib.DistillationMethod):
        given = sorted(settings) + (["loss_kwargs"] if loss_kwargs else [])
        if distillation is not None or given:
            raise ValueError(
                f"Give the settings to the method object, not to R2KDDistiller: "
                f"received method={method!r} and also {given or ['distillation']}."
            )
        return method
    if distillation is not None:
        if method != "r2kd":
            raise ValueError(
                f"`distillation` is the old name of `method`; give one, received "
                f"method={method!r} and distillation={distillation!r}."
            )
        check_choice("distillation", distillation, methods_lib.METHOD_NAMES)
        method = distillation
    cls = methods_lib.method_class(method) if isinstance(method, str) else None
    if cls is None:
        return methods_lib.get_method(method)
    accepted = {k: v for k, v in settings.items() if k in cls.argument_names()}
    return methods_lib.get_method(method, **accepted, **(loss_kwargs or {}))


def changed_loss_kwargs(method):
    """The method's `loss_kwargs`-style settings that differ from its recipe
    defaults.

    Example:
    >>> changed_loss_kwargs(methods.DKD(beta=6.0))
    {'beta': 6.0}
    """
    defaults = type(method)().get_config()
    config = method.get_config()
    return {k: config[k] for k in method.legacy_loss_kwargs if config[k] != defaults[k]}

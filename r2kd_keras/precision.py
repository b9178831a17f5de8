"""Precision choices: the teacher's compute dtype, the student's policy, and
the one hardware probe both read."""

import collections

import keras
import tensorflow as tf

TEACHER_DTYPES = (None, "auto", "bfloat16", "float16")

Hardware = collections.namedtuple("Hardware", ["gpu_capability", "cpu_bfloat16"])


def detect_hardware():
    """What this process can run fast in reduced precision.

    Returns:
        `Hardware(gpu_capability, cpu_bfloat16)`: the first visible GPU's
        compute capability as a tuple (None without a GPU), and whether the
        CPU has AVX512-BF16 or AMX-BF16 instructions (Linux `/proc/cpuinfo`;
        False where it cannot be read).

    Example:
    >>> detect_hardware()
    Hardware(gpu_capability=None, cpu_bfloat16=False)
    """
    gpus = tf.config.list_physical_devices("GPU")
    capability = None
    if gpus:
        capability = tuple(
            tf.config.experimental.get_device_details(gpus[0]).get(
                "compute_capability", (0, 0)
            )
        )
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        flags = ""
    return Hardware(capability, "avx512_bf16" in flags or "amx_bf16" in flags)


def resolve_teacher_dtype(teacher_dtype):
    """`"auto"`: bfloat16 where the hardware runs it fast, else float32 (None).

    bfloat16 is picked on a CPU with AVX512-BF16 or AMX-BF16 instructions and
    on GPUs of compute capability 8.0 or newer; float16 on older GPUs. Other
    values are returned as given.

    Args:
        teacher_dtype: one of `TEACHER_DTYPES`.

    Returns:
        `"bfloat16"`, `"float16"` or None (float32).

    Example:
    >>> resolve_teacher_dtype("auto")  # None on a CPU without BF16 units
    """
    if teacher_dtype not in TEACHER_DTYPES:
        raise ValueError(
            f"`teacher_dtype` must be one of {TEACHER_DTYPES}, received: {teacher_dtype!r}"
        )
    if teacher_dtype != "auto":
        return teacher_dtype
    hardware = detect_hardware()
    if hardware.gpu_capability is not None:
        return "bfloat16" if hardware.gpu_capability >= (8, 0) else "float16"
    return "bfloat16" if hardware.cpu_bfloat16 else None


def student_policy():
    """`"mixed_float16"` when a GPU is visible, else `"mixed_bfloat16"`."""
    return "mixed_float16" if detect_hardware().gpu_capability is not None else "mixed_bfloat16"


def reduced_precision_copy(model, dtype):
    """An inference copy of `model` computing in `dtype` (mixed precision).

    Variables stay float32; convolutions and the rest run in `dtype`; Dense
    layers (the classifier) stay float32 so logits keep their precision.

    Args:
        model: a functional or Sequential `keras.Model`.
        dtype: `"bfloat16"` or `"float16"`.

    Returns:
        A new model with the same weights.

    Example:
    >>> fast_teacher = reduced_precision_copy(teacher, "bfloat16")
    """
    policy = keras.DTypePolicy(f"mixed_{dtype}")

    def clone(layer):
        if isinstance(layer, keras.Model):
            return reduced_precision_copy(layer, dtype)
        config = layer.get_config()
        if not isinstance(layer, keras.layers.Dense):
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    try:
        copy = keras.models.clone_model(model, clone_function=clone)
    except ValueError as error:
        raise ValueError(
            f"`teacher_dtype={dtype!r}` needs a functional or Sequential teacher "
            f"to copy layer by layer; model '{model.name}' could not be cloned "
            f"({error}). Use teacher_dtype=None."
        ) from error
    copy.set_weights(model.get_weights())
    copy.trainable = False
    return copy

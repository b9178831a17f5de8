"""`load_torch_checkpoint`: a checkpoint's state dict into a zoo model, and
`TorchCheckpointReport`, what it did."""

import dataclasses
import os

import keras
import numpy as np

from r2kd_keras.models.torch_checkpoint import mapping
from r2kd_keras.models.torch_checkpoint.errors import LISTED
from r2kd_keras.models.torch_checkpoint.errors import TorchCheckpointError
from r2kd_keras.models.torch_checkpoint.errors import listing
from r2kd_keras.models.torch_checkpoint.reader import read_torch_checkpoint

# The containers `torch.save` files put a state dict in, in order of precedence:
# RepDistiller and mdistiller use "model"; "state_dict" and "net" are common elsewhere.
_CONTAINER_KEYS = ("model", "state_dict", "net")
_DATA_PARALLEL_PREFIX = "module."
# Metadata keys that hold the checkpoint's test accuracy, by project.
_ACCURACY_KEYS = ("accuracy", "best_acc", "acc", "test_acc", "top1")


def _unpack(checkpoint, path):
    """Splits a checkpoint into `(state_dict, container_key, metadata)`."""
    if not isinstance(checkpoint, dict):
        raise TorchCheckpointError(
            f"{path!r} holds a {type(checkpoint).__name__}, not a state dict or a dict "
            f"with one under {' / '.join(map(repr, _CONTAINER_KEYS))}."
        )
    container = next((k for k in _CONTAINER_KEYS if isinstance(checkpoint.get(k), dict)), None)
    state = checkpoint if container is None else checkpoint[container]
    if not any(isinstance(value, np.ndarray) for value in state.values()):
        raise TorchCheckpointError(
            f"{path!r} holds no tensors where a state dict belongs; its keys are "
            f"{list(checkpoint)[:LISTED]}. Expected a state dict or a dict with one under "
            f"{' / '.join(map(repr, _CONTAINER_KEYS))}."
        )
    metadata = {}
    if container is not None:
        for key, value in checkpoint.items():
            if isinstance(value, np.ndarray) and value.size == 1:
                value = value.item()
            if isinstance(value, (bool, int, float, str)):
                metadata[key] = value
    state = {
        key.removeprefix(_DATA_PARALLEL_PREFIX) if isinstance(key, str) else key: value
        for key, value in state.items()
    }
    return state, container, metadata


@dataclasses.dataclass(frozen=True)
class TorchCheckpointReport:
    """What `load_torch_checkpoint` did.

    Attributes:
        path: the checkpoint file.
        file_format: "zip" (PyTorch >= 1.6) or "legacy".
        container: the key the state dict sat under ("model", "state_dict", "net"),
            or None for a plain state dict.
        loaded: the PyTorch keys copied into the model (with `module.` stripped).
        ignored: keys PyTorch has and Keras does not need (`num_batches_tracked`).
        unexpected: keys of the checkpoint with no place in the model (strict=False).
        missing: keys the model needs that the checkpoint lacks; those variables kept
            their values (strict=False).
        metadata: the container's scalar entries, e.g. {"epoch": 240, "accuracy": 79.4}.

    Example:
    ```python
    report = load_torch_checkpoint(teacher, "resnet32x4_vanilla/ckpt_epoch_240.pth")
    report.epoch, report.accuracy  # what RepDistiller stored: 240 and the test top-1
    assert not report.unexpected and not report.missing
    ```
    """

    path: str
    file_format: str
    container: object
    loaded: tuple
    ignored: tuple
    unexpected: tuple
    missing: tuple
    metadata: dict

    @property
    def epoch(self):
        """The checkpoint's stored epoch, or None."""
        return self.metadata.get("epoch")

    @property
    def accuracy(self):
        """The checkpoint's stored test accuracy (as the project saved it, e.g. in %), or None."""
        return next((self.metadata[k] for k in _ACCURACY_KEYS if k in self.metadata), None)

    def __str__(self):
        where = f"'{self.container}' of " if self.container else ""
        lines = [
            f"Loaded {len(self.loaded)} tensors from {where}{self.path} "
            f"({self.file_format} format).",
            f"Ignored {len(self.ignored)} (num_batches_tracked).",
        ]
        if self.unexpected:
            lines.append(f"Unexpected, not loaded: {listing(self.unexpected)}.")
        if self.missing:
            lines.append(f"Missing, left as they were: {listing(self.missing)}.")
        stored = {"epoch": self.epoch, "accuracy": self.accuracy}
        stored = [f"{name} {value}" for name, value in stored.items() if value is not None]
        if stored:
            lines.append(f"Checkpoint {', '.join(stored)}.")
        return "\n".join(lines)


def _mismatch(target, tensor):
    message = (
        f"tensor {target.key!r} has shape {tensor.shape} in the checkpoint but layer "
        f"{target.layer.name!r} needs {target.torch_shape} (PyTorch layout)"
    )
    classes = tensor.shape[0]
    if isinstance(target.layer, keras.layers.Dense) and tensor.shape[1:] == target.torch_shape[1:]:
        message += (
            f": the checkpoint has {classes} classes, build the model with "
            f"num_classes={classes}"
        )
    return message


def load_torch_checkpoint(model, path, strict=True):
    """Fills a zoo model with the weights of a PyTorch checkpoint of the reference model.

    `model` must come from `get_model(name, num_classes, input_shape)`; the checkpoint
    from the reference implementation of the same name (mdistiller / RepDistiller /
    R2KD `models/cifar`, mdistiller `models/imagenet`), e.g. the published teacher
    `resnet32x4_vanilla/ckpt_epoch_240.pth` into `get_model("resnet32x4", 100)`.
    Tensors are matched by module path, not by order. The file is read without
    PyTorch and without running code from it (see `read_torch_checkpoint`).

    Nothing is assigned until every tensor has been read and checked, so a failed
    load leaves the model as it was.

    Args:
        model: a zoo `keras.Model`, named after its architecture (as `get_model` does).
        path: str or os.PathLike, a `torch.save` file in either format: a plain state
            dict or one under "model", "state_dict" or "net"; `module.` prefixes
            (DataParallel) are stripped; float32, float16, bfloat16 or float64 tensors.
        strict: if True, every variable of the model must be in the checkpoint and
            every tensor of the checkpoint (but `num_batches_tracked`) must be used,
            like `torch.nn.Module.load_state_dict(strict=True)`. If False, missing
            variables keep their values and unused tensors are reported. Shapes
            must match either way.

    Returns:
        A `TorchCheckpointReport`: tensors loaded, ignored, unexpected and missing,
        and the checkpoint's stored epoch / accuracy.

    Raises:
        TypeError: `model` is not a `keras.Model` or `path` not a path.
        ValueError: `model` is not a zoo model, or `strict` not a bool.
        FileNotFoundError: no file at `path`.
        UnsafeCheckpointError: the pickle names a global outside the allowlist.
        TorchCheckpointError: not a checkpoint, truncated, a different architecture or
            class count (naming the tensor and both shapes), or tensors missing /
            unexpected with `strict=True` (listing them).

    Example:
    ```python
    from r2kd_keras.models import get_model, load_torch_checkpoint

    teacher = get_model("resnet32x4", num_classes=100)
    report = load_torch_checkpoint(teacher, "resnet32x4_vanilla/ckpt_epoch_240.pth")
    print(report)  # tensors loaded and ignored, the stored epoch and accuracy
    ```
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a keras.Model from `get_model`; received {type(model).__name__}."
        )
    if not isinstance(strict, bool):
        raise ValueError(f"`strict` must be True or False; received strict={strict!r}.")
    targets = mapping.targets(model)
    checkpoint, file_format = read_torch_checkpoint(path)
    path = os.fspath(path)
    state, container, metadata = _unpack(checkpoint, path)

    values, missing, mismatches = [], [], []
    for target in targets:
        tensor = state.get(target.key)
        if not isinstance(tensor, np.ndarray):
            missing.append(target.key)
        elif tensor.shape != target.torch_shape:
            mismatches.append(_mismatch(target, tensor))
        elif not np.issubdtype(tensor.dtype, np.floating):
            mismatches.append(f"tensor {target.key!r} has dtype {tensor.dtype}, not a float type")
        else:
            keras_shape = tuple(target.variable.shape)
            value = target.to_keras(tensor, keras_shape).astype(target.variable.dtype)
            values.append((target.variable, value))
    used = {target.key for target in targets}
    ignored = tuple(
        k for k in state if isinstance(k, str) and k.endswith(mapping.IGNORED_SUFFIXES)
    )
    unexpected = tuple(k for k in state if k not in used and k not in ignored)

    if mismatches:
        listed = listing(mismatches, quote=False, separator="; ")
        raise TorchCheckpointError(
            f"{path!r} does not fit {model.name!r}: {listed}. Build the model of the "
            "checkpoint's architecture and class count. The model was left unchanged."
        )
    if (strict and (missing or unexpected)) or not values:
        problems = []
        if missing:
            problems.append(
                f"{len(missing)} tensors the model needs are missing: {listing(missing)}"
            )
        if unexpected:
            problems.append(
                f"{len(unexpected)} tensors have no place in the model: {listing(unexpected)}"
            )
        fix = ", or pass strict=False to load what matches" if values else ""
        raise TorchCheckpointError(
            f"{path!r} does not fit {model.name!r} (strict={strict}): {'; '.join(problems)}. "
            f"Build the model of the checkpoint's architecture{fix}. The model was left "
            "unchanged."
        )
    for variable, value in values:
        variable.assign(value)
    absent = set(missing)
    return TorchCheckpointReport(
        path=path,
        file_format=file_format,
        container=container,
        loaded=tuple(target.key for target in targets if target.key not in absent),
        ignored=ignored,
        unexpected=unexpected,
        missing=tuple(missing),
        metadata=metadata,
    )

"""Loads PyTorch checkpoints of the reference architectures into the zoo, without PyTorch.

The published CIFAR-100 teachers (mdistiller's `cifar_teachers`, RepDistiller's
`save/models/*_vanilla/ckpt_epoch_240.pth`) are `torch.save` files: pickles whose
tensors live in separate storages. This module reads both file formats with the
standard library and numpy:

- the zip format of PyTorch >= 1.6: `<prefix>/data.pkl` plus one `<prefix>/data/<key>`
  entry per storage;
- the legacy format (PyTorch 0.4 to 1.5, and `_use_new_zipfile_serialization=False`
  since): five pickles in a row (magic number, protocol
  version, system info, the object, the storage keys) followed by each storage as
  a little-endian int64 element count and the raw elements.

A pickle runs whatever callables it names, so the object is read by an unpickler
that resolves only the globals a tensor checkpoint needs (the tensor rebuild
functions, the storage types, `collections.OrderedDict`), each replaced by a
harmless stand-in, and refuses any other global when the pickle names it, before
anything is called: the contract of `torch.load(weights_only=True)`.

The tensors are then mapped by structure: each weighted Keras layer of a zoo model
has a name (`stage2_block1_conv1`) that a per-architecture rule turns into the
PyTorch module path of the reference (`layer2.0.conv1`), and each Keras variable
into one tensor of that module (`kernel` -> `weight`, `moving_variance` ->
`running_var`, ...), with the layout changed (conv `(O, I, kh, kw)` -> `(kh, kw, I, O)`,
depthwise `(C, 1, kh, kw)` -> `(kh, kw, C, 1)`, Linear transposed).
"""

import _compat_pickle
import collections
import dataclasses
import io
import math
import os
import pickle
import re
import struct
import types
import zipfile
import zlib

import keras
import numpy as np

from r2kd_keras.models import cifar

__all__ = [
    "TorchCheckpointError",
    "TorchCheckpointReport",
    "UnsafeCheckpointError",
    "load_torch_checkpoint",
    "read_torch_checkpoint",
]

# The containers `torch.save` files put a state dict in, in order of precedence:
# RepDistiller and mdistiller use "model"; "state_dict" and "net" are common elsewhere.
_CONTAINER_KEYS = ("model", "state_dict", "net")
_DATA_PARALLEL_PREFIX = "module."
# Metadata keys that hold the checkpoint's test accuracy, by project.
_ACCURACY_KEYS = ("accuracy", "best_acc", "acc", "test_acc", "top1")
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_LISTED = 12


class TorchCheckpointError(ValueError):
    """A file that is not a readable PyTorch checkpoint, or one that does not fit the model."""


class UnsafeCheckpointError(TorchCheckpointError, pickle.UnpicklingError):
    """A checkpoint whose pickle names a global outside the tensor-checkpoint allowlist."""


# --- Reading: the restricted unpickler and the two file formats ---------------------


class _StorageType:
    """Stand-in for a `torch.<Name>Storage` class: only its element dtype matters."""

    def __init__(self, name, dtype):
        self.name = name
        self.dtype = dtype

    def __repr__(self):
        return f"torch.{self.name}"


# bfloat16 has no numpy dtype: its elements are read as uint16 and widened on use.
_BFLOAT16 = np.dtype("<u2")
_STORAGE_TYPES = {
    name: _StorageType(name, np.dtype(dtype))
    for name, dtype in (
        ("DoubleStorage", "<f8"),
        ("FloatStorage", "<f4"),
        ("HalfStorage", "<f2"),
        ("BFloat16Storage", _BFLOAT16),
        ("LongStorage", "<i8"),
        ("IntStorage", "<i4"),
        ("ShortStorage", "<i2"),
        ("CharStorage", "i1"),
        ("ByteStorage", "u1"),
        ("BoolStorage", "?"),
        ("UntypedStorage", "u1"),
    )
}


class _Storage:
    """A storage named by the pickle; its bytes arrive later (legacy) or at once (zip).

    A legacy "view" of a storage is a `_Storage` with a `base` and an element offset.
    """

    def __init__(self, storage_type, numel, base=None, offset=0):
        self.storage_type = storage_type
        self.numel = numel
        self.base = base
        self.offset = offset
        self.array = None

    def set_bytes(self, raw, what):
        dtype = self.storage_type.dtype
        if len(raw) < self.numel * dtype.itemsize:
            raise TorchCheckpointError(
                f"{what} holds {len(raw)} bytes but its storage needs "
                f"{self.numel} x {dtype.itemsize}: the file is truncated or corrupt."
            )
        self.array = np.frombuffer(raw, dtype, count=self.numel)

    def values(self):
        if self.base is not None:
            return self.base.values()[self.offset : self.offset + self.numel]
        if self.array is None:
            raise TorchCheckpointError("A tensor refers to a storage the file never stores.")
        return self.array


class _TensorRef:
    """What the tensor rebuild functions return: the view, resolved once the bytes are read."""

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _Storage):
            raise TorchCheckpointError(
                f"A tensor is rebuilt from {type(storage).__name__}, not from a storage."
            )
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(n) for n in size)
        self.stride = tuple(int(s) for s in stride)

    def numpy(self):
        values = self.storage.values()
        dtype = values.dtype
        if len(self.size) != len(self.stride) or min(self.size + self.stride, default=0) < 0:
            raise TorchCheckpointError(
                f"A tensor has size {self.size} and stride {self.stride}: the file is corrupt."
            )
        if 0 in self.size:
            array = np.empty(self.size, dtype)
        elif math.prod(self.size) > values.size:
            # Only an expanded (stride-0) tensor could; refusing it bounds the memory a
            # crafted file can make this allocate by the file's own size.
            raise TorchCheckpointError(
                f"A tensor of size {self.size} has more elements than its storage "
                f"({values.size}): the file is corrupt."
            )
        else:
            last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
            if self.offset < 0 or last >= values.size:
                raise TorchCheckpointError(
                    f"A tensor of size {self.size} reads element {last} of a storage of "
                    f"{values.size}: the file is truncated or corrupt."
                )
            array = np.lib.stride_tricks.as_strided(
                values[self.offset :],
                self.size,
                [s * dtype.itemsize for s in self.stride],
                writeable=False,
            ).copy()
        if self.storage.storage_type.dtype is _BFLOAT16:
            return (array.astype(np.uint32) << 16).view(np.float32)
        return array


def _rebuild_tensor(storage, storage_offset, size, stride, *_requires_grad_hooks_metadata):
    # Stand-in for torch._utils._rebuild_tensor(_v2).
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_requires_grad_hooks_state):
    # Stand-in for torch._utils._rebuild_parameter(_with_state): a Parameter is its data.
    return data


def _rebuild_from_type_v2(function, _new_type, args, _state):
    # Stand-in for torch._tensor._rebuild_from_type_v2 (Parameter and Tensor subclasses);
    # `function` can only be another allowlisted stand-in.
    return function(*args)


class _TensorClass:
    """Stand-in for `torch.Tensor` / `torch.nn.Parameter`, named by `_rebuild_from_type_v2`."""


_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    # RepDistiller's `*_last.pth` keeps its command-line options: attributes only.
    ("argparse", "Namespace"): types.SimpleNamespace,
    ("torch", "Size"): tuple,
    ("torch", "Tensor"): _TensorClass,
    ("torch.nn.parameter", "Parameter"): _TensorClass,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    # Storages are pickled under `torch.<Name>Storage`; `torch.cuda` covers writers
    # that did not normalise the type of a GPU tensor's storage.
    **{
        (module, name): storage_type
        for module in ("torch", "torch.cuda")
        for name, storage_type in _STORAGE_TYPES.items()
    },
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only `_SAFE_GLOBALS`; storages come from `persistent_load`."""

    def __init__(self, file, path, persistent_load=None):
        super().__init__(file)
        self._path = path
        self._persistent_load = persistent_load

    def find_class(self, module, name):
        # Called by the GLOBAL / STACK_GLOBAL opcodes, before anything can be called.
        # Protocol-2 pickles spell some globals the Python 2 way (`__builtin__.eval`).
        module, name = _compat_pickle.NAME_MAPPING.get(
            (module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name)
        )
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"Refused to load {self._path!r}: its pickle names the global "
                f"`{module}.{name}`, which a tensor checkpoint never needs, and unpickling "
                "it could run arbitrary code. Nothing from the file was executed. Only "
                "state dicts (tensors, dicts, lists, numbers, strings) are read, like "
                "`torch.load(weights_only=True)`; if the file pickles a whole model, "
                "re-save it where you trust it with `torch.save(model.state_dict(), path)`."
            ) from None

    def persistent_load(self, pid):
        if self._persistent_load is None:
            raise TorchCheckpointError(f"{self._path!r}: a storage reference where none belongs.")
        return self._persistent_load(pid)


def _storage_reference(pid, length, path):
    """Checks a persistent id `('storage', storage_type, key, location, numel, ...)`."""
    if isinstance(pid, tuple) and pid and pid[0] == "module":
        raise UnsafeCheckpointError(
            f"Refused to load {path!r}: it pickles a whole `torch.nn.Module` (with its "
            "source code), not a state dict. Re-save it where you trust it with "
            "`torch.save(model.state_dict(), path)`."
        )
    if (
        not isinstance(pid, tuple)
        or len(pid) != length
        or pid[0] != "storage"
        or not isinstance(pid[1], _StorageType)
    ):
        raise TorchCheckpointError(f"{path!r}: unrecognised storage reference {pid!r}.")
    return pid[1:]


def _read_zip(data, path):
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise TorchCheckpointError(
            f"{path!r} starts like a zip-format PyTorch checkpoint but the archive cannot "
            f"be read ({error}): it is truncated or corrupt. Download it again."
        ) from None
    pickles = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == "data.pkl"]
    if len(pickles) != 1:
        raise TorchCheckpointError(
            f"{path!r} is a zip file but not a PyTorch checkpoint: it should hold exactly "
            f"one 'data.pkl', found {len(pickles)} among {archive.namelist()[:_LISTED]}."
        )
    prefix = pickles[0][: -len("data.pkl")]
    storages = {}

    def persistent_load(pid):
        storage_type, key, _location, numel = _storage_reference(pid, 5, path)
        if key not in storages:
            entry = f"{prefix}data/{key}"
            try:
                raw = archive.read(entry)
            except KeyError:
                raise TorchCheckpointError(
                    f"{path!r} lacks the storage entry {entry!r}: the file is corrupt."
                ) from None
            storage = _Storage(storage_type, int(numel))
            storage.set_bytes(raw, f"Entry {entry!r} of {path!r}")
            storages[key] = storage
        return storages[key]

    if f"{prefix}byteorder" in archive.namelist():
        order = archive.read(f"{prefix}byteorder").decode("ascii", "replace").strip()
        if order != "little":
            raise TorchCheckpointError(
                f"{path!r} was written on a {order!r}-endian machine; only little-endian "
                "checkpoints are supported."
            )
    pickled = io.BytesIO(archive.read(pickles[0]))
    return _RestrictedUnpickler(pickled, path, persistent_load).load()


def _read_legacy(data, path):
    file = io.BytesIO(data)
    magic = _RestrictedUnpickler(file, path).load()
    if magic != _LEGACY_MAGIC:
        raise TorchCheckpointError(
            f"{path!r} is a pickle but not a PyTorch checkpoint (no PyTorch magic number)."
        )
    protocol = _RestrictedUnpickler(file, path).load()
    if protocol != _LEGACY_PROTOCOL:
        raise TorchCheckpointError(
            f"{path!r} uses PyTorch serialization protocol {protocol!r}; only "
            f"{_LEGACY_PROTOCOL} (PyTorch 0.4 to 1.5, and later with "
            "`_use_new_zipfile_serialization=False`) is supported."
        )
    system = _RestrictedUnpickler(file, path).load()
    if isinstance(system, dict) and not system.get("little_endian", True):
        raise TorchCheckpointError(
            f"{path!r} was written on a big-endian machine; only little-endian "
            "checkpoints are supported."
        )
    storages = {}

    def persistent_load(pid):
        storage_type, key, _location, numel, view = _storage_reference(pid, 6, path)
        storage = storages.setdefault(key, _Storage(storage_type, int(numel)))
        if view is None:
            return storage
        _view_key, offset, size = view
        return _Storage(storage_type, int(size), base=storage, offset=int(offset))

    result = _RestrictedUnpickler(file, path, persistent_load).load()
    keys = _RestrictedUnpickler(file, path).load()
    for key in keys:
        if key not in storages:
            raise TorchCheckpointError(f"{path!r} stores storage {key!r} that nothing uses.")
        (numel,) = struct.unpack("<q", file.read(8))
        storage = storages[key]
        raw = file.read(numel * storage.storage_type.dtype.itemsize)
        storage.set_bytes(raw, f"Storage {key!r} of {path!r}")
    return result


def _materialise(value):
    """The unpickled object with every tensor as a numpy array."""
    if isinstance(value, _TensorRef):
        return value.numpy()
    if isinstance(value, dict):
        return type(value)((key, _materialise(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_materialise(item) for item in value)
    return value


def _check_path(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"`path` must be a str or os.PathLike naming a .pth file; received "
            f"path={path!r} of type {type(path).__name__}."
        )
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"`path` must name an existing PyTorch checkpoint file; received path={path!r}, "
            "which " + ("is a directory." if os.path.isdir(path) else "does not exist.")
        )
    return path


def read_torch_checkpoint(path):
    """Reads a `torch.save` file into Python objects, tensors as numpy arrays, safely.

    Both PyTorch file formats are read (zip, PyTorch >= 1.6; legacy, older files and
    `_use_new_zipfile_serialization=False`), without PyTorch. Only the globals a
    tensor checkpoint needs are resolved; any other is refused before it can run.

    Args:
        path: str or os.PathLike, the checkpoint file.

    Returns:
        `(checkpoint, file_format)`: the unpickled object (dicts, lists, numbers,
        strings and numpy arrays in the tensors' dtypes; bfloat16 widened to float32)
        and "zip" or "legacy".

    Raises:
        FileNotFoundError: `path` is not a file.
        UnsafeCheckpointError: the pickle names a global outside the allowlist.
        TorchCheckpointError: the file is not a PyTorch checkpoint, or is truncated.

    Example:
    ```python
    checkpoint, file_format = read_torch_checkpoint("resnet32x4_vanilla/ckpt_epoch_240.pth")
    sorted(checkpoint)  # ['accuracy', 'epoch', 'model', 'optimizer'] (RepDistiller's layout)
    checkpoint["model"]["fc.weight"].shape  # (100, 256)
    ```
    """
    path = _check_path(path)
    with open(path, "rb") as file:
        data = file.read()
    if data.startswith(b"PK"):
        reader, file_format = _read_zip, "zip"
    elif data.startswith(b"\x80"):
        reader, file_format = _read_legacy, "legacy"
    else:
        raise TorchCheckpointError(
            f"{path!r} is not a PyTorch checkpoint: it is neither a zip archive nor a "
            f"pickle (it starts with {data[:8]!r})."
        )
    try:
        return _materialise(reader(data, path)), file_format
    except TorchCheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, struct.error, zipfile.BadZipFile, zlib.error,
            ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise TorchCheckpointError(
            f"{path!r} cannot be read as a {file_format}-format PyTorch checkpoint "
            f"({type(error).__name__}: {error}): it is truncated or corrupt."
        ) from None


# --- Mapping: Keras layer names of the zoo -> module paths of the reference ---------


def _rule(pattern, template):
    """A mapping rule: Keras layer names matching `pattern` (whole name) give the
    PyTorch module path `template`, a str, or a function of the match's groups
    (digit groups as ints)."""
    regex = re.compile(pattern)

    def apply(name):
        match = regex.fullmatch(name)
        if match is None:
            return None
        if isinstance(template, str):
            return template
        groups = (int(g) if g.isdigit() else g for g in match.groups())
        return template(*groups)

    return apply


def _sequential_index(kind, index):
    """Position of conv/bn number `index` in `nn.Sequential(conv, bn, relu, conv, bn, ...)`."""
    return 3 * (index - 1) + (kind == "bn")


# Rules several architectures share.
_STEM = (_rule(r"stem_conv", "conv1"), _rule(r"stem_bn", "bn1"))
# `layer{s}` nn.Sequentials of blocks with attributes conv1, bn1, conv2, ...
_LAYER_BLOCKS = _rule(
    r"stage(\d+)_block(\d+)_(?:dw)?(conv|bn)(\d)",
    lambda s, b, kind, i: f"layer{s}.{b - 1}.{kind}{i}",
)

# mdistiller models/cifar/resnet.py and models/imagenet/resnet.py (torchvision's).
_RESNET = (
    *_STEM,
    _LAYER_BLOCKS,
    _rule(
        r"stage(\d+)_block(\d+)_shortcut_(conv|bn)",
        lambda s, b, kind: f"layer{s}.{b - 1}.downsample.{int(kind == 'bn')}",
    ),
    _rule(r"logits", "fc"),
)
# models/cifar/wrn.py
_WRN_PARTS = {"shortcut_conv": "convShortcut"}
_WRN = (
    _rule(r"stem_conv", "conv1"),
    _rule(
        r"stage(\d+)_block(\d+)_((?:conv|bn)\d|shortcut_conv)",
        lambda s, b, part: f"block{s}.layer.{b - 1}.{_WRN_PARTS.get(part, part)}",
    ),
    _rule(r"final_bn", "bn1"),
    _rule(r"logits", "fc"),
)
# models/cifar/vgg.py: each block an nn.Sequential of (conv, bn, relu) triples.
_VGG = (
    _rule(r"block(\d)_(conv|bn)(\d)", lambda s, kind, i: f"block{s}.{_sequential_index(kind, i)}"),
    _rule(r"logits", "classifier"),
)
# models/cifar/mobilenetv2.py
_MOBILENETV2 = (
    _rule(r"stem_(conv|bn)", lambda kind: f"conv1.{_sequential_index(kind, 1)}"),
    _rule(
        r"stage(\d+)_block(\d+)_(?:dw)?(conv|bn)(\d)",
        lambda s, b, kind, i: f"blocks.{s - 1}.{b - 1}.conv.{_sequential_index(kind, i)}",
    ),
    _rule(r"head_(conv|bn)", lambda kind: f"conv2.{_sequential_index(kind, 1)}"),
    _rule(r"logits", "classifier.0"),
)
# models/cifar/ShuffleNetv1.py
_SHUFFLENETV1 = (*_STEM, _LAYER_BLOCKS, _rule(r"logits", "linear"))
# models/cifar/ShuffleNetv2.py: each stage's DownBlock is layer{s}.0, its BasicBlocks follow.
_SHUFFLENETV2 = (
    *_STEM,
    _rule(r"stage(\d+)_down_(?:dw)?(conv|bn)(\d)", lambda s, kind, i: f"layer{s}.0.{kind}{i}"),
    _rule(
        r"stage(\d+)_block(\d+)_(?:dw)?(conv|bn)(\d)",
        lambda s, b, kind, i: f"layer{s}.{b}.{kind}{i}",
    ),
    _rule(r"head_conv", "conv2"),
    _rule(r"head_bn", "bn2"),
    _rule(r"logits", "linear"),
)
# models/imagenet/mobilenetv1.py: one nn.Sequential `model` of 14 Sequentials.
_MOBILENETV1 = (
    _rule(r"stem_(conv|bn)", lambda kind: f"model.0.{_sequential_index(kind, 1)}"),
    _rule(
        r"block(\d+)_(?:dw)?(conv|bn)(\d)",
        lambda k, kind, i: f"model.{k}.{_sequential_index(kind, i)}",
    ),
    _rule(r"logits", "fc"),
)

_ARCHITECTURES = {
    **{name: _RESNET for name in cifar.__all__ if name.startswith("resnet")},
    **{name: _WRN for name in cifar.__all__ if name.startswith("wrn_")},
    **{name: _VGG for name in cifar.__all__ if name.startswith("vgg")},
    "resnet18": _RESNET,
    "resnet34": _RESNET,
    "resnet50": _RESNET,
    "mobilenetv1": _MOBILENETV1,
    "mobilenetv2": _MOBILENETV2,
    "shufflenetv1": _SHUFFLENETV1,
    "shufflenetv2": _SHUFFLENETV2,
}

_TORCH_PARAMETERS = {
    "kernel": "weight",
    "bias": "bias",
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}
# Buffers a PyTorch layer has and a Keras one does not: read, reported, not used.
_IGNORED_SUFFIXES = (".num_batches_tracked",)


def _conv_to_keras(tensor, keras_shape):
    # (O, I / groups, kh, kw) -> (kh, kw, I / groups, O)
    return tensor.transpose(2, 3, 1, 0)


def _depthwise_to_keras(tensor, keras_shape):
    # (C * multiplier, 1, kh, kw) -> (kh, kw, 1, C * multiplier) -> (kh, kw, C, multiplier):
    # PyTorch's output channel c * multiplier + m is Keras's [c, m].
    return tensor.transpose(2, 3, 1, 0).reshape(keras_shape)


def _dense_to_keras(tensor, keras_shape):
    return tensor.T


def _same(tensor, keras_shape):
    return tensor


def _torch_shape(layer, variable_name, keras_shape):
    """The PyTorch shape of a Keras variable and the function converting it to Keras."""
    if variable_name != "kernel":
        return keras_shape, _same
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw, channels, multiplier = keras_shape
        return (channels * multiplier, 1, kh, kw), _depthwise_to_keras
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw, inputs, outputs = keras_shape
        return (outputs, inputs, kh, kw), _conv_to_keras
    if isinstance(layer, keras.layers.Dense):
        return keras_shape[::-1], _dense_to_keras
    raise TorchCheckpointError(f"No PyTorch layout for the kernel of {type(layer).__name__}.")


@dataclasses.dataclass(frozen=True)
class _Target:
    key: str
    layer: keras.layers.Layer
    variable: keras.Variable
    torch_shape: tuple
    to_keras: object


def _targets(model):
    """One `_Target` per Keras variable of a zoo model: its PyTorch state-dict key."""
    rules = _ARCHITECTURES.get(model.name)
    if rules is None:
        raise ValueError(
            f"`model` must be a zoo model built with `get_model(name, ...)`, named after "
            f"its architecture; received a model named {model.name!r}. Architectures with "
            f"a PyTorch mapping: {', '.join(_ARCHITECTURES)}."
        )
    targets = []
    for layer in model.layers:
        if not layer.weights:
            continue
        module = next((path for path in (r(layer.name) for r in rules) if path), None)
        if module is None:
            raise ValueError(
                f"Layer {layer.name!r} of {model.name!r} has weights but no counterpart in "
                "the reference architecture: load checkpoints into the unmodified zoo "
                "model, then change it."
            )
        for variable in layer.weights:
            keras_shape = tuple(variable.shape)
            torch_shape, to_keras = _torch_shape(layer, variable.name, keras_shape)
            key = f"{module}.{_TORCH_PARAMETERS[variable.name]}"
            targets.append(_Target(key, layer, variable, torch_shape, to_keras))
    return targets


# --- Containers, the report, and the public loader ----------------------------------


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
            f"{list(checkpoint)[:_LISTED]}. Expected a state dict or a dict with one under "
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


def _listing(items, quote=True, separator=", "):
    """The first `_LISTED` items and how many more there are."""
    items = list(items)
    shown = separator.join(map(repr if quote else str, items[:_LISTED]))
    return shown + (f" ... and {len(items) - _LISTED} more" if len(items) > _LISTED else "")


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
            lines.append(f"Unexpected, not loaded: {_listing(self.unexpected)}.")
        if self.missing:
            lines.append(f"Missing, left as they were: {_listing(self.missing)}.")
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
    targets = _targets(model)
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
    ignored = tuple(k for k in state if isinstance(k, str) and k.endswith(_IGNORED_SUFFIXES))
    unexpected = tuple(k for k in state if k not in used and k not in ignored)

    if mismatches:
        listed = _listing(mismatches, quote=False, separator="; ")
        raise TorchCheckpointError(
            f"{path!r} does not fit {model.name!r}: {listed}. Build the model of the "
            "checkpoint's architecture and class count. The model was left unchanged."
        )
    if (strict and (missing or unexpected)) or not values:
        problems = []
        if missing:
            problems.append(
                f"{len(missing)} tensors the model needs are missing: {_listing(missing)}"
            )
        if unexpected:
            problems.append(
                f"{len(unexpected)} tensors have no place in the model: {_listing(unexpected)}"
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

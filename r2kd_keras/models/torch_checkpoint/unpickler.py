"""The restricted unpickler: a `torch.save` pickle read without PyTorch and
without running anything it names.

A pickle runs whatever callables it names, so this unpickler resolves only the
globals a tensor checkpoint needs (the tensor rebuild functions, the storage
types, `collections.OrderedDict`), each replaced by a harmless stand-in, and
refuses any other global when the pickle names it, before anything is called:
the contract of `torch.load(weights_only=True)`. Tensors come out as
`TensorRef`s into `Storage`s, whose bytes the file readers fill in.
"""

import _compat_pickle
import collections
import math
import pickle
import types

import numpy as np

from r2kd_keras.models.torch_checkpoint.errors import TorchCheckpointError
from r2kd_keras.models.torch_checkpoint.errors import UnsafeCheckpointError


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


class Storage:
    """A storage named by the pickle; its bytes arrive later (legacy) or at once (zip).

    A legacy "view" of a storage is a `Storage` with a `base` and an element offset.
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


class TensorRef:
    """What the tensor rebuild functions return: the view, resolved once the bytes are read."""

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, Storage):
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
    return TensorRef(storage, storage_offset, size, stride)


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


class RestrictedUnpickler(pickle.Unpickler):
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


def storage_reference(pid, length, path):
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


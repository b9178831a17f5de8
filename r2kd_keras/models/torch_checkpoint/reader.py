"""`read_torch_checkpoint`: both `torch.save` file formats, read with the
standard library and numpy.

- the zip format of PyTorch >= 1.6: `<prefix>/data.pkl` plus one `<prefix>/data/<key>`
  entry per storage;
- the legacy format (PyTorch 0.4 to 1.5, and `_use_new_zipfile_serialization=False`
  since): five pickles in a row (magic number, protocol
  version, system info, the object, the storage keys) followed by each storage as
  a little-endian int64 element count and the raw elements.
"""

import io
import os
import pickle
import struct
import zipfile
import zlib

from r2kd_keras import _paths
from r2kd_keras.models.torch_checkpoint.errors import LISTED
from r2kd_keras.models.torch_checkpoint.errors import TorchCheckpointError
from r2kd_keras.models.torch_checkpoint.unpickler import RestrictedUnpickler
from r2kd_keras.models.torch_checkpoint.unpickler import Storage
from r2kd_keras.models.torch_checkpoint.unpickler import TensorRef
from r2kd_keras.models.torch_checkpoint.unpickler import storage_reference

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


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
            f"one 'data.pkl', found {len(pickles)} among {archive.namelist()[:LISTED]}."
        )
    prefix = pickles[0][: -len("data.pkl")]
    storages = {}

    def persistent_load(pid):
        storage_type, key, _location, numel = storage_reference(pid, 5, path)
        if key not in storages:
            entry = f"{prefix}data/{key}"
            try:
                raw = archive.read(entry)
            except KeyError:
                raise TorchCheckpointError(
                    f"{path!r} lacks the storage entry {entry!r}: the file is corrupt."
                ) from None
            storage = Storage(storage_type, int(numel))
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
    return RestrictedUnpickler(pickled, path, persistent_load).load()


def _read_legacy(data, path):
    file = io.BytesIO(data)
    magic = RestrictedUnpickler(file, path).load()
    if magic != _LEGACY_MAGIC:
        raise TorchCheckpointError(
            f"{path!r} is a pickle but not a PyTorch checkpoint (no PyTorch magic number)."
        )
    protocol = RestrictedUnpickler(file, path).load()
    if protocol != _LEGACY_PROTOCOL:
        raise TorchCheckpointError(
            f"{path!r} uses PyTorch serialization protocol {protocol!r}; only "
            f"{_LEGACY_PROTOCOL} (PyTorch 0.4 to 1.5, and later with "
            "`_use_new_zipfile_serialization=False`) is supported."
        )
    system = RestrictedUnpickler(file, path).load()
    if isinstance(system, dict) and not system.get("little_endian", True):
        raise TorchCheckpointError(
            f"{path!r} was written on a big-endian machine; only little-endian "
            "checkpoints are supported."
        )
    storages = {}

    def persistent_load(pid):
        storage_type, key, _location, numel, view = storage_reference(pid, 6, path)
        storage = storages.setdefault(key, Storage(storage_type, int(numel)))
        if view is None:
            return storage
        _view_key, offset, size = view
        return Storage(storage_type, int(size), base=storage, offset=int(offset))

    result = RestrictedUnpickler(file, path, persistent_load).load()
    keys = RestrictedUnpickler(file, path).load()
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
    if isinstance(value, TensorRef):
        return value.numpy()
    if isinstance(value, dict):
        return type(value)((key, _materialise(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_materialise(item) for item in value)
    return value


def _check_path(path):
    path = _paths.as_path(path, "naming a .pth file")
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

"""The errors of PyTorch checkpoint loading, and how their messages list names."""

import pickle

# At most this many keys or entries are named in one message.
LISTED = 12


class TorchCheckpointError(ValueError):
    """A file that is not a readable PyTorch checkpoint, or one that does not fit the model."""


class UnsafeCheckpointError(TorchCheckpointError, pickle.UnpicklingError):
    """A checkpoint whose pickle names a global outside the tensor-checkpoint allowlist."""


def listing(items, quote=True, separator=", "):
    """The first `LISTED` items and how many more there are."""
    items = list(items)
    shown = separator.join(map(repr if quote else str, items[:LISTED]))
    return shown + (f" ... and {len(items) - LISTED} more" if len(items) > LISTED else "")

"""The check every function taking a file path starts with."""

import os


def as_path(path, expected, name="path"):
    """`os.fspath(path)`, or a TypeError naming the argument and its value.

    Args:
        path: the value received.
        expected: what the path must name, completing "`path` must be a str or
            os.PathLike ...", e.g. "naming a .pth file".
        name: the argument's name, for the message.

    Example:
    >>> as_path(pathlib.Path("ckpt.pth"), "naming a .pth file")
    'ckpt.pth'
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"`{name}` must be a str or os.PathLike {expected}; received "
            f"{name}={path!r} of type {type(path).__name__}."
        )
    return os.fspath(path)

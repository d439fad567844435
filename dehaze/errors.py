"""User-facing errors.

Every mistake a user can make (a bad path, a broken image, an unknown config key, an
incompatible checkpoint) is raised as a :class:`DehazeError` with one plain sentence.
The CLI prints it as a single ``error: ...`` line and exits non-zero; the service maps
it to a 4xx JSON body. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class DehazeError(Exception):
    """An error caused by the user's input, reported as one line without a traceback."""

    exit_code = 2


class InputError(DehazeError):
    """A file, folder or image that cannot be used (missing, unreadable, truncated, wrong kind)."""


class ImageTooLargeError(InputError):
    """An image whose pixel count exceeds the configured limit (decompression-bomb guard)."""


class UnsupportedFormatError(InputError):
    """An image format that the reader or writer does not support."""


class ConfigError(DehazeError):
    """A configuration key or value that does not exist or does not fit."""


class CheckpointError(DehazeError):
    """A checkpoint or model file that is missing, corrupt or incompatible with the config."""


class ParityError(DehazeError):
    """An exported ONNX model whose outputs differ from PyTorch beyond tolerance."""

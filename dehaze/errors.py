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


def run_reporting_errors(fn, *args, **kwargs) -> int:
    """Call ``fn`` and return an exit code; a :class:`DehazeError` becomes one ``error: ...`` line.

    The shared wrapper of every command-line entry point (``dehaze``, the training scripts).

    Example:
        >>> def bad():
        ...     raise ConfigError("unknown config key 'x'")
        >>> run_reporting_errors(bad)  # prints "error: unknown config key 'x'" on stderr
        2
    """
    import sys

    try:
        return int(fn(*args, **kwargs) or 0)
    except DehazeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

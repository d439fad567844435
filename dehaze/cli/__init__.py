"""The ``dehaze`` command: ``restore``, ``eval``, ``export``, ``synth``, ``serve``.

Each sub-command lives in its own module exposing ``add_parser(subparsers, name)`` and
``run(args) -> int``. This module only dispatches: it imports just the module of the
command being run (so ``dehaze serve`` does not load the training stack), and turns
:class:`~dehaze.errors.DehazeError` into one ``error: ...`` line and a non-zero exit code.

The base install has no torch; ``[serve]`` and ``[train]`` add the rest (see ``pyproject.toml``).
A command that needs a package of an extra that is not installed stops with one line naming
the extra to install, whether the package is missing when its module is imported or later.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dehaze.errors import DehazeError, run_reporting_errors

# sub-command -> (module under dehaze.cli, one-line help shown by `dehaze --help`)
COMMANDS = {
    "restore": ("restore", "dehaze photos, videos or folders of them into an output folder"),
    "eval": ("evaluate", "score methods (model, dcp, hazy) on a folder of hazy/clear pairs"),
    "export": ("export", "export a training checkpoint to ONNX with a model card"),
    "synth": ("synth", "make hazy/clear training pairs from clean photos"),
    "serve": ("serve", "start the HTTP service (POST /dehaze, web page)"),
}

# top-level import name -> the optional dependency group (pyproject.toml) that installs it
EXTRA_OF = {
    **dict.fromkeys(
        ("torch", "torchvision", "kornia", "albumentations", "onnx", "onnxscript", "tensorboard",
         "matplotlib", "scipy", "yaml"),
        "train",
    ),
    **dict.fromkeys(("fastapi", "starlette", "uvicorn", "multipart", "python_multipart", "prometheus_client"),
                    "serve"),
}


class MissingExtraError(DehazeError):
    """A command needs a package of an optional dependency group that is not installed."""


def missing_extra(exc: ImportError, command: str) -> MissingExtraError | None:
    """The one-line error for ``exc`` when it is a missing package of an extra, else None (a real bug).

    Example:
        >>> str(missing_extra(ModuleNotFoundError("No module named 'torch'", name="torch"), "export"))
        "dehaze export needs torch, which is not installed here: pip install 'ssd-dehaze[train]'"
    """
    name = getattr(exc, "name", None)  # the top-level package itself, not a part of an installed one
    if not isinstance(exc, ModuleNotFoundError) or name not in EXTRA_OF:
        return None
    return MissingExtraError(
        f"dehaze {command} needs {name}, which is not installed here: {install_hint(EXTRA_OF[name])}"
    )


def install_hint(extra: str) -> str:
    return f"pip install 'ssd-dehaze[{extra}]'"


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with the full options of the command named in ``argv`` (all of them if none).

    Raises:
        MissingExtraError: the command named in ``argv`` cannot be imported without an extra. When
            all commands are listed (``dehaze --help``), such a command only shows the extra it needs.
    """
    argv = sys.argv[1:] if argv is None else argv
    wanted = next((a for a in argv if not a.startswith("-")), None)
    parser = argparse.ArgumentParser(
        prog="dehaze",
        description="Single-image dehazing (U-Net + SSD-GAN spectral discriminator).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        if wanted is None or wanted == name or wanted not in COMMANDS:
            try:
                mod = importlib.import_module(f"dehaze.cli.{module}")
            except ImportError as exc:
                error = missing_extra(exc, name)
                if error is None:
                    raise
                if wanted == name:
                    raise error from exc
                sub.add_parser(name, help=f"{help_text} (needs {install_hint(EXTRA_OF[exc.name])})")
                continue
            mod.add_parser(sub, name)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def _run(args: argparse.Namespace) -> int:
    try:
        return args.run(args)
    except ImportError as exc:  # a package imported lazily by the command, from an extra not installed
        error = missing_extra(exc, args.command)
        if error is None:
            raise
        raise error from exc


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(argv)
    except MissingExtraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    args = parser.parse_args(argv)
    return run_reporting_errors(_run, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

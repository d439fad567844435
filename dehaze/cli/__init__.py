"""The ``dehaze`` command: ``restore``, ``eval``, ``export``, ``synth``, ``serve``.

Each sub-command lives in its own module exposing ``add_parser(subparsers, name)`` and
``run(args) -> int``. This module only dispatches: it imports just the module of the
command being run (so ``dehaze serve`` does not load the training stack), and turns
:class:`~dehaze.errors.DehazeError` into one ``error: ...`` line and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dehaze.errors import run_reporting_errors

# sub-command -> (module under dehaze.cli, one-line help shown by `dehaze --help`)
COMMANDS = {
    "restore": ("restore", "dehaze photos or folders of photos into an output folder"),
    "eval": ("evaluate", "score methods (model, dcp, hazy) on a folder of hazy/clear pairs"),
    "export": ("export", "export a training checkpoint to ONNX with a model card"),
    "synth": ("synth", "make hazy/clear training pairs from clean photos"),
    "serve": ("serve", "start the HTTP service (POST /dehaze, web page)"),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with the full options of the command named in ``argv`` (all of them if none)."""
    argv = sys.argv[1:] if argv is None else argv
    wanted = next((a for a in argv if not a.startswith("-")), None)
    parser = argparse.ArgumentParser(
        prog="dehaze",
        description="Single-image dehazing (U-Net + SSD-GAN spectral discriminator).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        if wanted is None or wanted == name or wanted not in COMMANDS:
            importlib.import_module(f"dehaze.cli.{module}").add_parser(sub, name)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    return run_reporting_errors(args.run, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

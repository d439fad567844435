"""The ``dehaze`` command: ``restore``, ``eval``, ``export``, ``synth``, ``serve``.

Each sub-command lives in its own module exposing ``add_parser(subparsers)`` and
``run(args) -> int``. This module only dispatches and turns :class:`DehazeError`
into one ``error: ...`` line and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dehaze.errors import DehazeError

# sub-command name -> module under dehaze.cli (imported lazily so `dehaze --help` is fast)
COMMANDS = {
    "restore": "restore",
    "eval": "evaluate",
    "export": "export",
    "synth": "synth",
    "serve": "serve",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dehaze",
        description="Single-image dehazing (U-Net + SSD-GAN spectral discriminator).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        importlib.import_module(f"dehaze.cli.{module}").add_parser(sub, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except DehazeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

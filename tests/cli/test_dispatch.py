import subprocess
import sys

import pytest

from dehaze.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_a_command_does_not_load_the_training_stack():
    code = ("import sys; from dehaze.cli import build_parser; build_parser(['restore', '--help']); "
            "print(sorted(m for m in ('torch', 'albumentations', 'dehaze.data') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_user_error_is_one_line(capsys, tmp_path):
    assert main(["synth", str(tmp_path / "missing"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")

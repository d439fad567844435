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


REFUSE_TRAIN = """
import sys

class Refuse:  # makes the [train] extra's packages look not installed
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"torch", "torchvision", "kornia", "albumentations", "onnx", "onnxscript",
                                      "yaml", "tensorboard", "matplotlib", "scipy"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Refuse())
from dehaze.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_without_train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", REFUSE_TRAIN, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "args, package",
    [
        (["export", "missing.pt", "-o", "out.onnx"], "torch"),  # torch imported when the command runs
        (["synth", "clean", "-o", "out"], "albumentations"),  # imported with the command's module
    ],
)
def test_command_needing_train_names_the_extra(args, package, tmp_path):
    r = run_without_train(*[str(tmp_path / a) if a in ("clean", "out") else a for a in args])
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"error: dehaze {args[0]} needs {package}, which is not installed here: pip install 'ssd-dehaze[train]'"
    ]


def test_help_without_train_lists_every_command_and_the_extra():
    r = run_without_train("--help")
    assert r.returncode == 0, r.stderr
    assert all(name in r.stdout for name in COMMANDS)
    assert "ssd-dehaze[train]" in r.stdout  # beside synth, whose module imports the training stack


def test_other_import_errors_keep_their_traceback(monkeypatch):
    def broken(args):
        raise ModuleNotFoundError("No module named 'not_an_extra'", name="not_an_extra")

    import dehaze.cli.restore as restore_cli

    monkeypatch.setattr(restore_cli, "run", broken)
    with pytest.raises(ModuleNotFoundError):
        main(["restore", "x.png", "-o", "out"])

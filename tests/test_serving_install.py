"""The serving paths work without the ``[train]`` extra (``pip install 'ssd-dehaze[serve]'``).

A subprocess refuses torch and the rest of the training stack with an import hook (a
``sys.meta_path`` finder), then imports the service, creates the app and answers a request,
runs a :class:`~dehaze.inference.Dehazer` on the shipped ONNX model, the ``dehaze restore``
command and the ``dehaze serve`` argument parser. Any of them importing a refused package fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "dehaze-default.onnx"

# the [train] extra's import names (pyproject.toml); none may be imported to serve or restore
TRAIN_ONLY = (
    "torch", "torchvision", "kornia", "albumentations", "onnx", "onnxscript",
    "matplotlib", "tensorboard", "scipy",
)

REFUSE = textwrap.dedent(
    """
    import sys

    class Refuse:
        '''A meta-path finder that makes the given top-level packages look not installed.'''

        def __init__(self, names):
            self.names = set(names)

        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in self.names:
                raise ModuleNotFoundError(f"No module named {name!r} (refused by the test)", name=name)
            return None

    sys.meta_path.insert(0, Refuse(REFUSED))
    """
)


def run_without(code: str, refused=TRAIN_ONLY, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter in which ``refused`` packages cannot be imported."""
    program = f"REFUSED = {tuple(refused)!r}\n{REFUSE}\n{textwrap.dedent(code)}"
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=180, cwd=cwd,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("DEHAZE_")}, "OMP_NUM_THREADS": "1"},
    )


def test_the_refusing_hook_really_refuses():
    r = run_without("import torch")
    assert r.returncode != 0 and "refused by the test" in r.stderr


@pytest.mark.skipif(not MODEL.is_file(), reason="models/dehaze-default.onnx is not in this checkout")
def test_serving_paths_import_no_training_package(tmp_path):
    r = run_without(
        f"""
        import io
        import time

        import numpy as np
        from PIL import Image

        # the HTTP service: import, create the app, answer /readyz and POST /dehaze
        from fastapi.testclient import TestClient
        from service.app import create_app
        from service.settings import Settings

        app = create_app(Settings(model={str(MODEL)!r}, threads=1, warmup=False))
        buf = io.BytesIO()
        Image.fromarray(np.full((40, 56, 3), 180, np.uint8)).save(buf, format="PNG")
        app.state.engine.load()  # as `dehaze serve` does before it binds
        with TestClient(app) as client:
            for _ in range(300):  # the lifespan finishes preparing in the background
                if client.get("/readyz").status_code == 200:
                    break
                time.sleep(0.1)
            assert client.get("/readyz").status_code == 200, client.get("/readyz").text
            resp = client.post("/dehaze", files={{"image": ("hazy.png", buf.getvalue(), "image/png")}})
            assert resp.status_code == 200, resp.text
            assert resp.headers["content-type"] == "image/png"

        # the library: a Dehazer on the shipped ONNX model
        from dehaze.inference import Dehazer
        out = Dehazer({str(MODEL)!r}, device="cpu", threads=1)(np.full((48, 64, 3), 0.7, np.float32))
        assert out.shape == (48, 64, 3) and np.isfinite(out).all()

        # the CLI: dehaze restore, and dehaze serve's arguments
        from dehaze.cli import build_parser, main
        Image.fromarray(np.full((40, 56, 3), 200, np.uint8)).save({str(tmp_path / "in.png")!r})
        rc = main(["restore", {str(tmp_path / "in.png")!r}, "-o", {str(tmp_path / "out")!r},
                   "--model", {str(MODEL)!r}, "--device", "cpu", "--threads", "1"])
        assert rc == 0, rc
        assert Image.open({str(tmp_path / "out" / "in.png")!r}).size == (56, 40)
        args = build_parser(["serve"]).parse_args(["serve", "--host", "127.0.0.1", "--port", "8123",
                                                   "--model", {str(MODEL)!r}])
        assert (args.command, args.port) == ("serve", 8123) and callable(args.run)

        loaded = sorted(m for m in sys.modules if m.partition(".")[0] in REFUSED)
        assert not loaded, loaded
        print("ok")
        """
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == "ok"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_serve_installs_the_serve_extra_only_and_make_test_everything():
    def plan(target: str) -> str:  # the commands make would run from scratch, without running them
        r = subprocess.run(["make", "-n", "-B", "-C", str(REPO), target], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    serve = plan("serve")
    assert "pip install --quiet -e '.[serve]'" in serve and ".[dev]" not in serve
    assert ".venv/.installed -nt pyproject.toml" in serve  # a current full install is kept, not reinstalled
    test = plan("test")
    assert "pip install --quiet -e '.[dev]'" in test and "ruff check ." in test and "pytest -q" in test

"""``dehaze serve``: one clear line without a model, the dcp-only mode, settings from the environment."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dehaze.errors import ConfigError
from service.settings import Settings


def run_serve(args: list[str], env: dict[str, str], repo) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("DEHAZE_")} | env
    return subprocess.run(
        [sys.executable, "-m", "dehaze", "serve", "--port", "0", *args],
        cwd=repo,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_model_is_one_line_and_nonzero(svc, tmp_path):
    missing = tmp_path / "nowhere" / "model.onnx"
    for args, env in [(["--model", str(missing)], {}), ([], {"DEHAZE_MODEL": str(missing)})]:
        p = run_serve(args, env, svc.REPO)
        assert p.returncode != 0
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1, p.stderr
        assert lines[0].startswith("error: ") and str(missing) in lines[0]
        assert "dehaze export" in lines[0] and "--method dcp" in lines[0]


def test_dcp_only_service_without_model(svc, tmp_path):
    s = svc.start_server(tmp_path, ["--method", "dcp"], {"DEHAZE_MODEL": str(tmp_path / "absent.onnx")})
    try:
        png = svc.encode(svc.hazy_rgb(40, 60), "PNG")
        with s.client() as c:
            info = c.get("/models").json()
            assert info["method"] == "dcp" and info["methods"] == ["dcp"] and info["model"]["name"] == "dcp"
            r = c.post("/dehaze", files={"image": ("a.png", png, "image/png")})
            assert r.status_code == 200 and r.headers["x-dehaze-method"] == "dcp"
            r = c.post("/dehaze", params={"method": "model"}, files={"image": ("a.png", png, "image/png")})
            assert r.status_code == 400 and r.json()["error"] == "method_unavailable"
    finally:
        s.stop()


def test_settings_precedence_and_validation():
    env = {
        "DEHAZE_QUEUE": "7",
        "DEHAZE_CONCURRENCY": "2",
        "DEHAZE_PROVIDERS": "CUDAExecutionProvider, CPUExecutionProvider",
        "DEHAZE_WARMUP": "0",
        "DEHAZE_MODEL": "/m/x.onnx",
    }
    s = Settings.from_env(env, concurrency=3)
    assert (s.queue, s.concurrency, s.warmup, str(s.model)) == (7, 3, False, "/m/x.onnx")
    assert s.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert Settings.from_env({}).max_upload_bytes == 32_000_000
    with pytest.raises(ConfigError, match="DEHAZE_QUEUE must be a number"):
        Settings.from_env({"DEHAZE_QUEUE": "many"})
    with pytest.raises(ConfigError, match="concurrency must be at least 1"):
        Settings.from_env({}, concurrency=0)
    with pytest.raises(ConfigError, match="method must be one of"):
        Settings(method="magic")

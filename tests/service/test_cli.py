"""``dehaze serve``: one clear line without a model or port, the dcp-only mode, settings and their help."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import fields

import pytest

import dehaze.cli.serve as serve_cli
import service.settings as settings_module
from dehaze.cli import main
from dehaze.errors import ConfigError
from dehaze.inference import DEFAULT_TILE, tiling_error
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


def test_taken_port_fails_in_one_line_before_the_model_loads(svc, tiny_model):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        t0 = time.monotonic()
        p = run_serve(["--host", "127.0.0.1", "--port", str(port), "--model", str(tiny_model)], {}, svc.REPO)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot listen on 127.0.0.1:{port}"), p.stderr
    assert "--port" in lines[0] and "loaded" not in p.stdout + p.stderr and "warm-up" not in p.stdout
    assert time.monotonic() - t0 < 30


def test_serve_help_states_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"{len(os.sched_getaffinity(0))} here" in text and "runtime's choice" not in text
    assert "default 100,000,000" in text and "dehaze.io" not in text
    assert "DEHAZE_HEADER_TIMEOUT, default 5" in text and "DEHAZE_MAX_CONNECTIONS, default 100" in text
    assert "0 (no tiling) or at least 64 (DEHAZE_TILE, default 512)" in text
    assert "ASM head" in text and "two scales and ignore the tile" in text  # the tile is for image-head models


def test_serve_tile_rule(capsys, monkeypatch):
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--tile", "10"])
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == "dehaze serve: error: argument --tile: must be 0 (no tiling) or at least 64, got 10"
    monkeypatch.setenv("DEHAZE_TILE", "32")  # the environment: one line before anything starts
    monkeypatch.setattr(serve_cli, "listen_socket", lambda *a: pytest.fail("the server was started"))
    assert main(["serve"]) == 2
    assert capsys.readouterr().err == "error: tile must be 0 (no tiling) or at least 64, got 32\n"
    assert Settings(tile=0).tile == 0 and Settings(tile=64).tile == 64
    assert Settings().tile == DEFAULT_TILE and f"{DEFAULT_TILE} (tile side" in settings_module.__doc__
    with pytest.raises(ConfigError) as exc:  # the library's rule and wording, without "the"
        Settings(tile=-1)
    assert "the " + str(exc.value) == tiling_error(-1)


def test_connection_settings_and_no_test_hook():
    s = Settings.from_env({"DEHAZE_HEADER_TIMEOUT": "2.5", "DEHAZE_MAX_CONNECTIONS": "20"})
    assert (s.header_timeout, s.max_connections) == (2.5, 20)
    assert (Settings().header_timeout, Settings().max_connections) == (5.0, 100)
    with pytest.raises(ConfigError, match="header_timeout must be positive"):
        Settings(header_timeout=0)
    with pytest.raises(ConfigError, match="max_connections must be at least 1"):
        Settings(max_connections=0)
    assert "test_delay" not in {f.name for f in fields(Settings)}  # no test hook in production settings


def test_every_setting_is_a_serve_option():
    """`dehaze serve` passes each Settings field by name: each must be an option (or the run ignores it)."""
    import argparse

    parser = argparse.ArgumentParser()
    serve_cli.add_parser(parser.add_subparsers(), "serve")
    args = parser.parse_args(["serve", "--haze-cache-mb", "0", "--haze-cache-ttl", "30"])
    assert {f.name for f in fields(Settings)} <= set(vars(args))
    assert (args.haze_cache_mb, args.haze_cache_ttl) == (0, 30.0)

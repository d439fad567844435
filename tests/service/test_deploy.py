"""Dockerfile and docker-compose.yml, checked by parsing (Docker cannot run on the test machines)."""

from __future__ import annotations

import json
import re
from dataclasses import fields

import pytest
import yaml

from service.settings import Settings


@pytest.fixture(scope="module")
def compose(svc) -> dict:
    return yaml.safe_load((svc.REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile(svc) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (svc.REPO / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


SERVE = ["dehaze", "serve", "--host", "0.0.0.0", "--port", "8000"]


def test_compose_services_cpu_and_gpu(compose, svc):
    services = compose["services"]
    assert set(services) == {"dehaze-cpu", "dehaze-gpu", "ray-head", "ray-worker"}  # Ray's: test_deploy_cluster.py
    setting_names = {f"DEHAZE_{f.name.upper()}" for f in fields(Settings)}
    for name, profile in [("dehaze-cpu", "cpu"), ("dehaze-gpu", "gpu")]:
        s = services[name]
        assert s["profiles"] == [profile]
        assert s["command"] == SERVE
        assert "8000:8000" in s["ports"]
        assert "./models:/models:ro" in s["volumes"]
        assert (svc.REPO / s["build"]["context"] / s["build"]["dockerfile"]).is_file()
        test = " ".join(s["healthcheck"]["test"])
        assert s["healthcheck"]["test"][0] == "CMD" and "127.0.0.1:8000/readyz" in test
        env = s["environment"]
        assert env["DEHAZE_MODEL"] == "/models/dehaze-default.onnx"
        assert set(env) <= setting_names, set(env) - setting_names  # every variable is a real setting
        Settings.from_env({k: str(v) for k, v in env.items()})  # and every value parses
    assert services["dehaze-cpu"]["environment"]["DEHAZE_DEVICE"] == "cpu"
    assert "deploy" not in services["dehaze-cpu"]


def test_compose_gpu_reserves_an_nvidia_gpu(compose):
    gpu = compose["services"]["dehaze-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        d["driver"] == "nvidia" and "gpu" in d["capabilities"] and d.get("count", 1) >= 1 for d in devices
    )
    assert gpu["environment"]["DEHAZE_DEVICE"] == "cuda"
    assert gpu["environment"]["DEHAZE_PROVIDERS"].split(",")[0] == "CUDAExecutionProvider"
    assert "cudnn" in gpu["build"]["args"]["BASE_IMAGE"]  # CUDA + cuDNN libraries for onnxruntime-gpu


def test_dockerfile(dockerfile, compose, svc):
    kinds = [k for k, _ in dockerfile]
    assert kinds.count("FROM") == 2 and all("${BASE_IMAGE}" in a for k, a in dockerfile if k == "FROM")
    assert ("ARG", "BASE_IMAGE=python:3.11-slim-bookworm") in dockerfile
    assert ("EXPOSE", "8000") in dockerfile
    user = [a for k, a in dockerfile if k == "USER"]
    assert user and user[-1] not in ("root", "0")
    cmd = json.loads(next(a for k, a in dockerfile if k == "CMD"))
    assert cmd == SERVE == compose["services"]["dehaze-cpu"]["command"]
    health = next(a for k, a in dockerfile if k == "HEALTHCHECK")
    assert "/readyz" in health
    for _, args in (x for x in dockerfile if x[0] == "COPY" and "--from" not in x[1]):
        for src in args.split()[:-1]:
            assert (svc.REPO / src).exists(), f"COPY source {src} does not exist"
    ignored = (svc.REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", "models"} <= set(ignored)


def pip_installs(dockerfile) -> list[list[str]]:
    """The arguments of every ``pip install`` in the RUN instructions (options dropped)."""
    runs = " && ".join(a for k, a in dockerfile if k == "RUN")
    out = []
    for cmd in re.split(r"&&|;", runs):
        words = cmd.split()
        if words[:2] == ["pip", "install"] or words[1:3] == ["pip", "install"]:
            out.append([w.strip("'\"") for w in words[words.index("install") + 1 :] if not w.startswith("-")])
    return out


def test_image_is_the_serve_only_install(dockerfile, svc):
    """The image installs the project with the [serve] extra only: no torch, no [train] or [dev]."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((svc.REPO / "pyproject.toml").read_text())["project"]
    installs = pip_installs(dockerfile)
    project_installs = [a for args in installs for a in args if a.startswith(".")]
    assert project_installs == [".[serve]"], installs
    other = [a for args in installs for a in args if not a.startswith(".")]
    assert all(a.startswith("pip") for a in other), other  # only pip itself besides the project
    run = " ".join(a for k, a in dockerfile if k == "RUN")
    assert "find_spec('torch') is None" in run  # the build fails if torch got into the image anyway
    assert "TORCH_INDEX" not in " ".join(a for _, a in dockerfile)
    # the extra it installs has no training package, and the base install none either
    names = [re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0].lower() for d in
             project["dependencies"] + project["optional-dependencies"]["serve"]]
    assert not {"torch", "torchvision", "kornia", "albumentations", "onnx", "onnxscript"} & set(names), names

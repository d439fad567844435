"""The Ray deployment files, checked by parsing (neither Docker nor Kubernetes runs on the test machines):
the compose profile `cluster`, deploy/Dockerfile.cluster and the KubeRay RayService and RayJob."""

from __future__ import annotations

import re
import shlex
from dataclasses import fields

import pytest
import yaml

from dehaze.cli import build_parser
from service.settings import Settings

SETTING_VARS = {f"DEHAZE_{f.name.upper()}" for f in fields(Settings)}
SETTING_NAMES = {f.name for f in fields(Settings)}


@pytest.fixture(scope="module")
def compose(svc) -> dict:
    return yaml.safe_load((svc.REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def kuberay(svc) -> dict[str, dict]:
    return {p.stem: yaml.safe_load(p.read_text()) for p in (svc.REPO / "deploy" / "kuberay").glob("*.yaml")}


def dehaze_args(command: str) -> list[str]:
    """The arguments of the ``dehaze`` command in a shell command line (``... && exec dehaze serve ...``)."""
    words = shlex.split(command)
    return words[words.index("dehaze") + 1 :]


def parse(argv: list[str]):
    """The command line parsed by the real parser (an unknown option fails the test)."""
    return build_parser(argv).parse_args(argv)


def check_env(env: dict[str, str]) -> None:
    dehaze = {k: str(v) for k, v in env.items() if k.startswith("DEHAZE_")}
    assert set(dehaze) <= SETTING_VARS, set(dehaze) - SETTING_VARS  # every variable is a real setting
    Settings.from_env(dehaze)  # and every value parses
    assert env["DEHAZE_MODEL"] == "/models/dehaze-default.onnx"
    assert env["RAY_AUTH_MODE"] == "token"  # Ray's token authentication between the nodes


def test_compose_cluster_profile_head_and_worker(compose, svc):
    head, worker = compose["services"]["ray-head"], compose["services"]["ray-worker"]
    for s in (head, worker):
        assert s["profiles"] == ["cluster"]
        assert s["image"] == "ssd-dehaze:cluster"
        assert (svc.REPO / s["build"]["context"] / s["build"]["dockerfile"]).is_file()
        assert "./models:/models:ro" in s["volumes"] and "./data:/data" in s["volumes"]
        check_env(s["environment"])
        assert "RAY_AUTH_TOKEN" in s["environment"]
    head_cmd = head["command"][-1]
    assert head["command"][:2] == ["bash", "-c"] and head_cmd.startswith("ray start --head --port=6379")
    args = parse(dehaze_args(head_cmd))
    assert (args.command, args.engine, args.ray_address, args.host, args.port) == ("serve", "ray", "auto",
                                                                                   "0.0.0.0", 8000)
    assert args.min_replicas >= 1 and args.max_replicas >= args.min_replicas
    assert "8000:8000" in head["ports"] and "127.0.0.1:8265:8265" in head["ports"]  # dashboard: local only
    assert "127.0.0.1:8000/readyz" in " ".join(head["healthcheck"]["test"])
    assert worker["command"][-1] == "ray start --address=ray-head:6379 --block"
    assert worker["depends_on"] == ["ray-head"] and "ports" not in worker
    # the batch command the file's comment gives parses too
    text = (svc.REPO / "docker-compose.yml").read_text()
    restore = next(line for line in text.splitlines() if "dehaze restore" in line and "--engine ray" in line)
    args = parse(dehaze_args(restore.split("exec ray-head", 1)[1]))
    assert (args.command, args.engine, args.ray_address) == ("restore", "ray", "auto")


def test_cluster_dockerfile(svc, kuberay):
    text = re.sub(r"\\\n", " ", (svc.REPO / "deploy" / "Dockerfile.cluster").read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    ray_image = next(ln.split("=", 1)[1] for ln in lines if ln.startswith("ARG RAY_IMAGE="))
    version = re.fullmatch(r"rayproject/ray:([\d.]+)-py311-cpu", ray_image).group(1)
    for manifest in kuberay.values():  # the manifests name the image's Ray version
        cluster = manifest["spec"].get("rayClusterConfig") or manifest["spec"]["rayClusterSpec"]
        assert cluster["rayVersion"] == version
    assert "FROM ${RAY_IMAGE}" in lines
    for ln in (ln for ln in lines if ln.startswith("COPY")):
        for src in ln.split()[1:-1]:
            if not src.startswith("--"):
                assert (svc.REPO / src).exists(), f"COPY source {src} does not exist"
    run = " ".join(ln for ln in lines if ln.startswith("RUN"))
    assert 'pip install ".[serve,cluster]"' in run and "find_spec('torch') is None" in run


def test_cluster_extra_is_in_dev_not_in_serve(svc):
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((svc.REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("ray[data,serve]") for d in extras["cluster"])
    assert "cluster" in re.search(r"\[(.*)\]", extras["dev"][0]).group(1).split(",")
    assert not any(d.startswith("ray") for d in extras["serve"])


def containers(cluster: dict) -> list[dict]:
    pods = [cluster["headGroupSpec"]] + cluster["workerGroupSpecs"]
    return [c for pod in pods for c in pod["template"]["spec"]["containers"]]


def check_cluster(cluster: dict, data: bool) -> None:
    for pod in [cluster["headGroupSpec"]] + cluster["workerGroupSpecs"]:
        spec = pod["template"]["spec"]
        claims = {v["name"]: v["persistentVolumeClaim"] for v in spec["volumes"]}
        assert claims["models"]["readOnly"] is True and ("data" in claims) == data
        for c in spec["containers"]:
            assert c["image"] == "ssd-dehaze:cluster"
            env = {e["name"]: e.get("value") for e in c["env"]}
            token = next(e for e in c["env"] if e["name"] == "RAY_AUTH_TOKEN")
            assert token["valueFrom"]["secretKeyRef"] == {"name": "ray-auth-token", "key": "token"}
            check_env({k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN"})
            mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
            assert mounts["/models"]["readOnly"] is True and ("/data" in mounts) == data
            assert c["resources"]["requests"] == c["resources"]["limits"]
    for group in cluster["workerGroupSpecs"]:
        assert 1 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_kuberay_rayservice(kuberay):
    m = kuberay["rayservice"]
    assert (m["apiVersion"], m["kind"]) == ("ray.io/v1", "RayService")
    apps = yaml.safe_load(m["spec"]["serveConfigV2"])["applications"]
    assert len(apps) == 1 and apps[0]["route_prefix"] == "/"
    module, _, attr = apps[0]["import_path"].partition(":")
    assert (module, attr) == ("service.ray_serve", "app_builder")
    args = dict(apps[0]["args"])
    counts = {k: args.pop(k) for k in ("replicas", "min_replicas", "max_replicas") if k in args}
    assert set(args) <= SETTING_NAMES, set(args) - SETTING_NAMES
    settings = Settings.from_env({}, **args)
    pytest.importorskip("ray")
    from service.ray_serve import app_builder, deployment_options

    assert app_builder({**apps[0]["args"], "method": "dcp"}) is not None  # what `serve run` / KubeRay call
    scaling = deployment_options(settings, **counts)["autoscaling_config"]
    cluster = m["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert scaling["max_replicas"] <= sum(g["maxReplicas"] for g in cluster["workerGroupSpecs"]) * 2
    ports = {p["name"]: p["containerPort"] for p in cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]}
    assert ports["serve"] == 8000 and ports["gcs-server"] == 6379
    check_cluster(cluster, data=False)


def test_kuberay_rayjob(kuberay):
    m = kuberay["rayjob"]
    assert (m["apiVersion"], m["kind"]) == ("ray.io/v1", "RayJob")
    args = parse(shlex.split(m["spec"]["entrypoint"])[1:])
    assert (args.command, args.engine, args.ray_address, args.recursive) == ("restore", "ray", "auto", True)
    assert args.inputs == ["/data/in"] and args.output == "/data/out"
    assert m["spec"]["shutdownAfterJobFinishes"] is True
    check_cluster(m["spec"]["rayClusterSpec"], data=True)

"""The service on Ray Serve: the same FastAPI app (:func:`service.app.create_app`) in every replica.

``dehaze serve --engine ray --replicas N`` (or ``--min-replicas A --max-replicas B`` to scale on
ongoing requests) deploys it from the command line; ``serve run`` takes the application builder::

    serve run service.ray_serve:app_builder replicas=2                 # settings from DEHAZE_*
    serve run service.ray_serve:app_builder min_replicas=1 max_replicas=4 model=/models/m.onnx

Every replica is a whole single-process service (its own model, :class:`~service.limits.Gate`,
metrics and haze cache), so the endpoints, limits, errors and metrics are the same. Ray Serve's
proxy sends a replica at most ``concurrency + queue + 1`` requests at once (the rest wait in the
proxy), so a replica's own queue still answers 503 with ``Retry-After`` when it overflows; with
autoscaling, Ray adds replicas when a replica has more than ``concurrency`` requests in progress.
What differs: ``/metrics`` and the haze cache are per replica (a ``GET /dehaze/{id}`` re-render
that reaches another replica answers 404 and the photo is posted again, as after expiry), and
connections are accepted by Ray's HTTP proxy, so ``--header-timeout`` and ``--max-connections``
(uvicorn settings of the single-process server) do not apply.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ray import serve

from dehaze.errors import ConfigError
from service.app import create_app
from service.settings import Settings


@serve.deployment(name="dehaze")
@serve.ingress()
class DehazeService:
    """One replica: the service's FastAPI app, built (and its model loaded) in the replica's process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.service_app = None

    def __serve_build_asgi_app__(self):
        self.service_app = create_app(self.settings)  # its lifespan loads and warms up the model
        return self.service_app

    def check_health(self) -> None:
        """Ray replaces a replica whose model failed to load (``/readyz`` says why in the meantime)."""
        engine = self.service_app.state.engine if self.service_app is not None else None
        if engine is not None and engine.error:
            raise RuntimeError(f"model not ready: {engine.error}")


def for_replicas(settings: Settings) -> Settings:
    """``settings`` as every replica must see them: the model resolved here to an absolute path, and one
    inference thread unless ``threads`` says otherwise (a replica is given that many CPUs)."""
    from service.engine import Engine
    from service.metrics import Metrics

    model = Engine(settings, Metrics())._model_path().resolve() if settings.method == "model" else settings.model
    return dataclasses.replace(settings, model=model, threads=settings.threads or 1)


def deployment_options(
    settings: Settings, replicas: int = 1, min_replicas: int | None = None, max_replicas: int | None = None
) -> dict[str, Any]:
    """Ray Serve options: ``replicas`` fixed replicas, or between ``min_replicas`` and ``max_replicas``
    scaled on ongoing requests (target: ``settings.concurrency`` per replica).

    Example:
        >>> deployment_options(Settings(), min_replicas=1, max_replicas=4)["autoscaling_config"]["max_replicas"]
        4
    """
    if replicas < 1:
        raise ConfigError(f"replicas must be at least 1, got {replicas}")
    options: dict[str, Any] = {
        "max_ongoing_requests": settings.concurrency + settings.queue + 1,  # overflow: the replica's own 503
        "ray_actor_options": {
            "num_cpus": settings.threads or 1,
            "num_gpus": 1 if settings.device.startswith("cuda") else 0,
        },
    }
    if max_replicas is None and min_replicas is None:
        options["num_replicas"] = replicas
        return options
    low = 1 if min_replicas is None else min_replicas
    high = max(low, replicas) if max_replicas is None else max_replicas
    if not 0 <= low <= high or high < 1:
        raise ConfigError(f"the replicas must satisfy 0 <= min <= max and max >= 1, got min {low} and max {high}")
    options["autoscaling_config"] = {
        "min_replicas": low,
        "initial_replicas": max(low, 1),
        "max_replicas": high,
        "target_ongoing_requests": settings.concurrency,
    }
    return options


def deployment(settings: Settings, replicas: int = 1, min_replicas: int | None = None,
               max_replicas: int | None = None):
    """The application to ``serve.run``: :class:`DehazeService` with :func:`deployment_options`."""
    options = deployment_options(settings, replicas, min_replicas, max_replicas)
    return DehazeService.options(**options).bind(for_replicas(settings))


def app_builder(args: dict[str, str]):
    """For ``serve run service.ray_serve:app_builder KEY=VALUE ...``: ``replicas``, ``min_replicas``,
    ``max_replicas``, and any service setting by its name (``model=``, ``queue=``, ...; the rest from
    ``DEHAZE_*`` as for ``dehaze serve``)."""
    args = dict(args)
    counts = {k: int(args.pop(k)) for k in ("replicas", "min_replicas", "max_replicas") if k in args}
    settings = Settings.from_env(**{k: _setting(k, v) for k, v in args.items()})
    return deployment(settings, **counts)


def _setting(name: str, raw: str) -> Any:
    from service.settings import _parse

    return _parse(name, str(raw)) if name in {f.name for f in dataclasses.fields(Settings)} else raw

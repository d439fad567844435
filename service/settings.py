"""Service settings: one dataclass, filled from ``DEHAZE_*`` environment variables and CLI options.

Precedence: an explicit option (``dehaze serve --queue 2``) beats the environment
(``DEHAZE_QUEUE=2``), which beats the default below.

=========================  ============================  =======================================
option                     environment                   default
=========================  ============================  =======================================
``--model PATH``           ``DEHAZE_MODEL``              the shipped model (``default_model_path()``)
``--method``               ``DEHAZE_METHOD``             ``model`` (``dcp``: dark channel prior, no model)
``--device``               ``DEHAZE_DEVICE``             ``auto`` (GPU when usable), cpu, cuda, cuda:N
``--providers``            ``DEHAZE_PROVIDERS``          automatic (comma list of ONNX Runtime providers)
``--threads``              ``DEHAZE_THREADS``            every core the process may use (intra-op threads)
``--tile``                 ``DEHAZE_TILE``               512 (tile side, image-head models; 0 = no tiling, else >= 64)
``--max-upload-bytes``     ``DEHAZE_MAX_UPLOAD_BYTES``   32000000 (32 MB request body)
``--max-pixels``           ``DEHAZE_MAX_PIXELS``         100000000 (``dehaze.io.DEFAULT_MAX_PIXELS``)
``--concurrency``          ``DEHAZE_CONCURRENCY``        1 (inferences running at once)
``--queue``                ``DEHAZE_QUEUE``              4 (requests waiting; beyond that: 503)
``--read-timeout``         ``DEHAZE_READ_TIMEOUT``       30 (seconds to receive an upload; then 408)
``--header-timeout``       ``DEHAZE_HEADER_TIMEOUT``     5 (seconds to send the request headers; then closed)
``--max-connections``      ``DEHAZE_MAX_CONNECTIONS``    100 (open connections; more are answered 503)
``--haze-cache-mb``        ``DEHAZE_HAZE_CACHE_MB``      256 (recent uploads and their haze, for re-renders; 0 = off)
``--haze-cache-ttl``       ``DEHAZE_HAZE_CACHE_TTL``     600 (seconds a photo stays re-renderable)
``--no-warmup``            ``DEHAZE_WARMUP=0``           warm-up inference before ``/readyz`` is ready
``--host`` / ``--port``    ``DEHAZE_HOST/PORT``          127.0.0.1 / 8000
``--log-level``            ``DEHAZE_LOG_LEVEL``          info
=========================  ============================  =======================================
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from dehaze.errors import ConfigError
from dehaze.inference import DEFAULT_TILE, tiling_error

METHODS = ("model", "dcp")
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_MAX_UPLOAD_BYTES = 32_000_000


def _default_max_pixels() -> int | None:
    from dehaze.io import DEFAULT_MAX_PIXELS

    return DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class Settings:
    """Everything the HTTP service can be configured with (see the module docstring for the table).

    Example:
        >>> s = Settings.from_env({"DEHAZE_QUEUE": "2"}, concurrency=3, method="dcp")
        >>> s.queue, s.concurrency, s.method
        (2, 3, 'dcp')
    """

    model: Path | None = None  # None: the shipped default model (resolved when the service loads)
    method: str = "model"
    device: str = "auto"
    providers: tuple[str, ...] | None = None
    threads: int | None = None
    tile: int = DEFAULT_TILE  # image-head models only; ASM-head models run in two scales
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int | None = None  # None: dehaze.io's default limit
    concurrency: int = 1
    queue: int = 4
    read_timeout: float = 30.0
    header_timeout: float = 5.0
    max_connections: int = 100
    haze_cache_mb: int = 256
    haze_cache_ttl: float = 600.0
    warmup: bool = True
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"

    def __post_init__(self) -> None:
        for name in ("model", "providers"):  # accept a str path / comma list when built directly
            object.__setattr__(self, name, _coerce(name, getattr(self, name)))
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.device not in DEVICES and not re.fullmatch(r"cuda:\d+", self.device):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        for name, low in (
            ("concurrency", 1),
            ("queue", 0),
            ("max_upload_bytes", 1),
            ("max_connections", 1),
            ("haze_cache_mb", 0),
            ("port", 0),
        ):
            if getattr(self, name) < low:
                raise ConfigError(f"{name} must be at least {low}, got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be at least 1, got {self.threads}")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise ConfigError(f"max_pixels must be at least 1, got {self.max_pixels}")
        for name in ("read_timeout", "header_timeout", "haze_cache_ttl"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        problem = tiling_error(self.tile)
        if problem:
            raise ConfigError(problem.removeprefix("the "))
        if self.max_pixels is None:
            object.__setattr__(self, "max_pixels", _default_max_pixels())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **options: Any) -> Settings:
        """Build settings from ``DEHAZE_*`` variables, then apply the options that are not None.

        Args:
            env: the environment to read (``os.environ`` when None).
            options: field values from the command line; None means "not given".
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"DEHAZE_{f.name.upper()}")
            if raw is not None and raw.strip() != "":
                values[f.name] = _parse(f.name, raw.strip())
        unknown = set(options) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown service option(s): {', '.join(sorted(unknown))}")
        values.update({k: _coerce(k, v) for k, v in options.items() if v is not None})
        return cls(**values)

    def public(self) -> dict[str, Any]:
        """The settings as JSON-friendly values (for ``/models`` and logs)."""
        d = asdict(self)
        d["model"] = str(self.model) if self.model else None
        d["providers"] = list(self.providers) if self.providers else None
        return d


_INTS = {
    "threads",
    "tile",
    "max_upload_bytes",
    "max_pixels",
    "concurrency",
    "queue",
    "max_connections",
    "haze_cache_mb",
    "port",
}
_FLOATS = {"read_timeout", "header_timeout", "haze_cache_ttl"}


def _parse(name: str, raw: str) -> Any:
    """Turn the text of ``DEHAZE_<NAME>`` into the field's type, with a plain error."""
    try:
        if name in _INTS:
            return int(raw.replace("_", ""))
        if name in _FLOATS:
            return float(raw)
    except ValueError:
        raise ConfigError(f"DEHAZE_{name.upper()} must be a number, got {raw!r}") from None
    if name == "warmup":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"DEHAZE_WARMUP must be 1 or 0, got {raw!r}")
    return _coerce(name, raw)


def _coerce(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "model":
        return Path(value).expanduser()
    if name == "providers" and isinstance(value, str):
        names = tuple(p.strip() for p in value.split(",") if p.strip())
        return names or None
    if name == "providers":
        return tuple(value) or None
    return value

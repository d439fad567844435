"""Experiment configs: one YAML file per experiment, overridable from the command line.

A config may name a parent with ``_base_: other.yaml`` (relative to its own folder); every
config is applied on top of the trainer's defaults (a YAML file inside the package, read by
:func:`read_defaults`) and can only change keys that exist there, so a typo is an error
(one, naming every unknown key) instead of a silently ignored setting. ``--set a.b=value``
overrides follow the same rule; values are parsed as YAML (``3``, ``1e-4``, ``true``, ``[1, 2]``).

Settings that were removed (``retired``: key -> the value that meant "off") are still accepted
from files at that value and dropped, so the ``config.yaml`` of older runs keep loading; any
other value is an error naming the removed setting.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from dehaze.errors import ConfigError

BASE_KEY = "_base_"


def _flat_keys(d: Mapping, prefix: str = "") -> list[str]:
    keys = []
    for k, v in d.items():
        full = f"{prefix}{k}"
        keys.append(full)
        if isinstance(v, Mapping):
            keys += _flat_keys(v, full + ".")
    return keys


def _unknown(keys: list[str], known: Mapping) -> ConfigError:
    """One error naming every unknown key, each with its closest known keys."""
    options = _flat_keys(known)
    parts = []
    for key in keys:
        close = difflib.get_close_matches(key, options, n=3)
        parts.append(f"'{key}'" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    return ConfigError(f"unknown config key{'s' if len(keys) > 1 else ''} {', '.join(parts)}")


def merge(base: Mapping, update: Mapping, strict: bool = True) -> dict:
    """Deep-merge ``update`` into a copy of ``base``; with ``strict``, keys outside ``base`` raise one
    ConfigError naming all of them.

    Example:
        >>> merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 5}})
        {'a': {'b': 5, 'c': 2}}
    """
    unknown: list[str] = []
    out = _merge(base, update, "", strict, unknown)
    if unknown:
        raise _unknown(unknown, base)
    return out


def _merge(base: Mapping, update: Mapping, prefix: str, strict: bool, unknown: list[str]) -> dict:
    out = copy.deepcopy(dict(base))
    for k, v in update.items():
        full = f"{prefix}{k}"
        if strict and k not in out:
            unknown.append(full)
        elif isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(out[k], v, full + ".", strict, unknown)
        else:
            out[k] = copy.deepcopy(v)
    return out


def drop_retired(cfg: Mapping, retired: Mapping[str, Any]) -> dict:
    """``cfg`` without the removed settings in ``retired`` (dotted key -> its "off" value); a removed
    setting at any other value is a ConfigError.

    Example:
        >>> drop_retired({"loss": {"l1": 1, "freq_l1": 0.0}}, {"loss.freq_l1": 0.0})
        {'loss': {'l1': 1}}
    """
    out = copy.deepcopy(dict(cfg))
    for key, off in retired.items():
        *parents, last = key.split(".")
        path = [out]
        for p in parents:
            path.append(path[-1].get(p) if isinstance(path[-1], dict) else None)
        node = path[-1]
        if not isinstance(node, dict) or last not in node:
            continue
        if node[last] != off:
            raise ConfigError(f"{key} was removed (docs/ablation.md, 'Removed experiments'): "
                              f"delete it from the config (only {off!r}, its old default, is still accepted)")
        del node[last]
        for parent, name, child in reversed(list(zip(path, parents, path[1:]))):
            if not child:  # a section left empty by the removal goes too
                del parent[name]
    return out


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings, not {type(data).__name__}")
    return data


def read_config_file(path: str | Path) -> dict:
    """A YAML config with its ``_base_`` chain resolved (checked against defaults by :func:`load_config`)."""
    path = Path(path)
    data = _read_yaml(path)
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    return merge(read_config_file(path.parent / base), data, strict=False)


def read_defaults(package: str, name: str = "defaults.yaml") -> dict:
    """A trainer's defaults: the YAML file ``name`` shipped inside ``package`` (package data)."""
    from importlib.resources import files

    try:
        data = yaml.safe_load(files(package).joinpath(name).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the defaults {package}/{name}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"the defaults {package}/{name} must hold a mapping of settings")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=3"`` -> ``(["a", "b"], 3)``."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value (for example train.steps=1000)")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key.split("."), parsed


def apply_overrides(cfg: Mapping, overrides: Iterable[str]) -> dict:
    """Apply ``key=value`` overrides; every key must exist (one ConfigError names all that do not)."""
    out = copy.deepcopy(dict(cfg))
    unknown = []
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, p in enumerate(parts):
            if not isinstance(node, dict) or p not in node:
                unknown.append(".".join(parts[: i + 1]))
                break
            if i == len(parts) - 1:
                node[p] = value
            else:
                node = node[p]
    if unknown:
        raise _unknown(unknown, out)
    return out


def load_config(path: str | Path | None, overrides: Iterable[str] = (), defaults: Mapping | None = None,
                retired: Mapping[str, Any] | None = None) -> dict:
    """Load an experiment config.

    Args:
        path: YAML file (``None``: the defaults alone).
        overrides: ``key=value`` strings, applied last.
        defaults: the trainer's full set of settings; keys outside it are an error.
        retired: removed settings (dotted key -> "off" value) that a file may still hold at that value.

    Returns:
        The merged config as nested dicts.
    """
    cfg = dict(defaults or {})
    if path is not None:
        data = drop_retired(read_config_file(path), retired or {})
        cfg = merge(cfg, data, strict=defaults is not None)
    cfg = apply_overrides(cfg, overrides)
    return coerce_numbers(cfg, defaults) if defaults is not None else cfg


def coerce_numbers(cfg: Mapping, defaults: Mapping, prefix: str = "") -> dict:
    """Settings whose default is a number must be numbers. YAML 1.1 reads ``1e-4`` (no dot) as a
    string; such strings become floats, anything else is a ConfigError naming the setting.

    Example:
        >>> coerce_numbers({"train": {"lr": "1e-4"}}, {"train": {"lr": 2.0e-4}})
        {'train': {'lr': 0.0001}}
    """
    out = dict(cfg)
    for k, d in defaults.items():
        if k not in out:
            continue
        v, full = out[k], f"{prefix}{k}"
        if isinstance(d, Mapping) and isinstance(v, Mapping):
            out[k] = coerce_numbers(v, d, full + ".")
        elif isinstance(d, int | float) and not isinstance(d, bool):
            if isinstance(v, bool) or not isinstance(v, int | float | str):
                raise ConfigError(f"{full} must be a number, got {v!r}")
            if isinstance(v, str):
                try:
                    v = float(v)
                except ValueError:
                    raise ConfigError(f"{full} must be a number, got {v!r}") from None
                out[k] = int(v) if isinstance(d, int) and v.is_integer() else v
    return out


def save_config(cfg: Mapping, path: str | Path) -> None:
    """Write ``cfg`` as YAML (atomically)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(dict(cfg), sort_keys=False))
    tmp.replace(path)

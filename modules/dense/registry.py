"""Dense architectures by name, so job configs choose them with a string."""

from __future__ import annotations

from typing import Any, Callable

from modules.dense.base import DenseArch
from modules.spec import DatasetSpec
from modules.strict import ConfigError, from_dict

ARCHS: dict[str, type[DenseArch]] = {}


def register(name: str) -> Callable[[type[DenseArch]], type[DenseArch]]:
    """Class decorator: makes an architecture available as `name` in job configs."""

    def wrap(cls: type[DenseArch]) -> type[DenseArch]:
        if name in ARCHS:
            raise ValueError(f"dense architecture {name!r} registered twice")
        ARCHS[name] = cls
        cls.arch_name = name
        return cls

    return wrap


def arch_class(name: str) -> type[DenseArch]:
    if name not in ARCHS:
        raise ConfigError(f"unknown model {name!r}; available: {sorted(ARCHS)}")
    return ARCHS[name]


def parse_arch_config(name: str, params: dict[str, Any] | None) -> object:
    """The architecture's frozen Config from a plain dict; unknown keys are rejected."""
    return from_dict(arch_class(name).Config, dict(params or {}), where=f"model.{name}")


def build_arch(name: str, spec: DatasetSpec, params: dict[str, Any] | None = None) -> DenseArch:
    """Builds the dense architecture `name` for `spec` from its params dict."""
    return arch_class(name)(spec, parse_arch_config(name, params))

"""Methods by name: ``@register`` a class, ``get_method(name)`` to find it."""

from __future__ import annotations

from transferlab.errors import ConfigError, MethodRequirementError
from transferlab.methods.base import AdaptationData, Method

_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make ``cls`` selectable by ``cls.name``."""
    name = getattr(cls, "name", None)
    if not name:
        raise ValueError(f"{cls.__name__} has no 'name' to register under")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"two methods are registered as '{name}'")
    _REGISTRY[name] = cls
    return cls


def get_method(name: str) -> type[Method]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown method '{name}'; known methods: {', '.join(sorted(_REGISTRY))}") from None


def list_methods() -> list[type[Method]]:
    """Every registered method class, sorted by name."""
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


def applicable_methods(data: AdaptationData, model=None) -> list[str]:
    """The names of every registered method whose data needs ``data`` meets (and, given the source
    ``model``, that can work with it), sorted; composite methods (the ensemble) are not candidates."""
    names = []
    for cls in list_methods():
        if cls.composite:
            continue
        try:
            cls.check_data(data)
            if model is not None:
                cls.check_model(model)
        except MethodRequirementError:
            continue
        names.append(cls.name)
    return names

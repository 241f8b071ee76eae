"""The suite's one typed-config idiom, without ROS: dataclass fields that carry their allowed range.

A node's config is a `@dataclass` whose fields are made with `param(default, lo=.., hi=.., ...)`.
`build_config(cls, values)` fills it from a mapping (missing names keep their default), checks every
field and the class's optional `check()` for relations between fields, and raises ConfigError
naming the parameter and what it allows. `vla_monitoring.ros.params.load_config` reads the `~`
parameters, logs one `logfatal` and exits with CONFIG_EXIT_CODE on a ConfigError.

A field whose default is itself such a dataclass is a nested mapping of parameters (`~world/room_size_m`):
it is built and checked the same way, and its errors name the full path.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from typing import Any

CONFIG_EXIT_CODE = 2


class ConfigError(ValueError):
    """A parameter outside what it allows; the message names it as `~name`."""


_SPEC = "vla_param"


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    lo: float | None = None         # numbers (and each item of a number list): the closed range
    hi: float | None = None
    choices: tuple[Any, ...] = ()   # the allowed values (each item's, for a list)
    items: type | None = None       # lists: float, int or str
    length: int | None = None       # lists: the exact number of items
    min_length: int = 0             # lists: the fewest items
    nonempty: bool = False          # strings (and str list items): may not be empty
    help: str = ""                  # one line: what the parameter does, with its unit
    max_length: int | None = None   # lists: the most items


def param(default: Any, *, lo: float | None = None, hi: float | None = None, choices: tuple = (),
          items: type | None = None, length: int | None = None, min_length: int = 0, nonempty: bool = False,
          help: str = "", max_length: int | None = None) -> Any:
    """A dataclass field with a default and the range it allows (lists get a fresh copy per instance,
    a nested config dataclass a deep copy)."""
    spec = ParamSpec(lo, hi, tuple(choices), items, length, min_length, nonempty, help, max_length)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={_SPEC: spec})
    if dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata={_SPEC: spec})
    return dataclasses.field(default=default, metadata={_SPEC: spec})


def spec_of(f: dataclasses.Field) -> ParamSpec:
    return f.metadata.get(_SPEC, ParamSpec())


def _is_nested(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def defaults(cls: type) -> dict[str, Any]:
    """Every parameter's default, by name: what config/*.yaml must mirror (a nested config as a dict)."""
    base = cls()
    return {f.name: defaults(type(v)) if _is_nested(v := getattr(base, f.name)) else v
            for f in dataclasses.fields(cls)}


def _range_text(spec: ParamSpec) -> str:
    if spec.lo is not None and spec.hi is not None:
        return f"in [{spec.lo:g}, {spec.hi:g}]"
    if spec.lo is not None:
        return f">= {spec.lo:g}"
    if spec.hi is not None:
        return f"<= {spec.hi:g}"
    return "finite"


def _number(name: str, value: Any, kind: type, spec: ParamSpec, what: str = "") -> float | int:
    label = f"~{name}{what}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{label} must be {'an integer' if kind is int else 'a number'} {_range_text(spec)}, "
                          f"got {value!r}")
    if kind is int and not isinstance(value, int):
        if not (math.isfinite(value) and value == int(value)):
            raise ConfigError(f"{label} must be an integer {_range_text(spec)}, got {value!r}")
        value = int(value)
    if kind is float:
        value = float(value)
    if not math.isfinite(value) or (spec.lo is not None and value < spec.lo) or (
            spec.hi is not None and value > spec.hi):
        raise ConfigError(f"{label} must be {_range_text(spec)}, got {value!r}")
    if spec.choices and value not in spec.choices:
        raise ConfigError(f"{label} must be one of {list(spec.choices)}, got {value!r}")
    return value


def _string(name: str, value: Any, spec: ParamSpec, what: str = "") -> str:
    label = f"~{name}{what}"
    if not isinstance(value, str):
        raise ConfigError(f"{label} must be a string, got {value!r}")
    if spec.nonempty and not value:
        raise ConfigError(f"{label} must not be empty")
    if spec.choices and value not in spec.choices:
        raise ConfigError(f"{label} must be one of {list(spec.choices)}, got {value!r}")
    return value


def _coerce(f: dataclasses.Field, default: Any, value: Any, prefix: str = "") -> Any:
    name, spec = prefix + f.name, spec_of(f)
    if _is_nested(default):
        if isinstance(value, type(default)):
            value = {g.name: getattr(value, g.name) for g in dataclasses.fields(value)}
        if not isinstance(value, Mapping):
            raise ConfigError(f"~{name} must be a mapping of parameters, got {value!r}")
        return build_config(type(default), value, prefix=f"{name}/")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"~{name} must be true or false, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        return _number(name, value, type(default), spec)
    if isinstance(default, str):
        return _string(name, value, spec)
    if isinstance(default, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"~{name} must be a list, got {value!r}")
        if spec.length is not None and len(value) != spec.length:
            raise ConfigError(f"~{name} must hold exactly {spec.length} items, got {len(value)}")
        if len(value) < spec.min_length:
            raise ConfigError(f"~{name} must hold at least {spec.min_length} items, got {len(value)}")
        if spec.max_length is not None and len(value) > spec.max_length:
            raise ConfigError(f"~{name} must hold at most {spec.max_length} items, got {len(value)}")
        kind = spec.items or (type(default[0]) if default else None)
        out = []
        for i, item in enumerate(value):
            if kind in (int, float):
                out.append(_number(name, item, kind, spec, f"[{i}]"))
            elif kind is str:
                out.append(_string(name, item, spec, f"[{i}]"))
            else:
                out.append(item)
        return out
    if isinstance(default, dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"~{name} must be a mapping, got {value!r}")
        return dict(value)
    return value


def build_config(cls: type, values: Mapping[str, Any], *, prefix: str = "") -> Any:
    """The config `cls` from `values` (missing names keep their default), every field checked.

    YAML writes 1 for 1.0, so integers are taken where floats are expected. Names in `values` that
    `cls` does not have raise ConfigError too: a misspelt parameter must not pass silently.
    `prefix` ("world/") is where a nested config sits, for the names in error messages.
    """
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {', '.join('~' + prefix + u for u in unknown)}; "
                          f"known: {', '.join(sorted(known))}")
    base = cls()
    kwargs = {name: _coerce(f, getattr(base, name), values[name] if name in values else getattr(base, name), prefix)
              for name, f in known.items()}
    config = cls(**kwargs)
    check = getattr(config, "check", None)
    if callable(check):
        check()
    return config


def yaml_mismatches(cls: type, yaml_values: Mapping[str, Any], prefix: str = "") -> list[str]:
    """What a yaml file of `~` parameters says differently from `cls`'s defaults, one line each
    (a nested config's lines name it as `world/room_size_m`)."""
    base = cls()
    want = defaults(cls)
    out = [f"{prefix}{name}: missing from the yaml (default {want[name]!r})" for name in want
           if name not in yaml_values]
    out += [f"{prefix}{name}: in the yaml but not a parameter" for name in yaml_values if name not in want]
    for name, value in yaml_values.items():
        if name in want and _is_nested(getattr(base, name)) and isinstance(value, Mapping):
            out += yaml_mismatches(type(getattr(base, name)), value, prefix=f"{prefix}{name}/")
        elif name in want:
            default = want[name]
            same = (math.isclose(float(value), float(default), rel_tol=1e-9, abs_tol=1e-12)
                    if isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool)
                    else value == default)
            if not same:
                out.append(f"{prefix}{name}: yaml says {value!r}, the default is {default!r}")
    return out

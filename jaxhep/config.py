"""Typed experiment configuration: nested dataclasses plus "a.b=value" overrides.

Every experiment describes itself with frozen dataclasses (data / model / optimiser /
training sections).  The command line changes them with `--set train.lr=3e-4`; the
resolved configuration is written to the run directory as `config.json`, and a resumed
run reads it back with `from_dict`, so a run is always reproducible from its folder.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from jaxhep.errors import ConfigError

T = TypeVar("T")


def to_dict(cfg: Any) -> dict:
    """A JSON-ready dict of a (nested) dataclass config."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    """Rebuild a dataclass config of type `cls` from `to_dict` output (unknown keys are errors).

    Errors name the field by its whole path (`prefix` + key, e.g. "train.learning_rate")."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"unknown config key {prefix + key!r} for {cls.__name__}")
        kwargs[key] = _coerce(hints[key], value, prefix + key)
    return cls(**kwargs)


def changed_fields(old: Any, new: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """{"a.b": (old value, new value)} for every leaf field where two configs of one type differ."""
    out = {}
    for f in dataclasses.fields(old):
        a, b = getattr(old, f.name), getattr(new, f.name)
        if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
            out.update(changed_fields(a, b, f"{prefix}{f.name}."))
        elif a != b:
            out[f"{prefix}{f.name}"] = (a, b)
    return out


def override(cfg: T, assignments: list[str] | tuple[str, ...]) -> T:
    """Apply overrides like ``["train.lr=3e-4", "model.hidden=(256,128)"]`` to a config.

    Values are parsed as JSON where possible (numbers, true/false, null, lists), otherwise
    taken as strings, and then coerced to the field's declared type.
    """
    for assignment in assignments:
        if "=" not in assignment:
            raise ConfigError(f"override {assignment!r} is not of the form key.path=value")
        path, raw = assignment.split("=", 1)
        cfg = _set_path(cfg, path.strip().split("."), raw.strip(), path)
    return cfg


def _parse_value(raw: str) -> Any:
    if raw.startswith("(") and raw.endswith(")"):
        inner = raw[1:-1].strip().rstrip(",")
        try:
            return json.loads("[" + inner + "]")
        except json.JSONDecodeError:  # (simple,dnn): bare words, each read on its own
            return [_parse_value(part.strip()) for part in inner.split(",") if part.strip()]
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        lowered = raw.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered in ("none", "null"):
            return None
        return raw


def _set_path(cfg: Any, keys: list[str], value: Any, full: str) -> Any:
    if not dataclasses.is_dataclass(cfg):
        raise ConfigError(f"cannot set {full!r}: {type(cfg).__name__} has no fields")
    names = [f.name for f in dataclasses.fields(cfg)]
    head = keys[0]
    if head not in names:
        raise ConfigError(f"unknown config key {full!r} (choices at this level: {', '.join(names)})")
    if len(keys) > 1:
        return dataclasses.replace(cfg, **{head: _set_path(getattr(cfg, head), keys[1:], value, full)})
    hint = typing.get_type_hints(type(cfg))[head]
    text_ok = hint is str or (
        typing.get_origin(hint) in (typing.Union, types.UnionType)
        and str in typing.get_args(hint)
        and value.lower() not in ("none", "null")
    )
    # A str field takes the text as typed: json would turn "1e3" into "1000.0", "true" into "True".
    return dataclasses.replace(cfg, **{head: _coerce(hint, value if text_ok else _parse_value(value), full)})


def _coerce(hint: Any, value: Any, name: str) -> Any:
    """Convert a JSON-ish value to the declared field type, or raise ConfigError."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, name)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{name}: {value!r} fits none of {hint}")
    if dataclasses.is_dataclass(hint):
        if isinstance(value, dict):
            return from_dict(hint, value, f"{name}.")
        if dataclasses.is_dataclass(value):
            return value
        raise ConfigError(f"{name}: expected a mapping for {hint.__name__}, got {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            value = [value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, name) for v in value)
        if args and len(args) != len(value):
            raise ConfigError(f"{name}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, name) for a, v in zip(args, value)) if args else tuple(value)
    if origin is list:
        return [_coerce(args[0], v, name) for v in value] if args else list(value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a mapping, got {value!r}")
        return value
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        return str(value)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{name}: {value!r} is not one of {args}")
        return value
    return value


def set_value(cfg: T, path: str, value: Any) -> T:
    """`cfg` with the field at "a.b" set to `value` (a Python value, coerced to the field's type)."""
    keys = path.split(".")
    if not dataclasses.is_dataclass(cfg):
        raise ConfigError(f"cannot set {path!r}: {type(cfg).__name__} has no fields")
    names = [f.name for f in dataclasses.fields(cfg)]
    if keys[0] not in names:
        raise ConfigError(f"unknown config key {path!r} (choices at this level: {', '.join(names)})")
    if len(keys) > 1:
        inner = set_value(getattr(cfg, keys[0]), ".".join(keys[1:]), value)
        return dataclasses.replace(cfg, **{keys[0]: inner})
    hint = typing.get_type_hints(type(cfg))[keys[0]]
    return dataclasses.replace(cfg, **{keys[0]: _coerce(hint, value, path)})


def flat_items(cfg: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """[("train.learning_rate", 0.001), ...]: every leaf field of a nested config, in order."""
    out = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out += flat_items(value, f"{prefix}{f.name}.")
        else:
            out.append((f"{prefix}{f.name}", value))
    return out


# The keys of a run's config.json beside the task's own section (named by the task): how the run was
# started. A key not among these names the task whose run it is.
RUN_RECORD_KEYS = ("argv", "data_fingerprint", "provenance", "select")


def read_config_file(path: str | Path, cls: type[T], key: str, base: T) -> T:
    """`base` with the settings of a JSON or YAML file: a run's own config.json (its `key`
    section is taken) or a file written by a person, which may name only the fields it changes.

    A file that cannot be read, is not a mapping, belongs to another task's run or names a field
    the config does not have is an InputError naming the file."""
    from jaxhep.errors import InputError

    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot read the config file ({err.__class__.__name__}: {err})") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as err:  # json / yaml syntax errors: one line with where it is
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(path, f"not a readable config file ({first})") from None
    if not isinstance(data, dict):
        raise InputError(path, "not a config (a mapping of sections is expected)")
    if key in data:
        data = data[key]
    elif "provenance" in data:  # a run's config.json, of another task
        other = next((k for k in data if k not in RUN_RECORD_KEYS), "another task")
        raise InputError(path, f"the config of a {other} run, not of a {key} one")
    try:
        return from_dict(cls, _merged(to_dict(base), data))
    except (ConfigError, TypeError) as err:
        raise InputError(path, str(err)) from None


def _merged(base: dict, changes: dict) -> dict:
    """`base` with `changes` applied key by key (nested mappings merged, other values replaced)."""
    out = dict(base)
    for k, v in changes.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out

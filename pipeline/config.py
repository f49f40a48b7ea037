"""Run configuration: YAML or TOML, every key documented and checked.

A config file has top-level keys `input`, `output`, `order`, `ray`, and one section per
stage (`extract`, ...) whose keys are the fields of that stage's settings dataclass.
Unknown keys and wrong types are errors that name the key (with a suggestion), because
a silently ignored typo in a threshold is the worst kind of data bug.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config file or value is wrong; the message names the key."""


@dataclass
class RaySettings:
    address: str | None = None          # None: $RAY_ADDRESS if set, else an embedded local Ray
    num_cpus: int | None = None         # embedded Ray only; None = all cores of this machine
    max_retries: int = 3                # retries of a unit whose worker died (not of unit errors)


@dataclass
class Config:
    input: str | None = None            # folder with one sub-folder of WARC files per dump
    output: str = "curate-out"          # everything the run writes goes under here
    order: list[str] = field(default_factory=list)   # stage order; [] = the default order
    ray: RaySettings = field(default_factory=RaySettings)
    stages: dict[str, Any] = field(default_factory=dict)  # stage name -> settings dataclass

    def settings(self, stage: str):
        return self.stages[stage]

    def to_dict(self) -> dict:
        return {
            "input": self.input,
            "output": self.output,
            "order": list(self.order),
            "ray": dataclasses.asdict(self.ray),
            **{name: dataclasses.asdict(s) for name, s in self.stages.items()},
        }


def _suggest(key: str, choices) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_type(where: str, value: Any, tp) -> Any:
    """Check (and gently coerce int->float) a config value against a type annotation."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(where, value, arg)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_check_type(f"{where}[{i}]", v, args[0] if args else Any) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {_check_type(f"{where} key", k, kt): _check_type(f"{where}.{k}", v, vt)
                for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def build_dataclass(cls, section: str, values: dict | None):
    """Instantiate a settings dataclass from a mapping, naming any bad key or value."""
    values = values or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{section}: expected a mapping of settings, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"unknown key '{section}.{key}'{_suggest(key, names)}; "
                              f"valid keys: {', '.join(sorted(names))}")
        kwargs[key] = _check_type(f"{section}.{key}", value, hints[key])
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{section}: {exc}") from None
    validate = getattr(obj, "validate", None)
    if validate:
        try:
            validate()
        except ValueError as exc:
            raise ConfigError(f"{section}.{exc}") from None
    return obj


def read_config_file(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib
            return tomllib.loads(text)
        if suffix in (".yaml", ".yml"):
            import yaml
            data = yaml.safe_load(text)
            return data or {}
        if suffix == ".json":
            return json.loads(text)
    except Exception as exc:        # a parse error: say which file and why
        raise ConfigError(f"config file {path} does not parse: {exc}") from None
    raise ConfigError(f"config file {path}: use .yaml, .yml, .toml or .json")


def load_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> Config:
    """Read a config file (or none) and apply overrides; every stage gets its settings."""
    raw = read_config_file(path) if path else {}
    return config_from_dict(raw, overrides)


def config_from_dict(raw: dict, overrides: dict | None = None) -> Config:
    from pipeline.registry import DEFAULT_ORDER, STAGES

    raw = dict(raw)
    if not isinstance(raw, dict):
        raise ConfigError("config: the top level must be a mapping of keys")
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = value
    top = {"input", "output", "order", "ray"}
    for key in raw:
        if key not in top and key not in STAGES:
            raise ConfigError(f"unknown key '{key}'{_suggest(key, top | set(STAGES))}; "
                              f"top-level keys are {', '.join(sorted(top))} and the stage "
                              f"names {', '.join(STAGES)}")
    cfg = Config()
    if "input" in raw:
        cfg.input = _check_type("input", raw["input"], str | None)
    if "output" in raw:
        cfg.output = _check_type("output", raw["output"], str)
    order = _check_type("order", raw.get("order") or list(DEFAULT_ORDER), list[str])
    for name in order:
        if name not in STAGES:
            raise ConfigError(f"order: unknown stage '{name}'{_suggest(name, STAGES)}; "
                              f"stages are {', '.join(STAGES)}")
    if len(set(order)) != len(order):
        raise ConfigError(f"order: a stage is listed twice: {order}")
    if order and order[0] != "extract":
        raise ConfigError(f"order: must start with 'extract', got {order}")
    for name in order:
        for before in STAGES[name].requires:
            if before not in order or order.index(before) > order.index(name):
                raise ConfigError(f"order: '{name}' needs '{before}' before it, got {order}")
    cfg.order = order
    cfg.ray = build_dataclass(RaySettings, "ray", raw.get("ray"))
    cfg.stages = {name: build_dataclass(stage.settings_cls, name, raw.get(name))
                  for name, stage in STAGES.items()}
    return cfg


def describe_defaults() -> str:
    """The default config as commented YAML (for `curate config`)."""
    from pipeline.registry import STAGES

    cfg = load_config()
    lines = ["# curate configuration: every key with its default.",
             f"input: null        # {_comment(Config, 'input')}",
             f"output: {cfg.output}  # {_comment(Config, 'output')}",
             f"order: {json.dumps(cfg.order)}  # stage order; must start with extract",
             "ray:"]
    for f in dataclasses.fields(RaySettings):
        lines.append(f"  {f.name}: {json.dumps(getattr(cfg.ray, f.name))}")
    for name, stage in STAGES.items():
        lines.append(f"{name}:")
        settings = cfg.stages[name]
        for f in dataclasses.fields(settings):
            doc = f.metadata.get("doc", "")
            val = json.dumps(getattr(settings, f.name), ensure_ascii=False)
            lines.append(f"  {f.name}: {val}" + (f"  # {doc}" if doc else ""))
    return "\n".join(lines) + "\n"


def _comment(cls, name: str) -> str:
    return {"input": "folder with one sub-folder of WARC files per crawl dump",
            "output": "everything the run writes goes under here"}.get(name, "")


def setting(default, doc: str, **kw):
    """A settings field with its documentation attached (shown by `curate config`)."""
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc}, **kw)
    return field(default=default, metadata={"doc": doc}, **kw)

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
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from curate.pipeline.settings import (NONEMPTY, ConfigError, Domain, at_least, between,  # noqa: F401
                                     one_of, positive, setting)


def ray_field(default, doc: str, domain: Domain | None = None):
    return field(default=default, metadata={"doc": doc, "domain": domain})


@dataclass
class RaySettings:
    address: str | None = ray_field(None, "Ray cluster address (ray://HOST:10001 or HOST:6379); null = "
                                          "$RAY_ADDRESS if set, else an embedded local Ray", NONEMPTY)
    num_cpus: int | None = ray_field(None, "embedded Ray only: CPUs it may use; null = all cores of "
                                           "this machine", at_least(1, 100_000))
    max_retries: int = ray_field(3, "retries of a unit whose worker died (not of a unit's own error)",
                                 at_least(0, 100))
    task_memory_mb: int = ray_field(1024, "memory each unit's task asks Ray for (its scheduling request; "
                                          "documents are bounded by extract.max_doc_chars); 0 = none",
                                    at_least(0, 10_000_000))


@dataclass
class StorageSettings:
    endpoint_url: str | None = ray_field(None, "object-storage endpoint (S3-compatible stores, MinIO, a local "
                                             "server); null = $AWS_ENDPOINT_URL or the provider's", NONEMPTY)
    region: str | None = ray_field(None, "object-storage region; null = $AWS_REGION / the profile's", NONEMPTY)
    profile: str | None = ray_field(None, "credentials profile (~/.aws/credentials); null = $AWS_PROFILE or "
                                        "the default chain. Keys themselves are never read from the config",
                                  NONEMPTY)
    lock_lease_s: float = ray_field(120.0, "object-storage output: the driver's lock lease, renewed every third "
                                         "of it; a killed driver's lock is taken over once it ends",
                                  at_least(10, 86_400))


@dataclass
class Config:
    input: str | None = None            # folder with one sub-folder of WARC files per dump
    dump: str | None = None             # a flat input folder: its files are this dump
    output: str = "curate-out"          # everything the run writes goes under here
    order: list[str] = field(default_factory=list)   # stage order; [] = the default order
    ray: RaySettings = field(default_factory=RaySettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    stages: dict[str, Any] = field(default_factory=dict)  # stage name -> settings dataclass
    plugins: dict[str, str] = field(default_factory=dict)  # stage name -> "module:Class" of a user's stage

    def settings(self, stage: str):
        return self.stages[stage]

    def to_dict(self) -> dict:
        return {
            "input": self.input,
            "dump": self.dump,
            "output": self.output,
            "order": [self.plugins.get(n, n) for n in self.order],
            "ray": dataclasses.asdict(self.ray),
            "storage": dataclasses.asdict(self.storage),
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
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: must be a finite number, got {value!r}")
        if isinstance(value, (list, dict)):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in items:
                _check_type(f"{where}.{k}", v, Any)
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
        if not math.isfinite(value):
            raise ConfigError(f"{where}: must be a finite number, got {value!r}")
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
    # every declared domain, defaults included (a default is a value too)
    for f in dataclasses.fields(cls):
        domain = f.metadata.get("domain") if f.init else None
        if domain is not None and f.name in kwargs:
            domain.check(f"{section}.{f.name}", kwargs[f.name])
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
    from curate.pipeline.storage import location
    path = location(path)           # a local file, or one in object storage
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist or is not a file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}): "
                          "give a YAML, TOML or JSON file") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    if "\x00" in text:
        raise ConfigError(f"config file {path} holds binary data: give a YAML, TOML or JSON file")
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
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping of keys "
                          f"(input:, output:, extract:, ...), got {type(raw).__name__} {str(raw)[:80]!r}")
    return config_from_dict(raw, overrides)


def config_from_dict(raw: dict, overrides: dict | None = None) -> Config:
    from curate.pipeline.registry import DEFAULT_ORDER, STAGES

    if not isinstance(raw, dict):
        raise ConfigError("config: the top level must be a mapping of keys (input:, output:, "
                          f"extract:, ...), got {type(raw).__name__}")
    raw = dict(raw)
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = value
    top = {"input", "output", "dump", "order", "ray", "storage"}
    named = {n for n in (raw.get("order") or []) if isinstance(n, str) and ":" in n}
    for key in raw:
        if key not in top and key not in STAGES and not _plugin_section(key, named):
            raise ConfigError(f"unknown key '{key}'{_suggest(key, top | set(STAGES))}; "
                              f"top-level keys are {', '.join(sorted(top))} and the stage "
                              f"names {', '.join(STAGES)}")
    cfg = Config()
    if "input" in raw:
        cfg.input = _check_type("input", raw["input"], str | None)
        NONEMPTY.check("input", cfg.input)
        _check_location("input", cfg.input)
    if "dump" in raw:
        cfg.dump = _check_type("dump", raw["dump"], str | None)
        Domain(nonempty=True).check("dump", cfg.dump)
        if cfg.dump and ("/" in cfg.dump or cfg.dump in (".", "..")):
            raise ConfigError(f"dump: a dump name, not a path, got {cfg.dump!r}")
    if "output" in raw:
        cfg.output = _check_type("output", raw["output"], str)
        NONEMPTY.check("output", cfg.output)
        _check_location("output", cfg.output)
    order = _check_type("order", raw.get("order") or list(DEFAULT_ORDER), list[str])
    from curate.pipeline.registry import StageError, register
    plugins = {}
    for i, name in enumerate(order):
        if ":" in name:                     # a stage of the user's own: module:Class
            try:
                order[i] = register(name)
            except StageError as exc:
                raise ConfigError(f"order: {exc}") from None
            plugins[order[i]] = name
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
    cfg.plugins = plugins
    cfg.ray = build_dataclass(RaySettings, "ray", raw.get("ray"))
    cfg.storage = build_dataclass(StorageSettings, "storage", raw.get("storage"))
    from curate.pipeline.storage import configure
    configure(cfg.storage.endpoint_url, cfg.storage.region, cfg.storage.profile)
    cfg.stages = {name: build_dataclass(stage.settings_cls, name, raw.get(name))
                  for name, stage in STAGES.items()}
    _resolve_links(cfg)
    return cfg


def _resolve_links(cfg: Config) -> None:
    """Settings whose default follows another stage's: the extract pre-filter is on where
    langid runs (nothing would drop other languages otherwise) and keeps langid's
    languages with langid's model. Resolved here, so fingerprints see the real values."""
    ex, lid = cfg.stages.get("extract"), cfg.stages.get("langid")
    if ex is None or lid is None:
        return
    if ex.prefilter is None:
        ex.prefilter = "langid" in cfg.order
    if not ex.prefilter_languages:
        ex.prefilter_languages = list(lid.languages)
    if ex.prefilter_model_path is None:
        ex.prefilter_model_path = lid.model_path


def _check_location(key: str, value: str | None) -> None:
    """A local path, or a URI of a scheme pyarrow knows with a bucket (or host) in it:
    never a silent local folder named ./s3:/bucket."""
    from curate.pipeline.storage import is_uri
    if not value or not is_uri(value):
        return
    scheme, rest = value.split("://", 1)
    if scheme.lower() == "file":
        return
    if not rest.split("/", 1)[0]:
        raise ConfigError(f"{key}: {value} names no bucket (give {scheme}://BUCKET/PREFIX)")
    try:
        import pyarrow.fs as pafs
        pafs.FileSystem.from_uri(value)
    except Exception as exc:
        raise ConfigError(f"{key}: {value} is not a storage location curate can use "
                          f"({str(exc).splitlines()[0][:200]})") from None


def _plugin_section(key: str, refs: set[str]) -> bool:
    """A section named after a user's stage (its `name`), given by reference in the order."""
    from curate.pipeline.registry import StageError, register
    for ref in refs:
        try:
            if register(ref) == key:
                return True
        except StageError:
            continue
    return False


def describe_defaults() -> str:
    """The default config as commented YAML (for `curate config`)."""
    from curate.pipeline.registry import STAGES

    cfg = load_config()
    lines = ["# curate configuration: every key with its default.",
             f"input: null        # {_comment(Config, 'input')}",
             f"output: {cfg.output}  # {_comment(Config, 'output')}",
             "dump: null        # a flat input folder (files, no dump sub-folders): read it as this dump",
             f"order: {json.dumps(cfg.order)}  # stage order; must start with extract",
             "ray:"]
    for f in dataclasses.fields(RaySettings):
        lines.append(f"  {f.name}: {json.dumps(getattr(cfg.ray, f.name))}  # {_doc(f)}")
    lines.append("storage:")
    for f in dataclasses.fields(StorageSettings):
        lines.append(f"  {f.name}: {json.dumps(getattr(cfg.storage, f.name))}  # {_doc(f)}")
    for name, stage in STAGES.items():
        lines.append(f"{name}:")
        settings = cfg.stages[name]
        for f in dataclasses.fields(settings):
            doc = _doc(f)
            declared, resolved = _declared_default(f), getattr(settings, f.name)
            if declared != resolved:
                # a default that follows another key (the preset, the order, langid): writing
                # the value it has now would pin it when that key changes
                doc += f" (this default depends on other keys; with theirs as here it is {_short(resolved)})"
            val = json.dumps(declared, ensure_ascii=False)
            lines.append(f"  {f.name}: {val}" + (f"  # {doc}" if doc else ""))
    return "\n".join(lines) + "\n"


def _declared_default(f):
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _short(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def _doc(f) -> str:
    doc = f.metadata.get("doc", "")
    domain = f.metadata.get("domain")
    if domain is not None and domain.describe() != "any value":
        doc += f" [{domain.describe()}]"
    return doc


def _comment(cls, name: str) -> str:
    return {"input": "folder with one sub-folder of WARC files per crawl dump",
            "output": "everything the run writes goes under here: a local folder or s3://BUCKET/PREFIX, ..."}.get(name, "")

"""The vocabulary of settings: a settings field with its documentation and domain, and the
error a bad value raises.

Stages declare their settings dataclasses with these; `pipeline/config.py` reads config
files and checks values against them, and knows the stages through the registry. Kept
apart so that a stage imports no config reader and no registry (which imports the
stages): config -> registry -> stages -> settings, no circle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A config file or value is wrong; the message names the key."""


@dataclass(frozen=True)
class Domain:
    """The values a setting may take, declared beside it and checked in one place
    (`build_dataclass`). Numbers must lie in [lo, hi] (open ends where said); strings must be
    non-empty where `nonempty`; containers hold at least `min_items` items and every item
    (list element, mapping value) must itself lie in the domain. NaN and infinities are
    never valid anywhere (`_check_type`)."""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    nonempty: bool = False
    min_items: int = 0
    choices: tuple = ()

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        parts = []
        if self.lo is not None or self.hi is not None:
            left = "(" if self.lo_open or self.lo is None else "["
            right = ")" if self.hi_open or self.hi is None else "]"
            lo = "-inf" if self.lo is None else f"{self.lo:g}"
            hi = "inf" if self.hi is None else f"{self.hi:g}"
            parts.append(f"a finite number in {left}{lo}, {hi}{right}")
        if self.nonempty:
            parts.append("non-empty")
        if self.min_items:
            parts.append(f"at least {self.min_items} item(s)")
        return ", ".join(parts) or "any value"

    def check(self, where: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, (list, tuple, dict)):
            if len(value) < self.min_items:
                raise ConfigError(f"{where}: needs {self.describe()}, got {value!r}")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in items:
                self.check(f"{where}.{k}" if isinstance(value, dict) else f"{where}[{k}]", v)
            return
        bad = False
        if self.choices and value not in self.choices:
            bad = True
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if (self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo))) or \
               (self.hi is not None and (value > self.hi or (self.hi_open and value == self.hi))):
                bad = True
        elif isinstance(value, str) and self.nonempty and not value.strip():
            bad = True
        if bad:
            raise ConfigError(f"{where}: must be {self.describe()}, got {value!r}")


def at_least(lo: float, hi: float | None = None) -> Domain:
    return Domain(lo=lo, hi=hi)


def positive(hi: float | None = None) -> Domain:
    return Domain(lo=0, lo_open=True, hi=hi)


def between(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> Domain:
    return Domain(lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open)


NONEMPTY = Domain(nonempty=True)


def one_of(*choices) -> Domain:
    return Domain(choices=tuple(choices))



def setting(default, doc: str, domain: Domain | None = None, **kw):
    """A settings field with its documentation and the values it may take attached (shown
    by `curate config`, checked by `build_dataclass`)."""
    meta = {"doc": doc, "domain": domain}
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)

"""Pure text filters: text in, signals and a keep/reject verdict out. No Ray, no I/O.

Each filter is a dataclass whose fields are its thresholds, with the published values
as defaults (Gopher, C4, FineWeb, FineWeb-2). `signals(doc)` measures; `verdict(signals)`
returns None (keep) or a reason such as "gopher_quality:word_count". FILTERS maps the
names used in config to the classes.

A filter of your own needs no change to curate: name it in the config as
`module:Class` (importable on every node), or register it in your package's
`curate.filters` entry-point group. It follows the same protocol: a class whose
constructor takes its thresholds as keyword arguments, with `signal_names()`,
`signals(doc) -> dict` (doc is a `curate.filters.text.TextView`: `.text`, `.url`, `.words`,
`.lines`, ...) and `verdict(signals) -> None | (reason, detail)`.
"""
import importlib
from importlib.metadata import entry_points

from curate.filters.c4 import C4Filter
from curate.filters.chinese import ChineseQualityFilter, ChineseRepetitionFilter
from curate.filters.fineweb import FineWebFilter
from curate.filters.gopher import GopherQualityFilter, GopherRepetitionFilter
from curate.filters.mojibake import MojibakeFilter
from curate.filters.spam import ChineseSpamFilter
from curate.filters.url import UrlFilter

FILTERS = {cls.name: cls for cls in (
    UrlFilter, GopherQualityFilter, GopherRepetitionFilter, C4Filter, FineWebFilter,
    ChineseQualityFilter, ChineseRepetitionFilter, ChineseSpamFilter, MojibakeFilter)}
PROTOCOL = ("signal_names", "signals", "verdict")


class FilterError(ValueError):
    pass


def resolve_filter(name: str):
    """The filter class a config name means: built-in, `module:Class`, or an entry point."""
    if name in FILTERS:
        return FILTERS[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise FilterError(f"filter '{name}' cannot be imported: {exc}") from None
    else:
        found = [ep for ep in entry_points(group="curate.filters") if ep.name == name]
        if not found:
            raise FilterError(f"unknown filter '{name}'; built-in filters are {', '.join(FILTERS)}, or give "
                              "module:Class, or register one in the curate.filters entry-point group")
        cls = found[0].load()
    missing = [m for m in PROTOCOL if not callable(getattr(cls, m, None))]
    if missing:
        raise FilterError(f"filter '{name}' lacks {', '.join(missing)}: a filter has signal_names(), "
                          "signals(doc) and verdict(signals)")
    return cls

"""Pure text filters: text in, signals and a keep/reject verdict out. No Ray, no I/O.

Each filter is a dataclass whose fields are its thresholds, with the published values
as defaults (Gopher, C4, FineWeb, FineWeb-2). `signals(doc)` measures; `verdict(signals)`
returns None (keep) or a reason such as "gopher_quality:word_count". FILTERS maps the
names used in config to the classes.
"""
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

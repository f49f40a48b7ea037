"""The stages this build has, in their canonical order, and stages of the user's own.

A stage of your own is a `curate.pipeline.stage.Stage` subclass (name, settings_cls,
plan, process) named in the order as `module:Class`, or registered in your package's
`curate.stages` entry-point group. It is registered under its `name`; workers resolve
it from the same reference, so it runs on a cluster as the built-in stages do."""
import importlib
import sys
from importlib.metadata import entry_points

from curate.stages.decontaminate import DecontaminateStage
from curate.stages.dedup import DedupStage
from curate.stages.extract import ExtractStage
from curate.stages.langid import LangidStage
from curate.stages.quality import QualityStage
from curate.stages.remix import RemixStage
from curate.stages.tokenize import TokenizeStage

STAGES = {stage.name: stage for stage in (ExtractStage(), LangidStage(), DedupStage(), QualityStage(),
                                          DecontaminateStage(), RemixStage(), TokenizeStage())}

# DeepSeek LLM order: extract -> langid -> dedup -> quality -> remix -> tokenize, with
# decontamination after quality (it passes everything on until benchmarks are configured).
DEFAULT_ORDER = [name for name in ("extract", "langid", "dedup", "quality", "decontaminate", "remix", "tokenize")
                 if name in STAGES]
BUILT_IN = frozenset(STAGES)
PLUGIN_REFS: dict[str, str] = {}        # stage name -> "module:Class"


class StageError(ValueError):
    pass


def register(ref: str) -> str:
    """Import a stage class from "module:Class", register it, and return its name."""
    from curate.pipeline.stage import Stage
    module, _, attr = ref.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise StageError(f"stage '{ref}' cannot be imported: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Stage)) or not getattr(cls, "name", None):
        raise StageError(f"stage '{ref}' is not a curate Stage subclass with a name")
    if cls.name in BUILT_IN:
        raise StageError(f"stage '{ref}' is named '{cls.name}', which a built-in stage uses")
    STAGES[cls.name] = cls()
    PLUGIN_REFS[cls.name] = ref
    return cls.name


def stage_ref(name: str) -> str:
    return PLUGIN_REFS.get(name, name)


def resolve(ref: str):
    """The stage a name or a "module:Class" reference means (workers call this)."""
    if ref in STAGES:
        return STAGES[ref]
    if ":" in ref:
        return STAGES[register(ref)]
    raise StageError(f"unknown stage '{ref}'")


for _ep in entry_points(group="curate.stages"):
    try:
        register(_ep.value)
    except StageError as _exc:        # a broken plugin must not stop curate itself
        print(f"curate: warning: entry point {_ep.name}: {_exc}", file=sys.stderr)

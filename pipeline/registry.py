"""The stages this build has, in their canonical order."""
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

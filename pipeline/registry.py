"""The stages this build has, in their canonical order."""
from stages.decontaminate import DecontaminateStage
from stages.dedup import DedupStage
from stages.extract import ExtractStage
from stages.langid import LangidStage
from stages.quality import QualityStage
from stages.remix import RemixStage
from stages.tokenize import TokenizeStage

STAGES = {stage.name: stage for stage in (ExtractStage(), LangidStage(), DedupStage(), QualityStage(),
                                          DecontaminateStage(), RemixStage(), TokenizeStage())}

# DeepSeek LLM order: extract -> langid -> dedup -> quality -> remix -> tokenize, with
# decontamination after quality (it passes everything on until benchmarks are configured).
DEFAULT_ORDER = [name for name in ("extract", "langid", "dedup", "quality", "decontaminate", "remix", "tokenize")
                 if name in STAGES]

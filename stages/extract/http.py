"""HTTP payloads inside WARC response records: status, headers, body, charset."""
from __future__ import annotations

import codecs
import re
import zlib
from dataclasses import dataclass

HTML_TYPES = ("text/html", "application/xhtml+xml")
# Types that say nothing about the payload; then the bytes decide (sniffing).
GENERIC_TYPES = ("", "application/octet-stream", "text/plain", "binary/octet-stream",
                 "unknown/unknown", "application/unknown")
_HTML_SNIFF = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|meta|title|div|p|script)\b",
                         re.IGNORECASE | re.DOTALL)
_META_CHARSET = re.compile(
    rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_:.\-]+)""", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?\s*([A-Za-z0-9_:.\-]+)", re.IGNORECASE)


class HttpError(ValueError):
    pass


class BodyTooLarge(HttpError):
    """The decoded body exceeds the cap: decoding stopped there (a gzip bomb costs nothing)."""

    def __init__(self, limit: int, encoding: str):
        super().__init__(f"{encoding} body decodes to more than {limit} bytes")
        self.limit = limit


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]     # lower-cased names
    body: bytes

    @property
    def mime(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


def parse_response(block: bytes, max_body: int | None = None) -> HttpResponse:
    """Status, headers and body of an HTTP response. A compressed body is inflated as a
    stream that stops past `max_body` bytes (BodyTooLarge), never fully in memory."""
    end = block.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end, sep = block.find(b"\n\n"), 2
    if end < 0:
        raise HttpError("no end of HTTP headers")
    head = block[:end].decode("latin-1")
    lines = head.replace("\r\n", "\n").split("\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].upper().startswith("HTTP/") or not parts[1].isdigit():
        raise HttpError(f"bad HTTP status line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, ok, value = line.partition(":")
        if ok:
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    body = block[end + sep:]
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    # codings in the order the server applied them: undo the last first
    for encoding in reversed([e.strip() for e in headers.get("content-encoding", "").lower().split(",")]):
        if encoding in ("gzip", "x-gzip", "deflate"):
            body = _inflate(body, encoding, max_body)
        elif encoding in _ARROW_CODECS:
            body = _decompress_stream(body, encoding, max_body)
        elif encoding not in ("", "identity", "none"):
            raise HttpError(f"unsupported Content-Encoding {encoding!r}")
    return HttpResponse(int(parts[1]), headers, body)


# brotli and zstd through pyarrow's streaming codecs (already a dependency): bounded reads
_ARROW_CODECS = {"br": "brotli", "zstd": "zstd"}


def _decompress_stream(body: bytes, encoding: str, max_body: int | None = None) -> bytes:
    """Decode in blocks: a body cut short (WARC-Truncated) keeps what decoded, as gzip's does."""
    import pyarrow as pa
    out = bytearray()
    try:
        with pa.input_stream(pa.py_buffer(body), compression=_ARROW_CODECS[encoding]) as stream:
            while block := stream.read(8192):     # small blocks: a cut body loses < 8 KB
                out += block
                if max_body is not None and len(out) > max_body:
                    raise BodyTooLarge(max_body, encoding)
    except (OSError, pa.ArrowException) as exc:
        if not out:
            raise HttpError(f"body does not decode as {encoding}: {str(exc)[:120]}") from None
    return bytes(out)


def _dechunk(body: bytes) -> bytes:
    """Undo chunked transfer encoding; bodies that only claim it are kept as they are."""
    out, pos = bytearray(), 0
    try:
        while True:
            eol = body.index(b"\r\n", pos)
            size = int(body[pos:eol].split(b";")[0].strip(), 16)
            if size == 0:
                return bytes(out)
            start = eol + 2
            if start + size > len(body):
                return body
            out += body[start:start + size]
            pos = start + size + 2
    except ValueError:
        return body     # crawlers often store de-chunked bodies with the header left in


def _inflate(body: bytes, encoding: str, max_body: int | None = None) -> bytes:
    limit = max_body if max_body is not None else 0
    for wbits in ((31, 15, -15) if encoding != "deflate" else (15, -15, 31)):
        d = zlib.decompressobj(wbits)
        try:
            # max_length bounds the output: one byte past the cap is enough to know
            out = d.decompress(body, limit + 1 if max_body is not None else 0)
        except zlib.error:
            continue
        if max_body is not None and len(out) > max_body:
            raise BodyTooLarge(max_body, encoding)
        return out
    raise HttpError(f"body does not decode as {encoding}")


def is_html(resp: HttpResponse) -> bool:
    mime = resp.mime
    if mime in HTML_TYPES:
        return True
    if mime in GENERIC_TYPES:
        return bool(_HTML_SNIFF.match(resp.body[:2048]))
    return False


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().lower()).name
    except LookupError:
        return None


# A damaged page keeps its charset when at most this share of its characters had to be
# replaced (U+FFFD): a few bad bytes in a GB2312 page must not turn it into UTF-8 garbage.
MAX_REPLACED_SHARE = 0.005
# Double-byte encodings tried, in this order, on undeclared pages whose bytes look like one.
DOUBLE_BYTE = ("gb18030", "big5", "shift_jis", "euc_kr")
_CJK = re.compile(r"[぀-ヿ㐀-䶿一-鿿가-힯]")


def decode_html(body: bytes, content_type: str) -> tuple[str, str]:
    """Text and the charset used (see decode_body)."""
    text, charset, _ = decode_body(body, content_type)
    return text, charset


def _lenient(body: bytes, name: str) -> tuple[str, int] | None:
    """Decode with replacement; None unless only a small share of characters is replaced."""
    try:
        text = body.decode(name, errors="replace")
    except LookupError:
        return None
    bad = text.count("\ufffd")
    return (text, bad) if bad <= MAX_REPLACED_SHARE * max(1, len(text)) else None


def _looks_double_byte(body: bytes) -> bool:
    """Many bytes >= 0x80, mostly in pairs: GBK/Big5/Shift_JIS/EUC-KR rather than a
    single-byte code page."""
    high = sum(1 for b in body[:65536] if b >= 0x80)
    return high >= 20 and high >= 0.05 * min(len(body), 65536)


def decode_body(body: bytes, content_type: str) -> tuple[str, str, int]:
    """Text, the charset used, and how many characters had to be replaced (U+FFFD).

    Bytes that are valid UTF-8 are UTF-8 whatever the label says (mislabelled UTF-8 is
    common; other encodings' non-ASCII text is almost never valid UTF-8). Else the declared
    charset (header, then <meta>): cleanly, or with replacement when only a small share of
    characters is bad (a GB-family label always decodes as GB18030, its superset). Else, on
    bytes that look double-byte, the CJK encoding that decodes with the fewest replacements
    and yields CJK text; else a statistical guess; else UTF-8 with U+FFFD. Never raises."""
    try:
        return body.decode("utf-8"), "utf-8", 0
    except UnicodeDecodeError:
        pass
    m = _HEADER_CHARSET.search(content_type or "")
    candidates = [_codec(m.group(1))] if m else []
    mm = _META_CHARSET.search(body[:4096])
    if mm:
        candidates.append(_codec(mm.group(1).decode("ascii", "ignore")))
    # Pages labelled latin-1/ascii are nearly always windows-1252 (WHATWG rule);
    # GB2312/GBK labels routinely carry GBK/GB18030 characters.
    declared = [{"latin-1": "cp1252", "iso8859-1": "cp1252", "ascii": "cp1252", "gb2312": "gb18030",
                 "gbk": "gb18030", "hz": "gb18030"}.get(c, c) for c in candidates if c]
    for name in dict.fromkeys(declared):
        try:
            return body.decode(name), name, 0
        except (UnicodeDecodeError, LookupError):
            continue
    for name in dict.fromkeys(declared):
        got = _lenient(body, name)
        if got is not None:
            return got[0], name, got[1]
    if _looks_double_byte(body):
        best = None
        for name in DOUBLE_BYTE:
            got = _lenient(body, name)
            if got is not None and len(_CJK.findall(got[0][:20000])) >= 20:
                if best is None or got[1] < best[2]:
                    best = (got[0], name, got[1])
        if best is not None:
            return best
    try:
        from charset_normalizer import from_bytes
        guess = from_bytes(body[:65536]).best()
        if guess is not None and guess.encoding:
            text = body.decode(guess.encoding, errors="replace")
            return text, guess.encoding, text.count("\ufffd")
    except Exception:                       # a guesser failure must not stop extraction
        pass
    text = body.decode("utf-8", errors="replace")
    return text, "utf-8-replace", text.count("\ufffd")

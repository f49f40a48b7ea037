"""HTTP payloads: status, chunked and gzip bodies, HTML sniffing, charsets."""
import gzip

import pytest

from curate.stages.extract.http import decode_html, is_html, parse_response


def test_chunked_and_gzip_bodies_are_decoded():
    html = b"<html><body><p>hello world</p></body></html>"
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (html[:10], html[10:])) + b"0\r\n\r\n"
    r = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/html\r\n\r\n" + chunked)
    assert r.body == html and r.status == 200 and is_html(r)
    r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n" + gzip.compress(html))
    assert r.body == html
    # a body that only claims to be chunked (crawler de-chunked it) is kept as is
    r = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + html)
    assert r.body == html


def test_brotli_and_zstd_bodies_are_decoded_within_the_cap():
    """Crawlers that keep the raw payload (browsertrix, warcprox) store br and zstd bodies:
    they decode, stop past the cap like gzip, and a body that is not what it claims is an
    HTTP error (extract:bad_http), never an exception."""
    import pyarrow as pa
    from curate.stages.extract.http import BodyTooLarge, HttpError
    import random
    words = [bytes(random.Random(i).choices(b"abcdefghijklmnopqrstuvwxyz", k=7)) for i in range(3000)]
    html = b"<html><body><p>" + b" ".join(words) + b"</p></body></html>"      # compresses little
    bodies = {"br": pa.compress(html, codec="brotli", asbytes=True),
              "zstd": pa.compress(html, codec="zstd", asbytes=True),
              "gzip, br": pa.compress(gzip.compress(html), codec="brotli", asbytes=True)}
    for enc, body in bodies.items():
        r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: "
                           + enc.encode() + b"\r\n\r\n" + body, max_body=1 << 20)
        assert r.body == html, enc
        with pytest.raises(BodyTooLarge):
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Encoding: " + enc.encode() + b"\r\n\r\n" + body,
                           max_body=1000)
        if enc == "br":             # cut short (WARC-Truncated): what decoded is kept, as with gzip
            r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Encoding: " + enc.encode() + b"\r\n\r\n"
                               + body[:len(body) // 2], max_body=1 << 20)
            assert 0 < len(r.body) < len(html) and html.startswith(r.body), enc
    with pytest.raises(HttpError):
        parse_response(b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\n\r\nnot brotli at all", max_body=1000)
    with pytest.raises(HttpError, match="unsupported"):
        parse_response(b"HTTP/1.1 200 OK\r\nContent-Encoding: compress\r\n\r\nxx")


def test_html_is_found_by_type_or_by_sniffing():
    assert is_html(parse_response(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n<!DOCTYPE html><html>"))
    assert not is_html(parse_response(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n\r\n<html>"))
    assert not is_html(parse_response(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\njust text"))


def test_charset_from_header_meta_or_fallback():
    zh = "<html><head><meta charset=gb2312></head><body>中文网页，繁體字也可以。</body></html>"
    text, cs = decode_html(zh.encode("gb18030"), "text/html")
    assert "中文网页" in text and cs == "gb18030"
    text, cs = decode_html("Grüße".encode("cp1252"), "text/html; charset=iso-8859-1")
    assert text == "Grüße"
    # a wrong label falls back to UTF-8; undecodable bytes never raise
    text, cs = decode_html("naïve".encode("utf-8"), "text/html; charset=ascii")
    assert text == "naïve"
    text, _ = decode_html(b"\xff\xfe\xfa broken \x80\x81", "text/html; charset=utf-8")
    assert "broken" in text


# -- issue 14: damaged CJK pages keep their charset ----------------------------------------

def _cc_response(url):
    from conftest import DATA
    from curate.stages.extract.warc import WarcRecord, read_warc
    with open(DATA / "real-warc" / "CC-MAIN-2020-34-excerpt.warc.gz", "rb") as fh:
        for ev in read_warc(fh):
            if isinstance(ev, WarcRecord) and ev.type == "response" and ev.headers["warc-target-uri"] == url:
                return parse_response(ev.block, 5_000_000)
    raise KeyError(url)


def _damage(body: bytes, n: int, start: int = 2000) -> bytes:
    """Put 0xFF (never valid in GBK) on n lead bytes of double-byte characters."""
    b = bytearray(body)
    leads = [i for i in range(start, len(b) - 1) if b[i] >= 0x81 and b[i + 1] >= 0x40]
    step = max(1, len(leads) // (n + 1))
    for i in leads[step::step][:n]:
        b[i] = 0xFF
    return bytes(b)


def test_declared_gb2312_page_with_bad_bytes_stays_chinese():
    from curate.stages.extract.http import decode_body
    resp = _cc_response("http://0760.jxtdw.com/area/sanxiang/")       # charset=gb2312, 106 KB
    clean, _, _ = decode_body(resp.body, resp.headers["content-type"])
    text, charset, replaced = decode_body(_damage(resp.body, 12), resp.headers["content-type"])
    assert charset == "gb18030" and 12 <= replaced <= 24
    assert len(text) == pytest.approx(len(clean), abs=24)


def test_undeclared_gbk_page_with_bad_bytes_is_found_as_gb18030():
    import re
    from curate.stages.extract.http import decode_body
    resp = _cc_response("http://041696.com/15477/list_6_4.html")     # <meta charset=gbk>
    body = _damage(re.sub(rb"charset=[\"']?gbk", b"", resp.body, flags=re.I), 2)
    text, charset, replaced = decode_body(body, "text/html")
    assert charset == "gb18030" and 0 < replaced <= 4
    assert sum("\u4e00" <= c <= "\u9fff" for c in text) > 500

"""HTTP payloads: status, chunked and gzip bodies, HTML sniffing, charsets."""
import gzip

from stages.extract.http import decode_html, is_html, parse_response


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

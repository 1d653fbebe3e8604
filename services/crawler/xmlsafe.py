"""Safe XML for feeds and sitemaps from the wild. Pure.

Feeds arrive with stray bytes before the XML declaration, HTML entities (&nbsp;, &eacute;) that
XML does not define, and sometimes hostile DTDs (billion laughs, external entities). We strip the
junk, turn HTML entities into character references, and parse with defusedxml, which refuses any
entity declaration or external reference instead of expanding it."""

from __future__ import annotations

import re
import zlib
from html.entities import name2codepoint
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

_XML_ENTITIES = {"amp", "lt", "gt", "quot", "apos"}
_NAMED_ENTITY = re.compile(rb"&([A-Za-z][A-Za-z0-9]{1,31});")
_GZIP_MAGIC = b"\x1f\x8b"


class UnsafeXml(ValueError):
    """The document declares entities or external references: refused, never expanded."""


class MalformedXml(ValueError):
    """Not well-formed even after repairs; the message says where."""


def strip_leading_junk(body: bytes) -> bytes:
    """Drop a BOM, whitespace and stray bytes before the first '<'."""
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    start = body.find(b"<")
    return body[start:] if start > 0 else body


def html_entities_to_references(body: bytes) -> bytes:
    def replace(match: re.Match) -> bytes:
        name = match[1].decode("ascii")
        if name in _XML_ENTITIES or name not in name2codepoint:
            return match[0]
        return b"&#%d;" % name2codepoint[name]

    return _NAMED_ENTITY.sub(replace, body)


def gunzip_capped(body: bytes, max_bytes: int) -> bytes:
    """Decompress a gzipped sitemap without letting a bomb past `max_bytes`."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = inflater.decompress(body, max_bytes + 1)
    if len(out) > max_bytes:
        raise ValueError(f"gzipped document inflates beyond {max_bytes} bytes")
    return out


def maybe_gunzip(body: bytes, max_bytes: int) -> bytes:
    return gunzip_capped(body, max_bytes) if body.startswith(_GZIP_MAGIC) else body


def repair(body: bytes) -> bytes:
    return html_entities_to_references(strip_leading_junk(body))


def parse(body: bytes) -> Element:
    """Parse repaired XML safely. Raises UnsafeXml or MalformedXml."""
    try:
        return SafeET.fromstring(repair(body))
    except DefusedXmlException as exc:
        raise UnsafeXml(f"refused: {type(exc).__name__} ({exc})") from None
    except SafeET.ParseError as exc:
        raise MalformedXml(f"not well-formed XML: {exc}") from None


def local_name(element: Element) -> str:
    return element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else ""

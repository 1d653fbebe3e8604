"""Bytes → text for pages served with wrong or missing charsets. Pure.

Order (WHATWG-like, via w3lib): byte-order mark, HTTP Content-Type charset, <meta charset>, then
detection: strict UTF-8 if it decodes, else charset-normalizer's best guess. Labels are mapped the
way browsers map them (ISO-8859-1 → Windows-1252), so “smart quotes” survive."""

from __future__ import annotations

import charset_normalizer
from w3lib.encoding import html_to_unicode


def _detect(body: bytes) -> str | None:
    try:
        body.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(body[:65536]).best()
    return best.encoding if best else "cp1252"


def decode_html(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """Returns (encoding used, text)."""
    return html_to_unicode(content_type, body, auto_detect_fun=_detect)

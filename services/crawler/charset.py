"""Bytes → text for pages served with wrong or missing charsets. Pure.

Order (WHATWG-like, via w3lib): byte-order mark, HTTP Content-Type charset, <meta charset>, then
detection: strict UTF-8 if it decodes, else charset-normalizer for non-Latin scripts and
Windows-1252 for Latin ones (as browsers do). Labels are mapped the
way browsers map them (ISO-8859-1 → Windows-1252), so “smart quotes” survive."""

from __future__ import annotations

import re

import charset_normalizer
from w3lib.encoding import html_to_unicode

# Single-byte Latin code pages are hard to tell apart statistically; browsers fall back to
# Windows-1252 for them, and so do we. Detection decides only for other scripts.
_LATIN = re.compile(r"^(cp125[0-8]|iso8859_\d+|latin_1|mac_\w+|cp437|cp850|ascii)$")


def _detect(body: bytes) -> str | None:
    try:
        body.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(body[:65536]).best()
    if best is None or _LATIN.match(best.encoding):
        return "cp1252"
    return best.encoding


def decode_html(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """Returns (encoding used, text)."""
    return html_to_unicode(content_type, body, auto_detect_fun=_detect)

"""WARC files: optional output of every fetched response (so articles can be re-extracted later),
and input for backfill (`pantau crawl replay`). warcio does the format."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter


class WarcOutput:
    """Appends response records to gzipped WARC files, starting a new file past `max_bytes`."""

    def __init__(self, directory: Path, max_bytes: int, prefix: str = "pantau"):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.prefix = prefix
        self._file = None
        self._writer: WARCWriter | None = None
        self._serial = itertools.count()

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        path = self.directory / f"{self.prefix}-{stamp}-{next(self._serial):05d}.warc.gz"
        self._file = path.open("ab")
        self._writer = WARCWriter(self._file, gzip=True)

    def write_response(self, url: str, status: int, headers: dict[str, str], body: bytes) -> str:
        """Append one response; returns its WARC-Record-ID."""
        if self._file is None or self._file.tell() > self.max_bytes:
            self._rotate()
        assert self._writer is not None
        http_headers = StatusAndHeaders(f"{status} OK", list(headers.items()), protocol="HTTP/1.1")
        record = self._writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http_headers)
        self._writer.write_record(record)
        self._file.flush()
        return record.rec_headers.get_header("WARC-Record-ID")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass(frozen=True)
class ArchivedPage:
    url: str
    body: bytes
    content_type: str | None
    fetched_at: datetime | None
    record_id: str | None
    status: int


def read_warc(path: Path) -> Iterator[ArchivedPage]:
    """HTML responses in a WARC file (plain or gzipped), in file order."""
    with Path(path).open("rb") as stream:
        for record in ArchiveIterator(stream):
            if record.rec_type != "response" or record.http_headers is None:
                continue
            ctype = record.http_headers.get_header("Content-Type")
            if ctype and "html" not in ctype.lower():
                continue
            date = record.rec_headers.get_header("WARC-Date")
            yield ArchivedPage(
                url=record.rec_headers.get_header("WARC-Target-URI"),
                body=record.content_stream().read(),
                content_type=ctype,
                fetched_at=datetime.fromisoformat(date.replace("Z", "+00:00")) if date else None,
                record_id=record.rec_headers.get_header("WARC-Record-ID"),
                status=int(record.http_headers.get_statuscode() or 200),
            )

"""Read the documents a user puts in a knowledge base: txt, md, pdf, docx, html, csv, json.

A file that cannot be read (binary, corrupt, an unknown type) is reported with the reason and
skipped; it never stops the others.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

SUFFIXES = {".txt", ".md", ".markdown", ".pdf", ".docx", ".html", ".htm", ".csv", ".json"}


@dataclass
class Page:
    text: str
    page: int | None = None  # pdf page or csv/json record (1-based); None for a flowing text
    heading: str = ""  # put before each chunk of the page that does not start with it (whose page it is)


@dataclass
class Document:
    path: Path
    pages: list[Page]


@dataclass
class LoadReport:
    documents: list[Document] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"}


class UnreadableDocument(Exception):
    """Why one file could not be read; the caller lists it and goes on."""


def collect_files(paths: list[Path]) -> list[Path]:
    """Files named, and files under folders named (recursively, hidden ones left out), in a stable order."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and not any(
                part.startswith(".") for part in p.relative_to(path).parts))
        else:
            found.append(path)
    return found


def load_all(paths: list[Path]) -> LoadReport:
    report = LoadReport()
    for path in collect_files(paths):
        try:
            report.documents.append(load_document(path))
        except UnreadableDocument as exc:
            report.skipped.append({"path": str(path), "reason": str(exc)})
    return report


def load_document(path: Path) -> Document:
    path = Path(path)
    if not path.is_file():
        raise UnreadableDocument("no such file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UnreadableDocument(f"{suffix or 'no extension'}: not a type birds reads ({', '.join(sorted(SUFFIXES))})")
    try:
        pages = _READERS[suffix](path)
    except UnreadableDocument:
        raise
    except Exception as exc:  # each library has its own errors for a corrupt file
        raise UnreadableDocument(f"unreadable {suffix[1:]} ({type(exc).__name__}: {exc})") from None
    pages = [page for page in pages if page.text.strip()]
    if not pages:
        raise UnreadableDocument("no text in it")
    return Document(path, pages)


def _text(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise UnreadableDocument("binary data, not text")
    for encoding in ("utf-8-sig", "gb18030"):  # gb18030 covers GBK/GB2312 files common in Chinese sources
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UnreadableDocument("neither UTF-8 nor GB18030 text")


def _plain(path: Path) -> list[Page]:
    return [Page(_text(path))]


def _pdf(path: Path) -> list[Page]:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    return [Page(page.extract_text() or "", number) for number, page in enumerate(reader.pages, start=1)]


def _docx(path: Path) -> list[Page]:
    from docx import Document as Docx

    document = Docx(str(path))
    lines = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            lines.append(" | ".join(cell.text for cell in row.cells))
    return [Page("\n".join(lines))]


def _html(path: Path) -> list[Page]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_text(path), "html.parser")
    for tag in soup(["script", "style", "noscript"]):
        tag.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return [Page("\n".join(line for line in lines if line))]


def _csv(path: Path) -> list[Page]:
    rows = csv.DictReader(io.StringIO(_text(path)))
    pages = []
    for number, row in enumerate(rows, start=1):  # one record a page, as Langchain-Chatchat's CSV loader does
        pages.append(Page("; ".join(f"{key}: {value}" for key, value in row.items() if key and value), number))
    return pages


def _json(path: Path) -> list[Page]:
    try:
        data = json.loads(_text(path))
    except json.JSONDecodeError as exc:
        raise UnreadableDocument(f"not valid JSON at line {exc.lineno} ({exc.msg})") from None
    records = data if isinstance(data, list) else [data]
    return [Page(_flatten(record), number) for number, record in enumerate(records, start=1)]


def _flatten(value, prefix: str = "") -> str:
    """JSON as `key: value` lines, which read like text and keep the field names searchable."""
    if isinstance(value, dict):
        return "\n".join(_flatten(item, f"{key}: ") for key, item in value.items())
    if isinstance(value, list):
        return "\n".join(_flatten(item, prefix) for item in value)
    return f"{prefix}{value}"


_READERS = {".txt": _plain, ".md": _plain, ".markdown": _plain, ".pdf": _pdf, ".docx": _docx, ".html": _html,
            ".htm": _html, ".csv": _csv, ".json": _json}

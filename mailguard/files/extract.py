"""The words in a file (text, csv, html, rtf, OOXML, OpenDocument, PDF, legacy Office), its
document properties, and its tables, each within the Limits: what the confidential and
language checks read."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from defusedxml.ElementTree import iterparse
from striprtf.striprtf import rtf_to_text

from mailguard.files import sheets
from mailguard.files.limits import Budget, Limits
from mailguard.mime.views import html_to_text

TABLE_ROWS = 5            # header rows searched for column names
_STRINGS = re.compile(rb"(?:[\x20-\x7e]\x00){4,}|[\x20-\x7e\xa0-\xff]{5,}")
_ODF_NAME = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}name"
_OLE_TEXT = ("WordDocument", "Workbook", "Book", "PowerPoint Document")
_OOXML_TEXT = re.compile(r"^(word/(document|header\d*|footer\d*|footnotes|endnotes|comments)"
                         r"|ppt/(slides/slide|notesSlides/notesSlide)\d+)\.xml$")


@dataclass
class Table:
    """A sheet or CSV: its header row (the first that looks like one) and how many rows follow."""

    headers: tuple[str, ...]
    rows: int
    where: str = ""


@dataclass
class Extracted:
    text: str = ""
    properties: str = ""          # title, subject, keywords, sensitivity labels …
    tables: list[Table] = field(default_factory=list)
    macros: bool = False
    truncated: str = ""           # why some of the file was not read (past a bound)


def extract(family: str, name: str, data: bytes, budget: Budget) -> Extracted:
    """What the file says. Families with no words (images, executables) give nothing."""
    reader = _READERS.get(family)
    if reader is None:
        return Extracted()
    out = reader(name, data, budget)
    if len(out.text) > budget.limits.max_text:
        out.truncated = f"it holds more than {budget.limits.max_text:,} characters of text"
        out.text = out.text[: budget.limits.max_text]
    return out


def decode(data: bytes) -> str:
    """Text files carry no charset: UTF-8 (with or without BOM, or UTF-16 with one), else
    Windows-1252, which is what Excel on a school PC writes."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16", "replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _text(name: str, data: bytes, budget: Budget) -> Extracted:
    text = decode(data[: budget.limits.max_text * 2])
    tables = []
    if name.lower().endswith((".csv", ".tsv")) or _looks_tabular(text):
        table = _csv_table(text, budget.limits)
        if table:
            tables.append(table)
    return Extracted(text=text, tables=tables)


def _looks_tabular(text: str) -> bool:
    lines = text[:4096].splitlines()[:5]
    return len(lines) >= 2 and all(line.count(",") >= 2 or line.count("\t") >= 2 for line in lines)


def _csv_table(text: str, limits: Limits) -> Table | None:
    sample = text[:8192]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, ",;\t|")
    except csv.Error:
        dialect = csv.excel
    return table_of(csv.reader(_lines_of(text), dialect), limits.max_rows, "csv")


def _lines_of(text: str) -> Iterator[str]:
    """Lines one at a time (io.StringIO would hold a 4-byte-per-character copy of it all)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def table_of(rows: Iterable[Iterable[object]], max_rows: int, where: str) -> Table | None:
    """The first row of several named columns is the header; the rows after it are counted."""
    headers: tuple[str, ...] | None = None
    count = 0
    for index, row in enumerate(rows):
        cells = tuple(str(c).strip() for c in row if c is not None and str(c).strip())
        if headers is None:
            if len(cells) >= 3 and sum(not _number(c) for c in cells) >= 3:
                headers = cells
            elif index >= TABLE_ROWS:
                return None
        elif cells:
            count += 1
            if count >= max_rows:
                break
    return Table(headers, count, where) if headers else None


def _number(cell: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d.,/: ]+", cell))


def _html(name: str, data: bytes, budget: Budget) -> Extracted:
    return Extracted(text=html_to_text(decode(data)))


def _rtf(name: str, data: bytes, budget: Budget) -> Extracted:
    return Extracted(text=rtf_to_text(data.decode("latin-1"), errors="ignore"))


def _xml_text(stream: io.BufferedIOBase, budget: Budget, *, odf: bool) -> Iterator[str]:
    """Paragraphs of an OOXML or OpenDocument XML part, read as a stream (a 100 MB
    document.xml is never built as a tree)."""
    line: list[str] = []
    for _, elem in iterparse(stream, events=("end",)):
        tag = elem.tag.rpartition("}")[2]
        if odf and tag in ("p", "h"):
            yield "".join(elem.itertext())
            elem.clear()
        elif not odf and tag == "t" and elem.text:
            line.append(elem.text)
        elif not odf and tag in ("p", "si", "tab", "br"):
            yield "".join(line)
            line.clear()
            elem.clear()
        if odf and tag in ("table-row",):
            elem.clear()
        budget.tick()
    if line:
        yield "".join(line)


def _zip_text(archive: zipfile.ZipFile, names: Iterable[str], budget: Budget, *, odf: bool) -> str:
    out: list[str] = []
    size = 0
    for member in names:
        with archive.open(member) as stream:
            for para in _xml_text(stream, budget, odf=odf):
                out.append(para)
                size += len(para) + 1
                if size > budget.limits.max_text:
                    return "\n".join(out)
    return "\n".join(out)


def _xml_values(data: bytes) -> str:
    """Every value and custom property name in a small properties part (core.xml, custom.xml,
    meta.xml): titles, keywords and Microsoft sensitivity labels ("MSIP_Label_…_Name")."""
    words = []
    for _, elem in iterparse(io.BytesIO(data), events=("end",)):
        if elem.text and elem.text.strip():
            words.append(elem.text.strip())
        for key in ("name", "{urn:oasis:names:tc:opendocument:xmlns:meta:1.0}name"):
            if elem.get(key):
                words.append(str(elem.get(key)))
    return "\n".join(words)


def _ooxml(name: str, data: bytes, budget: Budget) -> Extracted:
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = archive.namelist()
    props = "\n".join(_xml_values(archive.read(n)) for n in names
                      if n in ("docProps/core.xml", "docProps/custom.xml", "docProps/app.xml"))
    out = Extracted(properties=props, macros=any(n.lower().endswith("vbaproject.bin") for n in names))
    out.text = _zip_text(archive, sorted(n for n in names if _OOXML_TEXT.match(n)), budget, odf=False)
    if any(n.startswith("xl/worksheets/") for n in names):
        _xlsx(archive, budget, out)
    return out


def _xlsx(archive: zipfile.ZipFile, budget: Budget, out: Extracted) -> None:
    """Each sheet's rows, once: as tab-separated text, and as a table when it has a header."""
    strings = sheets.shared_strings(archive, budget)
    lines: list[str] = []
    for title, part in sheets.sheets(archive, budget):
        rows = _lines(sheets.rows(archive, part, strings, budget), budget, lines, out)
        table = table_of(rows, budget.limits.max_rows, f"sheet {title}")
        for _ in rows:   # the rest of the sheet, for its text
            pass
        if table:
            out.tables.append(table)
    out.text = "\n".join([out.text, *lines]).strip()


def _lines(rows: Iterable[tuple[str, ...]], budget: Budget, lines: list[str], out: Extracted,
           ) -> Iterator[tuple[str, ...]]:
    size = 0
    for n, row in enumerate(rows):
        if n % 1000 == 0:
            budget.tick()
        if n >= budget.limits.max_rows:
            out.truncated = f"a sheet has more than {budget.limits.max_rows:,} rows"
            return
        if size < budget.limits.max_text:
            line = "\t".join(row).rstrip()
            lines.append(line)
            size += len(line) + 1
        yield row


def _odf(name: str, data: bytes, budget: Budget) -> Extracted:
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = set(archive.namelist())
    props = _xml_values(archive.read("meta.xml")) if "meta.xml" in names else ""
    out = Extracted(properties=props,
                    macros=any(n.startswith(("Basic/", "Scripts/")) for n in names))
    if "content.xml" not in names:
        return out
    out.text = _zip_text(archive, ["content.xml"], budget, odf=True)
    with archive.open("content.xml") as stream:
        out.tables = _odf_tables(stream, budget)
    return out


def _odf_tables(stream: io.BufferedIOBase, budget: Budget) -> list[Table]:
    tables: list[Table] = []
    rows: list[list[str]] = []
    for _, elem in iterparse(stream, events=("end",)):
        tag = elem.tag.rpartition("}")[2]
        if tag == "table-row":
            rows.append(["".join(c.itertext()) for c in elem if c.tag.endswith("}table-cell")])
            elem.clear()
            if len(rows) >= budget.limits.max_rows:
                break
        elif tag == "table":
            table = table_of(rows, budget.limits.max_rows, f"sheet {elem.get(_ODF_NAME, '')}")
            if table:
                tables.append(table)
            rows = []
            elem.clear()
        budget.tick()
    return tables


def _pdf(name: str, data: bytes, budget: Budget) -> Extracted:
    import pypdf  # loaded on first use, as the archive readers are

    reader = pypdf.PdfReader(io.BytesIO(data))
    if reader.is_encrypted and reader.decrypt("") == pypdf.PasswordType.NOT_DECRYPTED:
        return Extracted()
    meta = reader.metadata or {}
    props = "\n".join(str(meta.get(k)) for k in ("/Title", "/Subject", "/Keywords") if meta.get(k))
    pages, size = [], 0
    for page in reader.pages:
        budget.tick()
        text = page.extract_text() or ""
        pages.append(text)
        size += len(text)
        if size > budget.limits.max_text:
            break
    return Extracted(text="\n".join(pages), properties=props)


def _ole(name: str, data: bytes, budget: Budget) -> Extracted:
    """Legacy Word, Excel and PowerPoint: properties, macros, and the readable runs of the
    document streams (their text is stored as 8-bit or UTF-16 runs between binary records)."""
    import olefile

    ole = olefile.OleFileIO(data)
    streams = ["/".join(s) for s in ole.listdir()]
    meta = ole.get_metadata()
    props = "\n".join(_str(getattr(meta, k, b"")) for k in ("title", "subject", "keywords",
                                                              "comments", "category"))
    macros = any(s.split("/")[0] in ("Macros", "_VBA_PROJECT_CUR", "VBA") for s in streams)
    text: list[str] = []
    for stream in _OLE_TEXT:
        if ole.exists(stream):
            raw = ole.openstream(stream).read(budget.limits.max_text * 2)
            text.extend(_run(m.group()) for m in _STRINGS.finditer(raw))
            budget.tick()
    return Extracted(text="\n".join(text), properties=props.strip(), macros=macros)


def _str(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("cp1252", "replace")
    return str(value or "")


def _run(raw: bytes) -> str:
    if len(raw) > 1 and raw[1:2] == b"\x00":
        return raw.decode("utf-16-le", "replace")
    return raw.decode("cp1252", "replace")


_READERS = {"text": _text, "csv": _text, "html": _html, "rtf": _rtf, "ooxml": _ooxml,
            "odf": _odf, "pdf": _pdf, "ole": _ole}

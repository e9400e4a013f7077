"""Attachments made at test time by the real tools a school's PCs use: qpdf, zip, 7-Zip,
gpg, msoffcrypto-tool, openpyxl, python-docx; and messages that carry them."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import docx
import msoffcrypto.format.ooxml
import openpyxl

PASSWORD = "Tr1p-2026!"
PUPILS = [  # UPNs with valid check letters (DfE annex A), made up names
    ("H801200001001", "Smith", "Amelia", "2014-03-12", "7", "7RB", "K", "Y"),
    ("A313207810015", "Jones", "Oliver", "2013-11-02", "7", "7RB", "N", "N"),
    ("X801200001002", "Patel", "Isla", "2014-01-30", "7", "7MW", "E", "Y"),
    ("L801200001003", "Brown", "Noah", "2013-09-21", "7", "7MW", "N", "N"),
    ("A801200001004", "Khan", "Ava", "2014-06-08", "7", "7RB", "K", "N"),
    ("P801200001005", "Evans", "Leo", "2014-02-14", "7", "7MW", "N", "Y"),
]
COLUMNS = ("UPN", "Legal Surname", "Legal Forename", "DOB", "Year", "Reg Group", "SEN", "FSM")


def run(*args: str | Path, cwd: Path | None = None) -> None:
    subprocess.run([str(a) for a in args], check=True, capture_output=True, cwd=cwd, timeout=60)


def xlsx(rows: list[tuple[str, ...]] = PUPILS, columns: tuple[str, ...] = COLUMNS) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Year 7"
    sheet.append(columns)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_export(rows: list[tuple[str, ...]] = PUPILS) -> bytes:
    lines = [",".join(COLUMNS)] + [",".join(r) for r in rows]
    return ("\r\n".join(lines) + "\r\n").encode()


def docx_file(text: str, title: str = "", keywords: str = "") -> bytes:
    document = docx.Document()
    for para in text.split("\n"):
        document.add_paragraph(para)
    document.core_properties.title = title
    document.core_properties.keywords = keywords
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_file(text: str) -> bytes:
    import pptx

    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Year 7 review"
    slide.placeholders[1].text = text
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def with_macros(ooxml: bytes) -> bytes:
    """The docx as Word saves it with a VBA project (a .docm)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(ooxml)) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item))
        dst.writestr("word/vbaProject.bin", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504)
    return out.getvalue()


def office_encrypted(ooxml: bytes) -> bytes:
    """Encrypted as Word and Excel do with File > Protect > Encrypt with Password."""
    out = io.BytesIO()
    msoffcrypto.format.ooxml.OOXMLFile(io.BytesIO(ooxml)).encrypt(PASSWORD, out)
    return out.getvalue()


def pdf(text: str, tmp: Path, *, encrypt: str = "", image: bytes = b"") -> bytes:
    """A PDF with one page per line of text (and, if given, the bytes of an image, as a
    scanned letter carries); encrypt "user" needs a password to open, "owner" only restricts."""
    lines = [t.replace("\\", "").replace("(", "").replace(")", "") for t in text.split("\n")]
    first = 6 if not image else 7
    kids = " ".join(f"{first + 2 * i} 0 R" for i in range(len(lines)))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               f"<< /Type /Pages /Kids [{kids}] /Count {len(lines)} >>".encode(),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
               b"<< >>", b"<< >>"]
    if image:
        objects.append(b"<< /Type /XObject /Subtype /Image /Width 1 /Height %d "
                       b"/ColorSpace /DeviceGray /BitsPerComponent 8 /Length %d >>\n"
                       b"stream\n%s\nendstream" % (len(image), len(image), image))
    for i, line in enumerate(lines):
        stream = f"BT /F1 12 Tf 72 720 Td ({line}) Tj ET".encode()
        picture = b" /XObject << /Im1 6 0 R >>" if image else b""
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                       b"/Resources << /Font << /F1 3 0 R >>%s >> >>" % (first + 2 * i + 1, picture))
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    body = b"%PDF-1.4\n" + b"".join(b"%d 0 obj\n%s\nendobj\n" % (i, o)
                                    for i, o in enumerate(objects, 1))
    body += b"trailer\n<< /Root 1 0 R /Size %d >>\n%%%%EOF\n" % (len(objects) + 1)
    raw, out = tmp / "raw.pdf", tmp / "out.pdf"
    raw.write_bytes(body)
    qpdf = ("qpdf", "--warning-exit-0")   # it rebuilds the cross-reference table we left out
    if encrypt == "user":
        run(*qpdf, "--encrypt", PASSWORD, "owner-" + PASSWORD, "256", "--", raw, out)
    elif encrypt == "owner":
        run(*qpdf, "--encrypt", "", "owner-" + PASSWORD, "256", "--modify=none", "--", raw, out)
    else:
        run(*qpdf, raw, out)
    return out.read_bytes()


def zip_files(files: dict[str, bytes], tmp: Path, *, password: str = "", aes: bool = False) -> bytes:
    """A zip made by Info-ZIP (ZipCrypto with -P) or 7-Zip (WinZip AES)."""
    work = tmp / "zipwork"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    for name, data in files.items():
        (work / name).write_bytes(data)
    target = tmp / "out.zip"
    target.unlink(missing_ok=True)
    if aes:
        run(seven_zip(), "a", "-tzip", f"-p{password}", "-mem=AES256", target, *files, cwd=work)
    elif password:
        run("zip", "-q", "-P", password, target, *files, cwd=work)
    else:
        run("zip", "-q", target, *files, cwd=work)
    return target.read_bytes()


def seven_zip() -> str:
    found = shutil.which("7zz") or shutil.which("7z")
    assert found, "7-Zip is installed by scripts/system-deps.sh"
    return found


def gpg_encrypted(data: bytes, tmp: Path, *, armour: bool) -> bytes:
    home = tmp / "gnupg"
    home.mkdir(mode=0o700, exist_ok=True)
    out = tmp / ("out.asc" if armour else "out.gpg")
    out.unlink(missing_ok=True)
    (tmp / "plain").write_bytes(data)
    try:
        run("gpg", "--homedir", home, "--batch", "--yes", "--pinentry-mode", "loopback",
            "--passphrase", PASSWORD, "--symmetric", *(["--armor"] if armour else []),
            "--output", out, tmp / "plain")
    finally:   # gpg starts an agent for the home folder; it must not outlive the test
        run("gpgconf", "--homedir", home, "--kill", "all")
    return out.read_bytes()


def mail_with(files: dict[str, bytes], *, to: str = "head@otherschool.org.uk",
              subject: str = "Year 7 list", body: str = "Please find attached.\n") -> bytes:
    """A message as Outlook sends it: text, then each file base64-encoded."""
    msg = MIMEMultipart()
    msg["From"] = "teacher@example.sch.uk"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Tue, 24 Nov 2026 10:00:00 +0000"
    msg["Message-ID"] = "<files1@example.sch.uk>"
    msg.attach(MIMEText(body, "plain", "utf-8"))
    for name, data in files.items():
        part = MIMEApplication(data, Name=name)
        part["Content-Disposition"] = f'attachment; filename="{name}"'
        msg.attach(part)
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

"""Virus scanning through a real clamd (Debian's clamav-daemon) started by the test with a
signature database it writes itself: the EICAR test file, since downloads are not possible."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import time
from collections.abc import Iterator

import filemaker as fm
import pytest

# The EICAR anti-virus test file: harmless, and every scanner treats it as a virus.
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")


@pytest.fixture(scope="module")
def clamd(tmp_path_factory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("clamd")
    (folder / "db").mkdir()
    digest = hashlib.md5(EICAR).hexdigest()
    (folder / "db" / "eicar.hdb").write_text(f"{digest}:{len(EICAR)}:Eicar-Test-Signature\n")
    sock = folder / "clamd.ctl"
    (folder / "clamd.conf").write_text(
        f"LocalSocket {sock}\nDatabaseDirectory {folder / 'db'}\nForeground yes\n"
        f"LogFile {folder / 'clamd.log'}\nUser root\nStreamMaxLength 50M\n")
    proc = subprocess.Popen(["/usr/sbin/clamd", f"--config-file={folder / 'clamd.conf'}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(sock))
                s.sendall(b"zPING\0")
                if s.recv(16).startswith(b"PONG"):
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log = (folder / "clamd.log").read_text() if (folder / "clamd.log").exists() else ""
            raise AssertionError("clamd did not start: " + log)
        time.sleep(0.2)
    yield str(sock)
    proc.terminate()
    proc.wait(10)


def test_an_infected_attachment_is_refused_naming_the_signature(make_gateway, clamd, sink):
    gw = make_gateway({"checks": {"antivirus": {"clamd": clamd}}})
    code, text = gw.send(fm.mail_with({"game.com": EICAR}))
    assert code == 550
    # clamd marks signatures from a local database "UNOFFICIAL"
    assert b"game.com contains a virus or malware (Eicar-Test-Signature.UNOFFICIAL)" in text
    [event] = gw.events()
    assert event["checks"] == ["antivirus.infected"]


def test_inside_a_zip_it_is_found_too_and_clean_mail_passes(make_gateway, clamd, sink, tmp_path):
    gw = make_gateway({"checks": {"antivirus": {"clamd": clamd}}})
    zipped = fm.zip_files({"readme.txt": EICAR}, tmp_path)
    assert gw.send(fm.mail_with({"photos.zip": zipped}))[0] == 550
    clean = fm.mail_with({"minutes.docx": fm.docx_file("PTA minutes")})
    assert gw.send(clean)[0] == 250
    [got] = sink.wait_for(1)
    assert got.data.endswith(clean)


def test_clamd_down_defers_or_delivers_as_configured(make_gateway, sink, tmp_path):
    missing = str(tmp_path / "no-clamd.ctl")
    gw = make_gateway({"checks": {"antivirus": {"clamd": missing}}})
    code, text = gw.send(fm.mail_with({"minutes.docx": fm.docx_file("PTA minutes")}))
    assert code == 451 and b"could not check this message just now" in text
    assert not sink.messages
    gw.stop()
    gw.config["checks"]["antivirus"]["unreachable"] = "deliver"
    gw.write_config()
    gw.start()
    assert gw.send(fm.mail_with({"minutes.docx": fm.docx_file("PTA minutes")}))[0] == 250
    sink.wait_for(1)
    assert gw.events()[-1]["checks"] == ["antivirus.unscanned"]


def test_antivirus_without_an_address_is_a_config_error(make_gateway):
    gw = make_gateway({"checks": {"antivirus": {"action": "reject"}}}, start=False)
    out = gw.cli("check-config")
    assert out.returncode == 2 and "checks.antivirus.clamd: set the clamd socket" in out.stderr


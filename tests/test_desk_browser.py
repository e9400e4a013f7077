"""The review desk in a real browser: Debian's Chromium driven by Playwright against the
gateway's own web listener. A held message with hostile HTML (script, remote image, form,
frame) is opened and nothing in it runs or loads; release and reject reach the upstream; the
auditor sees both. With MAILGUARD_SCREENSHOTS=DIR the main pages are saved there as PNG."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import message
from desk import PASSWORD, add_accounts
from test_desk import DESK, HOSTILE, held_id

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = os.environ.get("MAILGUARD_SCREENSHOTS")

playwright = pytest.importorskip("playwright.sync_api")
if not CHROMIUM.exists():   # make test installs it; only a bare machine lacks it
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)


@pytest.fixture
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        yield b
        b.close()


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def sign_in(context, base: str, name: str):
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    return page


def test_a_reviewer_reads_hostile_mail_safely_then_releases_and_rejects(browser, make_gateway,
                                                                         sink):
    gw = make_gateway({**DESK, "organisation": {"dpo": "", "safeguarding_lead": ""}})
    add_accounts(gw)
    hostile = held_id(gw.send(HOSTILE)[1])
    impostor = held_id(gw.send(message(from_="head@gmail.com", subject="Fees"))[1])
    base = f"http://127.0.0.1:{gw.web_port}"

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def only_the_desk(route):
        if route.request.url.startswith(base):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()
    context.route("**/*", only_the_desk)
    page = sign_in(context, base, "dpo")
    page.wait_for_url(f"{base}/queue")
    assert hostile in page.content() and impostor in page.content()
    shot(page, "queue")

    page.select_option("select[name=check]", "identity")
    page.click("button:has-text('Filter')")
    page.wait_for_url(re.compile(r".*check=identity.*"))
    rows = page.locator("table.queue tbody tr")
    assert rows.count() == 1 and impostor in rows.first.inner_text()

    ran: list[str] = []
    page.on("dialog", lambda d: (ran.append(d.message), d.dismiss()))
    page.goto(f"{base}/message/{hostile}")
    frame = page.frame_locator("iframe.body")
    assert "I know where you live." in frame.locator("body").inner_text()
    body = page.frames[1]
    assert body.evaluate("document.title") != "pwned"
    assert body.locator("form, input, script, iframe").count() == 0
    body.locator("p").first.click()                     # the onclick="alert(1)" is gone
    assert ran == [] and outside == []                  # nothing ran, nothing was fetched
    assert "1 remote image held back" in page.inner_text(".frame-controls")
    shot(page, "message")

    page.click("text=Load remote images")               # the reviewer chooses to
    page.frame_locator("iframe.body").locator("img").wait_for()
    for _ in range(50):                                 # the request is made as the frame loads
        if any("tracker.example/pixel.gif" in u for u in outside):
            break
        page.wait_for_timeout(100)
    assert any("tracker.example/pixel.gif" in u for u in outside)
    assert not any("bg.png" in u or "evil.example" in u for u in outside)

    page.goto(f"{base}/message/{hostile}")
    page.click("button:has-text('Release to the ticked recipients')")
    page.wait_for_selector(".flash")
    assert "Released: delivered to parent@gmail.com." in page.inner_text(".flash")
    [released] = [m for m in sink.wait_for(2) if m.recipients == ["parent@gmail.com"]]
    assert b"Subject: Newsletter" in released.data

    page.goto(f"{base}/message/{impostor}")
    page.fill("textarea[name=note]", "Please send this from your school account.")
    page.click("button:has-text('Reject and tell the sender')")
    page.wait_for_selector(".flash")
    notices = [m for m in sink.wait_for(3) if m.recipients == ["teacher@example.sch.uk"]]
    assert len(notices) == 2                            # released, then rejected
    assert any(b"Please send this from your school account." in m.data for m in notices)

    auditor = sign_in(browser.new_context(viewport={"width": 1280, "height": 900}), base,
                      "auditor")
    auditor.wait_for_url(f"{base}/audit")
    text = auditor.inner_text("table.trail")
    assert "release" in text and "reject" in text and "view-body" in text
    shot(auditor, "audit")

    it = sign_in(browser.new_context(viewport={"width": 1280, "height": 1000}), base, "it")
    it.wait_for_url(f"{base}/dashboard")
    # verdicts, checks and terms; no latency line (nothing went straight through) and no
    # false positives yet, each said in words instead
    assert it.locator("svg").count() == 3 and "no mail in this period" in it.content()
    shot(it, "dashboard")
    it.goto(f"{base}/message/{impostor}")
    assert "Not for your role" in it.content()

"""The review desk over its ASGI app (httpx), with a real gateway holding real mail and a
real upstream: sign-in, what each role may see and do, the actions and their audit trail."""

from __future__ import annotations

import csv
import io
import re

import pyotp
import pytest
from conftest import ROOT, message
from desk import PASSWORD, Reviewer, add_accounts, close, csrf_of, desk_app, signed_in

DESK = {"checks": {"identity": {"action": "quarantine"}, "language": {
    "action": "log", "folder": str(ROOT / "wordlists"),
    "categories": {"threats": {"high": "quarantine"}}}}}
HOSTILE = (
    b"From: teacher@example.sch.uk\r\nTo: parent@gmail.com\r\nSubject: Newsletter\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<html><head><script>document.title='pwned'</script></head><body>"
    b"<p onclick=\"alert(1)\">I know where you live.</p>"
    b"<img src=\"https://tracker.example/pixel.gif\" alt=\"pixel\">"
    b"<div style=\"background:url(https://tracker.example/bg.png);color:red\">styled</div>"
    b"<form action=\"https://phish.example/\"><input name=\"pw\"></form>"
    b"<a href=\"https://phish.example/login\">sign in</a>"
    b"<iframe src=\"https://evil.example/\"></iframe></body></html>\r\n")


def held_id(reply: bytes) -> str:
    m = re.search(rb"reference (\w+)", reply)
    assert m, reply
    return m.group(1).decode()


@pytest.fixture
def desk(make_gateway, sink):
    """A gateway holding two messages: an impostor (DPO only) and a threat (safeguarding)."""
    gw = make_gateway(DESK)
    add_accounts(gw)
    gw.impostor = held_id(gw.send(message(from_="head@gmail.com", subject="Fees"))[1])
    gw.threat = held_id(gw.send(message(subject="Tonight",
                                        body="If you do that again I know where you live.\r\n"))[1])
    return gw


async def test_sign_in_needs_the_password_and_stops_guessers(desk):
    app = desk_app(desk)
    r = Reviewer(app)
    assert (await r.get("/queue")).headers["location"] == "/login?next=/queue"
    wrong = await r.sign_in("dpo", "not the password")
    assert wrong.status_code == 401 and "did not match" in wrong.text
    for _ in range(4):
        await r.sign_in("dpo", "still not it")
    locked = await r.sign_in("dpo")          # right password, but after five failures
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.text
    other = Reviewer(app, address="192.0.2.99")
    assert (await other.sign_in("dsl")).headers["location"] == "/queue"
    again = await other.sign_in("dpo")      # the account itself is throttled too
    assert again.status_code == 429
    no_token = await Reviewer(app).http.post("/login", data={"name": "dsl", "password": PASSWORD})
    assert no_token.status_code == 403 and "did not come from the review desk" in no_token.text
    await close(app)


async def test_each_role_sees_what_it_may_and_nothing_more(desk):
    app = desk_app(desk)
    dpo, dsl, it, auditor = (Reviewer(app) for _ in range(4))
    for reviewer, name in ((dpo, "dpo"), (dsl, "dsl"), (it, "it"), (auditor, "auditor")):
        assert (await reviewer.sign_in(name)).status_code == 303
    queue = (await dpo.get("/queue")).text
    assert desk.impostor in queue and desk.threat in queue and "Fees" in queue
    # The subject is what a reviewer clicks first: it opens the message (a link, so the
    # keyboard reaches it too).
    assert f'<a href="/message/{desk.impostor}">Fees</a>' in queue
    assert (await dpo.get(f"/message/{desk.impostor}")).status_code == 200
    assert (await dpo.get("/audit")).status_code == 200

    only_theirs = (await dsl.get("/queue")).text          # safeguarding only
    assert desk.threat in only_theirs and desk.impostor not in only_theirs
    assert (await dsl.get(f"/message/{desk.threat}")).status_code == 200
    refused = await dsl.get(f"/message/{desk.impostor}")
    assert refused.status_code == 403 and "the DPO can assign it to you" in refused.text
    assert (await dsl.get(f"/message/{desk.impostor}/original")).status_code == 403
    assert (await dsl.get("/audit")).status_code == 403

    numbers = (await it.get("/queue")).text                # no subjects, no bodies
    assert desk.impostor in numbers and "Fees" not in numbers and "Tonight" not in numbers
    for url in (f"/message/{desk.threat}", f"/message/{desk.threat}/body",
                f"/message/{desk.threat}/attachment/0", "/audit", "/audit.csv"):
        assert (await it.get(url)).status_code == 403, url
    assert (await it.post(f"/message/{desk.threat}/delete")).status_code == 403

    assert (await auditor.get("/queue")).status_code == 403
    assert (await auditor.get(f"/message/{desk.threat}")).status_code == 403
    assert (await auditor.get("/audit")).status_code == 200
    assert (await auditor.post(f"/message/{desk.threat}/release", from_page="/audit")
            ).status_code == 403
    await close(app)


async def test_release_delivers_and_is_audited_with_who_and_where(desk, sink):
    app = desk_app(desk)
    dpo = Reviewer(app, address="198.51.100.4")
    await dpo.sign_in("dpo")
    done = await dpo.post(f"/message/{desk.impostor}/release",
                          {"recipient": "parent@gmail.com"})
    assert done.status_code == 303
    [got, told] = sink.wait_for(2)                   # the message, then the sender's notice
    assert got.recipients == ["parent@gmail.com"] and b"Subject: Fees" in got.data
    assert told.recipients == ["teacher@example.sch.uk"] and b"has now been delivered" in told.data
    page = (await dpo.get(f"/message/{desk.impostor}")).text
    assert "Released: delivered to parent@gmail.com." in page and "released" in page
    rows = list(csv.DictReader(io.StringIO((await dpo.get("/audit.csv")).text)))
    release = [r for r in rows if r["action"] == "release"]
    assert release[0]["who"] == "dpo" and release[0]["from"] == "198.51.100.4"
    assert release[0]["message"] == desk.impostor
    assert {"view", "release", "sign-in"} <= {r["action"] for r in rows}
    await close(app)


async def test_a_refused_recipient_stays_held_with_the_servers_reply(desk, sink):
    app, dpo = await signed_in(desk, "dpo")
    sink.handler.refuse["parent@gmail.com"] = "452 4.2.2 mailbox full"
    await dpo.post(f"/message/{desk.impostor}/release", {"recipient": "parent@gmail.com"})
    page = (await dpo.get(f"/message/{desk.impostor}")).text
    assert "still held for 1" in page and "452 4.2.2 mailbox full" in page
    assert "Status</dt><dd>held" in page
    assert sink.messages == []
    await close(app)


async def test_reject_tells_the_sender_with_the_reviewers_note(desk, sink):
    app, dsl = await signed_in(desk, "dsl")
    await dsl.post(f"/message/{desk.threat}/reject", {"note": "Please speak to me first."})
    [notice] = sink.wait_for(1)
    assert notice.recipients == ["teacher@example.sch.uk"]
    assert b"Please speak to me first." in notice.data
    assert "rejected" in (await dsl.get(f"/message/{desk.threat}")).text
    await close(app)


async def test_hostile_html_is_shown_inert(make_gateway, sink):
    gw = make_gateway(DESK)
    add_accounts(gw)
    qid = held_id(gw.send(HOSTILE)[1])
    app, dpo = await signed_in(gw, "dpo")
    page = await dpo.get(f"/message/{qid}")
    assert "script-src" not in page.headers["content-security-policy"]   # no script at all
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert '<iframe class="body" src="/message/' in page.text and 'sandbox=""' in page.text
    frame = await dpo.get(f"/message/{qid}/body")
    policy = frame.headers["content-security-policy"]
    assert policy.startswith("sandbox;") and "img-src data:;" in policy
    body = frame.text
    for gone in ("<script", "pwned", "onclick", "<form", "<input", "<iframe", "tracker.example",
                 "phish.example", "url("):
        assert gone not in body, gone
    assert "I know where you live." in body and "sign in" in body and "color:red" in body
    allowed = await dpo.get(f"/message/{qid}/body?remote=1&links=1")
    assert 'src="https://tracker.example/pixel.gif"' in allowed.text
    assert 'href="https://phish.example/login"' in allowed.text
    assert "img-src data: https: http:" in allowed.headers["content-security-policy"]
    assert "<script" not in allowed.text and "<form" not in allowed.text
    await close(app)


async def test_forms_need_the_desks_token(desk):
    app, dpo = await signed_in(desk, "dpo")
    forged = await dpo.http.post(f"/message/{desk.impostor}/delete", data={})
    assert forged.status_code == 403
    forged = await dpo.http.post(f"/message/{desk.impostor}/delete", data={"csrf": "guess"})
    assert forged.status_code == 403
    assert "Status</dt><dd>held" in (await dpo.get(f"/message/{desk.impostor}")).text
    await close(app)


async def test_assigning_opens_a_message_to_the_safeguarding_lead(desk):
    app = desk_app(desk)
    dpo, dsl = Reviewer(app), Reviewer(app)
    await dpo.sign_in("dpo")
    await dsl.sign_in("dsl")
    assert (await dsl.get(f"/message/{desk.impostor}")).status_code == 403
    await dpo.post(f"/message/{desk.impostor}/assign", {"to": "dsl"})
    assert (await dsl.get(f"/message/{desk.impostor}")).status_code == 200
    assert desk.impostor in (await dsl.get("/queue")).text
    bad = await dpo.post(f"/message/{desk.impostor}/assign", {"to": "it"})
    assert bad.status_code == 400 and "not a DPO or safeguarding lead" in bad.text
    mine = await dsl.post(f"/message/{desk.threat}/assign", {"to": "dsl"})
    assert mine.status_code == 403                           # only the DPO assigns
    await close(app)


async def test_comments_and_false_positives_are_kept_for_it(desk):
    app, dsl = await signed_in(desk, "dsl")
    page = (await dsl.get(f"/message/{desk.threat}")).text
    [rule] = re.findall(r"<option>(language\.threats:[^<]+)</option>", page)
    await dsl.post(f"/message/{desk.threat}/comment", {"text": "Spoke to the teacher."})
    await dsl.post(f"/message/{desk.threat}/false-positive", {"rule": rule})
    bad = await dsl.post(f"/message/{desk.threat}/false-positive", {"rule": "nonsense"})
    assert bad.status_code == 400 and "choose one of the rules that fired" in bad.text
    page = (await dsl.get(f"/message/{desk.threat}")).text
    assert "Spoke to the teacher." in page
    assert [tuple(r) for r in desk.sql("SELECT qid, rule, actor FROM false_positives")] == [
        (desk.threat, rule, "dsl")]
    await close(app)


async def test_queue_filters_search_and_pages(desk):
    app, dpo = await signed_in(desk, "dpo")
    by_check = (await dpo.get("/queue?check=language")).text
    assert desk.threat in by_check and desk.impostor not in by_check
    assert "identity <b>1</b>" in by_check and "language <b>1</b>" in by_check
    found = (await dpo.get("/queue?q=Fees")).text
    assert desk.impostor in found and desk.threat not in found
    assert desk.impostor in (await dpo.get("/queue?sender=teacher@")).text
    assert "Nothing matches." in (await dpo.get("/queue?status=released")).text
    for bad, says in (("since=24/11/2026", "since: give a date as YYYY-MM-DD"),
                      ("page=0", "page: a page number from 1"),
                      ("status=lost", "status: one of held"), ("check=nope", "no check is called")):
        r = await dpo.get(f"/queue?{bad}")
        assert r.status_code == 400 and says in r.text and "Traceback" not in r.text
    await close(app)


async def test_bulk_actions_act_only_on_what_the_reviewer_may(desk):
    app, dsl = await signed_in(desk, "dsl")
    r = await dsl.post("/queue/bulk", {"action": "delete", "id": [desk.threat, desk.impostor]})
    assert r.status_code == 303
    page = (await dsl.get("/queue?status=all")).text
    assert "1 deleted. Not done: " + desk.impostor in page
    statuses = {r[0]: r[1] for r in desk.sql("SELECT id, status FROM quarantine")}
    assert statuses == {desk.threat: "deleted", desk.impostor: "held"}
    await close(app)


async def test_a_new_password_or_a_disabled_account_ends_the_session(desk):
    app, dpo = await signed_in(desk, "dpo")
    assert (await dpo.get("/queue")).status_code == 200
    out = desk.cli("users", "passwd", "dpo", "--password-stdin", input="another long password")
    assert out.returncode == 0, out.stderr
    assert (await dpo.get("/queue")).headers["location"] == "/login?next=/queue"
    assert (await dpo.sign_in("dpo", "another long password")).status_code == 303
    assert desk.cli("users", "disable", "dpo").returncode == 0
    assert (await dpo.get("/queue")).status_code == 303
    assert (await dpo.sign_in("dpo", "another long password")).status_code == 401
    await close(app)


async def test_a_second_factor_when_the_account_has_one(desk):
    out = desk.cli("users", "totp", "dpo")
    secret = re.search(r"secret=([A-Z2-7]+)", out.stdout).group(1)
    app = desk_app(desk)
    dpo = Reviewer(app)
    step = await dpo.sign_in("dpo")
    assert step.headers["location"] == "/login/code"
    assert (await dpo.get("/queue")).status_code == 303          # not signed in yet
    wrong = await dpo.post("/login/code", {"code": "000000"}, from_page="/login/code")
    assert wrong.status_code == 401
    ok = await dpo.post("/login/code", {"code": pyotp.TOTP(secret).now()}, from_page="/login/code")
    assert ok.headers["location"] == "/queue"
    assert (await dpo.get("/queue")).status_code == 200
    await close(app)


def test_accounts_are_managed_from_the_command_line(desk):
    listed = desk.cli("users", "list").stdout
    assert re.search(r"dsl\s+dsl", listed) and re.search(r"auditor\s+auditor", listed)
    short = desk.cli("users", "add", "x", "--role", "dpo", "--password-stdin", input="short")
    assert short.returncode == 1 and "at least 12 characters" in short.stderr
    role = desk.cli("users", "add", "y", "--role", "head", "--password-stdin", input=PASSWORD)
    assert role.returncode == 2 and "invalid choice: 'head'" in role.stderr
    [(stored,)] = desk.sql("SELECT hash FROM reviewers WHERE name = 'dpo'")
    actions = [a for (a,) in desk.sql("SELECT detail FROM audit WHERE action = 'account'")]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert "account dpo added as dpo" in actions


def odd(content_type: str, body: bytes, cte: str = "8bit") -> bytes:
    return (b"From: head@gmail.com\r\nTo: parent@gmail.com\r\nSubject: Odd\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: " + content_type.encode() + b"\r\nContent-Transfer-Encoding: "
            + cte.encode() + b"\r\n\r\n" + body + b"\r\n")


@pytest.mark.parametrize("raw, shows, note", [
    (odd("text/html; charset=utf-8", b"<div><p>Unclosed <b>bold <table><tr><td>cell"
         b"<script>alert(1)"), "cell", ""),
    (odd("text/html; charset=utf-8", b"<p>" + (b"word " * 15 + b"\r\n") * 30_000 + b"</p>"), "word word",
     "only the first 2 MB is shown"),
    (odd("text/plain; charset=x-klingon", b"Qapla\xe9 batlh"), "Qapla\u00e9 batlh",
     "its charset (x-klingon) or encoding (8bit) is unknown"),
    (odd("text/plain; charset=utf-8", b"=?not really?=", cte="x-gzip64"), "=?not really?=",
     "encoding (x-gzip64) is unknown"),
    (odd("text/plain; charset=windows-1252", b"Caf\xe9 \x93quoted\x94"),
     "Caf\u00e9 \u201cquoted\u201d", ""),
])
async def test_odd_bodies_render_safely_or_as_text(make_gateway, sink, raw, shows, note):
    gw = make_gateway(DESK)
    add_accounts(gw)
    qid = held_id(gw.send(raw)[1])
    app, dpo = await signed_in(gw, "dpo")
    page = await dpo.get(f"/message/{qid}")
    assert page.status_code == 200
    frame = await dpo.get(f"/message/{qid}/body")
    assert frame.status_code == 200 and shows in frame.text and note in frame.text
    assert "<script" not in frame.text
    await close(app)


async def test_bad_form_input_gets_a_message_not_a_trace(desk):
    app, dpo = await signed_in(desk, "dpo")
    for url, data, says in (
            (f"/message/{desk.impostor}/comment", {"text": "x" * 5000}, "up to 4,000 characters"),
            (f"/message/{desk.impostor}/comment", {"text": "  "}, "write a comment"),
            (f"/message/{desk.impostor}/assign", {"to": "nobody-here"}, "is not a DPO"),
            (f"/message/{desk.impostor}/teleport", {}, "no action called &#39;teleport&#39;"),
            ("/message/NOSUCHID/release", {}, "no held message with the reference NOSUCHID"),
            ("/queue/bulk", {"action": "explode"}, "action: one of release, reject, delete")):
        r = await dpo.post(url, data)
        assert r.status_code in (400, 404) and says in r.text, (url, r.status_code)
        assert "Traceback" not in r.text
    r = await dpo.post(f"/message/{desk.impostor}/release", {"recipient": "stranger@x.org"})
    page = (await dpo.get(f"/message/{desk.impostor}")).text
    assert "Not done: none of those recipients" in page
    big = await dpo.http.post(f"/message/{desk.impostor}/comment",
                              content=b"csrf=x&text=" + b"y" * 70_000,
                              headers={"content-type": "application/x-www-form-urlencoded"})
    assert big.status_code == 413
    await close(app)


async def test_the_queue_pages_through_many(desk):
    from mailguard import config
    from mailguard.model import Action, Client, Envelope, Finding, Mail
    from mailguard.store.quarantine import Quarantine

    app, dpo = await signed_in(desk, "dpo")
    db, _ = await app.state.desk.store()
    settings = config.load(desk.config_path)
    quarantine = Quarantine(db, settings.storage.data_dir, settings.storage.quarantine_key)
    finding = Finding(check="identity", rule="foreign_from", action=Action.QUARANTINE,
                      clause="leventhorpe", message="m", advice="a")
    for i in range(118):   # with the fixture's two, 120: pages of 50, 50 and 20
        mail = Mail(f"BULK{i:04d}", Envelope("office@example.sch.uk", ("p@gmail.com",)),
                    Client("127.0.0.1"), message(subject=f"Letter {i}"))
        await quarantine.hold(mail, (finding,), "bulk")
    first = (await dpo.get("/queue")).text
    assert first.count('name="id"') == 50 and "Page 1 of 3" in first and "page=2" in first
    last = (await dpo.get("/queue?page=3")).text
    assert last.count('name="id"') == 20 and "Page 3 of 3" in last and "page=2" in last
    assert "identity <b>119</b>" in first                  # counts cover every page
    found = (await dpo.get("/queue?q=Letter+117")).text
    assert found.count('name="id"') == 1 and "BULK0117" in found
    await close(app)


@pytest.mark.parametrize("trusted, seen", [([], "127.0.0.1"), (["127.0.0.0/8"], "203.0.113.9")])
def test_behind_a_trusted_proxy_the_reviewers_own_address_is_audited(make_gateway, sink,
                                                                      trusted, seen):
    import httpx

    gw = make_gateway({**DESK, "web": {"trusted_proxies": trusted}})
    add_accounts(gw)
    base = f"http://127.0.0.1:{gw.web_port}"
    forwarded = {"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https"}
    with httpx.Client(base_url=base, headers=forwarded) as web:
        page = web.get("/login")
        signed = web.post("/login", data={"csrf": csrf_of(page.text), "name": "dpo",
                                          "password": PASSWORD})
        assert signed.status_code == 303
    [(address,)] = gw.sql("SELECT address FROM audit WHERE action = 'sign-in'")
    assert address == seen


async def test_pictures_inside_the_message_are_shown_in_place(make_gateway, sink):
    import base64

    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEh"
                           "QGAhKmMIQAAAABJRU5ErkJggg==")
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    raw = (b"From: head@gmail.com\r\nTo: parent@gmail.com\r\nSubject: Screenshot\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=B\r\n\r\n"
           b"--B\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
           b'<p>See <img src="cid:shot@x" alt="shot"> and <img src="cid:vec@x" alt="vec">'
           b' and <img src="cid:missing@x" alt="gone"></p>\r\n'
           b"--B\r\nContent-Type: image/png\r\nContent-ID: <shot@x>\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(png).replace(
               b"\n", b"\r\n") +
           b"--B\r\nContent-Type: image/png\r\nContent-ID: <vec@x>\r\n\r\n" + svg + b"\r\n"
           b"--B--\r\n")
    gw = make_gateway(DESK)
    add_accounts(gw)
    qid = held_id(gw.send(raw)[1])
    app, dpo = await signed_in(gw, "dpo")
    frame = (await dpo.get(f"/message/{qid}/body")).text
    assert f'src="data:image/png;base64,{base64.b64encode(png).decode()}"' in frame
    assert frame.count("<img") == 3 and frame.count("src=") == 1   # no SVG, nothing missing
    await close(app)

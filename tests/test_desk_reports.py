"""The desk's pages for IT and the DPO: dashboard charts, wordlist terms with false positives,
the event log, and the subject-access export; numbers for IT, never content."""

from __future__ import annotations

import io
import json
import re
import zipfile

from conftest import message
from desk import Reviewer, add_accounts, close, desk_app, signed_in
from test_desk import DESK, held_id


async def test_it_sees_numbers_and_terms_but_no_content(make_gateway, sink):
    gw = make_gateway(DESK)
    add_accounts(gw)
    threat = held_id(gw.send(message(subject="Tonight", body="I know where you live.\r\n"))[1])
    assert gw.send(message(subject="Trip"))[0] == 250
    gw.events()   # the event log has caught up
    app = desk_app(gw)
    dsl, it = Reviewer(app), Reviewer(app)
    await dsl.sign_in("dsl")
    await it.sign_in("it")
    rule = re.findall(r"<option>(language\.threats:[^<]+)</option>",
                      (await dsl.get(f"/message/{threat}")).text)[0]
    await dsl.post(f"/message/{threat}/false-positive", {"rule": rule})

    board = await it.get("/dashboard")
    assert board.status_code == 200
    assert board.text.count("<svg") == 5 and "<script" not in board.text
    assert 'aria-label="Messages per day by verdict, last 30 days"' in board.text
    assert "<b>1</b> delivered" in board.text and "<b>1</b> quarantined" in board.text
    assert rule in board.text                       # the false positive, by rule id
    assert "Tonight" not in board.text and "where you live" not in board.text

    terms = (await it.get("/terms")).text
    term = rule.removeprefix("language.")
    row = re.search(rf"<tr><td>{re.escape(term)}</td><td>([^<]*)</td>.*?</tr>", terms).group(0)
    assert "<td>1</td><td>1</td>" in row            # one hit, one false positive
    tried = (await it.post("/terms", {"text": "watch your back, Scunthorpe"},
                           from_page="/terms")).text
    assert "<mark>watch your back</mark>" in tried and "Scunthorpe</mark>" not in tried
    # The rules are on the page too, written as rules.conf has them, and in the try box.
    assert "<tr><td>discriminatory:rule-derogation</td><td>identity &gt; attribute</td>" in terms
    tried = (await it.post("/terms", {"text": "Travellers are rats."}, from_page="/terms")).text
    assert "rule:dehumanising" in tried and "<mark>Travellers are rats</mark>" in tried

    log = (await it.get("/events?verdict=quarantined")).text
    assert threat in log and "language.threats" in log and "Tonight" not in log
    assert (await it.get("/events?since=yesterday")).status_code == 400
    assert (await it.get("/dashboard?days=12")).status_code == 400
    assert (await it.get("/export")).status_code == 403
    assert (await dsl.get("/dashboard")).status_code == 403
    await close(app)


async def test_subject_access_export_gathers_what_names_the_address(make_gateway, sink):
    gw = make_gateway(DESK)
    add_accounts(gw)
    to_them = held_id(gw.send(message(from_="head@gmail.com", to="mum@example.com"),
                              recipients=("mum@example.com",))[1])
    about_them = held_id(gw.send(message(
        subject="Concern", body="mum@example.com said I know where you live.\r\n"))[1])
    other = held_id(gw.send(message(from_="head@gmail.com"))[1])
    app, dpo = await signed_in(gw, "dpo")
    bad = await dpo.post("/export", {"address": "not an address"}, from_page="/export")
    assert bad.status_code == 400 and "give one email address" in bad.text
    got = await dpo.post("/export", {"address": "Mum@Example.com"}, from_page="/export")
    assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
    z = zipfile.ZipFile(io.BytesIO(got.content))
    names = set(z.namelist())
    assert {f"held/{to_them}.eml", f"held/{about_them}.eml", "README.txt",
            "events.json"} <= names
    assert not any(other in n for n in names)
    record = json.loads(z.read(f"held/{to_them}.json"))
    assert record["recipients"] == ["mum@example.com"] and record["findings"]
    assert list(gw.data_dir.glob("export-*")) == []         # the temporary file is gone
    audit = (await dpo.get("/audit?action=export")).text
    assert "subject access for mum@example.com: 0 events, 2 held messages" in audit
    await close(app)

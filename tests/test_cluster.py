"""Two gateway nodes on one PostgreSQL store (issue 18): what one node holds, the other's
commands see and release; events from both land in one log; a node whose quarantine key is
not the cluster's refuses to start rather than hold mail the others cannot open.
"""

from __future__ import annotations

import json
import re
import smtplib
from pathlib import Path
from typing import Any

import pytest
from conftest import base_config, deep_update, message
from inprocess import LocalGateway

from mailguard.store.sealing import key_file

pytestmark = pytest.mark.own_store   # each test chooses its stores itself


@pytest.fixture
def cluster(postgres, tmp_path: Path, sink) -> Any:
    """Start nodes (LocalGateway) on one fresh database; each has its own data folder, and
    they share the quarantine key, as docs/deploy/cluster.md asks."""
    url = postgres.fresh_database()
    secret = tmp_path / "pg.password"
    secret.write_text(postgres.password + "\n")
    secret.chmod(0o600)
    shared_key = tmp_path / "quarantine.key"
    key_file(shared_key)   # made 0600, as the gateway makes its own
    started: list[LocalGateway] = []

    def node(name: str, key: Path = shared_key, start: bool = True,
             extra: dict[str, Any] | None = None) -> LocalGateway:
        folder = tmp_path / name
        folder.mkdir()
        config = deep_update(base_config(folder / "var", f"smtp://127.0.0.1:{sink.port}"), {
            "checks": {"identity": {"action": "quarantine"}}, "server": {"node": name},
            "storage": {"url": url, "password_file": str(secret), "quarantine_key_file": str(key)}})
        deep_update(config, extra or {})
        gw = LocalGateway(folder, config)
        if start:
            gw.start()
        started.append(gw)
        return gw

    yield node
    for gw in started:
        gw.stop()


def hold_one(gw: LocalGateway) -> str:
    code, text = gw.send(message(from_="head@gmail.com"))
    assert code == 250, text
    found = re.search(rb"reference (\w+)", text)
    assert found, text
    return found.group(1).decode()


def test_what_one_node_holds_the_other_releases(cluster, sink):
    a, b = cluster("a"), cluster("b")
    qid = hold_one(a)
    assert sink.messages == []
    assert not (a.data_dir / "quarantine").exists()   # the mail is in the shared store
    listed = b.cli("quarantine", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [qid]
    released = b.cli("quarantine", "release", qid)
    assert released.returncode == 0, released.stderr + released.stdout
    [letter] = [m for m in sink.messages if b"packed lunch" in m.data]
    assert letter.recipients == ["parent@gmail.com"]
    assert b"(mailguard node b)" in letter.data   # released, so relayed, by b
    shown = json.loads(a.cli("quarantine", "show", qid, "--json").stdout)
    assert shown["status"] == "released" and shown["node"] == "a"
    assert "release" in [t["action"] for t in shown["audit"]]
    status = b.cli("store", "status")
    assert status.returncode == 0, status.stderr
    assert "PostgreSQL, database t_" in status.stdout and "up to date" in status.stdout
    assert "held messages (all statuses): 1" in status.stdout


def test_events_from_both_nodes_are_in_one_log(cluster, sink):
    a, b = cluster("a"), cluster("b")
    assert a.send(message())[0] == 250
    assert b.send(message())[0] == 250
    hold_one(b)
    for gw in (a, b):
        gw._run(gw.instance.events.flush())
    out = a.cli("events", "--json")
    assert out.returncode == 0, out.stderr
    seen = sorted((json.loads(line)["node"], json.loads(line)["verdict"])
                  for line in out.stdout.splitlines())
    assert seen == [("a", "delivered"), ("b", "delivered"), ("b", "quarantined")]


def test_a_node_with_another_quarantine_key_will_not_start(cluster, tmp_path):
    cluster("a")
    other = tmp_path / "other.key"
    key_file(other)
    stray = cluster("b", key=other, start=False)
    with pytest.raises(Exception, match="quarantine key is not the one") as failed:
        stray.start()
    assert other.read_text().strip() not in str(failed.value)   # the key itself is never said


def test_postgres_stopped_for_30_s_under_load_loses_nothing(cluster, postgres, sink):
    """The shared store goes away for 30 s while two senders keep sending: mail that must be
    held is answered 451 (never 250 without a committed copy), /healthz and the desk say why,
    and once the server is back, every message the senders' servers retry lands once."""
    import threading
    import time

    import httpx
    from desk import PASSWORD, add_accounts, csrf_of

    a = cluster("a")
    add_accounts(a)
    desk = httpx.Client(base_url=f"http://127.0.0.1:{a.web_port}", timeout=30)
    page = desk.get("/login")
    assert desk.post("/login", data={"csrf": csrf_of(page.text), "name": "dpo",
                                     "password": PASSWORD}).status_code == 303
    outcomes: dict[str, list[int]] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def sender(name: str) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            tag = f"{name}-{n}"
            held = n % 2 == 0   # every other message is one the identity check holds
            raw = message(from_="head@gmail.com" if held else "teacher@example.sch.uk",
                          subject=f"Letter {tag}")
            code = a.send(raw)[0]
            with lock:
                outcomes[tag] = [code]
            time.sleep(0.05)

    senders = [threading.Thread(target=sender, args=(f"s{i}",)) for i in range(2)]
    for t in senders:
        t.start()
    time.sleep(2)
    postgres.stop("fast")
    try:
        time.sleep(3)
        health = httpx.get(f"http://127.0.0.1:{a.web_port}/healthz", timeout=30)
        assert health.status_code == 503 and "cannot be reached" in health.json()["store"]
        queue = desk.get("/queue")
        assert queue.status_code == 503 and "cannot be reached" in queue.text
        assert "Traceback" not in queue.text
        time.sleep(27)
    finally:
        postgres.start()
    time.sleep(2)
    stop.set()
    for t in senders:
        t.join(60)
    deferred = [tag for tag, codes in outcomes.items() if codes[0] != 250]
    assert deferred, "the outage deferred nothing: the test did not test it"
    assert all(400 <= outcomes[tag][0] < 500 for tag in deferred)
    back = time.monotonic()
    for tag in deferred:   # what a sender's server does with a 4xx: try again, later
        sender_of = ("head@gmail.com" if int(tag.split("-")[1]) % 2 == 0
                     else "teacher@example.sch.uk")
        while (code := a.send(message(from_=sender_of, subject=f"Letter {tag}"))[0]) != 250:
            assert 400 <= code < 500 and time.monotonic() - back < 60, (tag, code)
            time.sleep(1)
    assert httpx.get(f"http://127.0.0.1:{a.web_port}/healthz", timeout=30).status_code == 200
    delivered = [m.data for m in sink.messages if b"Subject: Letter " in m.data]
    listed = a.cli("quarantine", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    held = [json.loads(line) for line in listed.stdout.splitlines()]
    tags_out = sorted(re.search(rb"Subject: Letter (\S+)", d).group(1).decode() for d in delivered)
    sent_plain = sorted(t for t in outcomes if int(t.split("-")[1]) % 2 == 1)
    assert tags_out == sent_plain                   # each delivered once, none lost
    sent_held = [t for t in outcomes if int(t.split("-")[1]) % 2 == 0]
    assert len(held) == len(sent_held)              # each held once, none lost


async def test_one_desk_sees_every_node_s_held_mail_and_says_which_node_held_it(cluster):
    from desk import add_accounts, close, signed_in

    a, b = cluster("a"), cluster("b")
    first, second = hold_one(a), hold_one(b)
    add_accounts(b)
    app, dpo = await signed_in(b, "dpo")   # one account, made once, for every node's desk
    try:
        queue = await dpo.get("/queue")
        assert queue.status_code == 200 and first in queue.text and second in queue.text
        page = await dpo.get(f"/message/{first}")
        assert page.status_code == 200 and "(by gateway a)" in page.text
        body = await dpo.get(f"/message/{first}/body")
        assert body.status_code == 200 and "packed lunch" in body.text
    finally:
        await close(app)


async def test_a_desk_session_is_good_on_every_node(cluster):
    from desk import Reviewer, add_accounts, close, desk_app

    a, b = cluster("a"), cluster("b")
    add_accounts(a)
    app_a, app_b = desk_app(a), desk_app(b)
    try:
        on_a, on_b = Reviewer(app_a), Reviewer(app_b)
        assert (await on_a.sign_in("dpo")).status_code == 303
        assert (await on_b.get("/queue")).status_code == 303   # not signed in there yet
        on_b.http.cookies = on_a.http.cookies                  # the balancer sends b the cookie
        page = await on_b.get("/queue")
        assert page.status_code == 200 and "Sign out" in page.text
    finally:
        await close(app_a)
        await close(app_b)


def test_two_nodes_enforce_one_hourly_limit_and_tell_it_once(cluster, sink):
    import time

    limits = {"checks": {"limits": {"action": "reject", "hourly": 6}}}
    a, b = cluster("a", extra=limits), cluster("b", extra=limits)
    codes = [(a if i % 2 else b).send(message(to="a@otherschool.org.uk"),
                                      recipients=("a@otherschool.org.uk",))[0] for i in range(14)]
    assert codes == [250] * 6 + [451] * 8          # not 12: each node adds to the one count
    delivered = sink.wait_for(7)
    time.sleep(1)                                   # a second notice would have come by now
    assert sum(m.recipients == ["postmaster@example.sch.uk"] for m in sink.messages) == 1
    assert len(delivered) == 7


def test_a_single_node_install_moves_into_the_shared_store(make_gateway, postgres, tmp_path, sink):
    """`mailguard store copy sqlite:OLD postgresql://…`: every held message, account and
    audit entry arrives, counted on both sides; the cluster opens and releases the mail; a
    second copy into the now full store is refused and changes nothing."""
    from desk import add_accounts

    old = make_gateway({"checks": {"identity": {"action": "quarantine"}}})
    add_accounts(old)
    held = [hold_one(old), hold_one(old)]
    assert old.send(message())[0] == 250
    old.events()
    old.stop()
    url = postgres.fresh_database()
    secret = tmp_path / "pg.password"
    secret.write_text(postgres.password + "\n")
    secret.chmod(0o600)
    config = dict(old.config)
    config["storage"] = {"data_dir": str(tmp_path / "node"), "url": url,
                         "password_file": str(secret),
                         "quarantine_key_file": str(old.data_dir / "quarantine.key")}
    (tmp_path / "wrong").mkdir()
    other_key = tmp_path / "other.key"
    key_file(other_key)
    wrong = LocalGateway(tmp_path / "wrong", {**config, "storage": {
        **config["storage"], "quarantine_key_file": str(other_key)}})
    refused = wrong.cli("store", "copy", f"sqlite:{old.data_dir}", url)
    assert refused.returncode == 1 and "sealed under another key" in refused.stderr
    (tmp_path / "n1").mkdir()
    node = LocalGateway(tmp_path / "n1", config)   # writes its config file
    copied = node.cli("store", "copy", f"sqlite:{old.data_dir}")
    assert copied.returncode == 0, copied.stderr
    assert "quarantine: 2 copied, 2 in the shared store" in copied.stdout
    assert "held message files: 2 copied, 2 in the shared store" in copied.stdout
    assert "reviewers: 4 copied, 4 in the shared store" in copied.stdout
    again = node.cli("store", "copy", f"sqlite:{old.data_dir}")
    assert again.returncode == 1 and "already holds" in again.stderr
    node.start()
    try:
        listed = node.cli("quarantine", "list", "--json")
        assert sorted(json.loads(line)["id"] for line in listed.stdout.splitlines()) == sorted(held)
        assert node.cli("quarantine", "release", held[0]).returncode == 0
        assert [m for m in sink.messages if b"head@gmail.com" in m.data]
        trail = json.loads(node.cli("quarantine", "show", held[1], "--json").stdout)["audit"]
        assert "show" in [t["action"] for t in trail]
        events = node.cli("events", "--json").stdout.splitlines()
        assert len(events) >= 3   # the old node's, copied, and this one's own since
    finally:
        node.stop()


def test_a_desk_of_its_own_serves_every_node_s_held_mail(cluster):
    """`mailguard desk`: the review desk alone, on the shared store, as its own process."""
    import subprocess
    import sys

    import httpx
    from conftest import ROOT
    from desk import PASSWORD, add_accounts, csrf_of
    from postfix import wait_for_port

    a = cluster("a")
    qid = hold_one(a)
    add_accounts(a)
    office = cluster("desk", start=False)
    proc = subprocess.Popen([sys.executable, "-m", "mailguard", "desk", "--config",
                             str(office.config_path)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        wait_for_port(office.web_port)
        with httpx.Client(base_url=f"http://127.0.0.1:{office.web_port}", timeout=30) as web:
            assert web.get("/healthz").json()["status"] == "ok"
            page = web.get("/login")
            assert web.post("/login", data={"csrf": csrf_of(page.text), "name": "dpo",
                                            "password": PASSWORD}).status_code == 303
            queue = web.get("/queue")
            assert queue.status_code == 200 and qid in queue.text
        try:   # the desk only: nothing answers SMTP on its node's port
            smtplib.SMTP("127.0.0.1", office.port, timeout=2).close()
            answered = True
        except OSError:
            answered = False
        assert not answered
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()[-2000:]
    assert b"Traceback" not in out


def test_doctor_checks_the_shared_store(cluster, tmp_path):
    a = cluster("a")
    out = a.cli("doctor")
    assert "ok    store: PostgreSQL t_" in out.stdout and "schema up to date" in out.stdout
    other = tmp_path / "stray.key"
    key_file(other)
    stray = cluster("stray", key=other, start=False)
    found = stray.cli("doctor")
    assert found.returncode == 1
    assert "quarantine key is not the one the other nodes seal with" in found.stdout

    far = cluster("far", start=False)
    far.config["storage"]["url"] = "postgresql://mailguard@db.invalid/mailguard"
    far.write_config()
    found = far.cli("doctor")
    assert "not verified TLS: held mail crosses the network" in found.stdout
    assert "cannot be reached" in found.stdout and "Traceback" not in found.stderr

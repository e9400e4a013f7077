"""Two gateway nodes on one PostgreSQL store (issue 18): what one node holds, the other's
commands see and release; events from both land in one log; a node whose quarantine key is
not the cluster's refuses to start rather than hold mail the others cannot open.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import base_config, deep_update, message
from inprocess import LocalGateway

from mailguard.store.sealing import key_file

HOLD = {"checks": {"identity": {"action": "quarantine"}}}


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

    def node(name: str, key: Path = shared_key, start: bool = True) -> LocalGateway:
        folder = tmp_path / name
        folder.mkdir()
        config = deep_update(base_config(folder / "var", f"smtp://127.0.0.1:{sink.port}"), {
            **HOLD, "storage": {"url": url, "password_file": str(secret),
                                "quarantine_key_file": str(key)}})
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
    shown = json.loads(a.cli("quarantine", "show", qid, "--json").stdout)
    assert shown["status"] == "released"
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
    verdicts = sorted(json.loads(line)["verdict"] for line in out.stdout.splitlines())
    assert verdicts == ["delivered", "delivered", "quarantined"]


def test_a_node_with_another_quarantine_key_will_not_start(cluster, tmp_path):
    cluster("a")
    other = tmp_path / "other.key"
    key_file(other)
    stray = cluster("b", key=other, start=False)
    with pytest.raises(Exception, match="quarantine key is not the one") as failed:
        stray.start()
    assert other.read_text().strip() not in str(failed.value)   # the key itself is never said

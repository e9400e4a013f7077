"""The config schema in two phases: parse (pure) and build (resources); the README's key table
is the schema's own. In-process: no gateway."""

from __future__ import annotations

import pytest
from conftest import ROOT, base_config, deep_update, toml_dump

from mailguard import config
from mailguard.model import Action
from mailguard.settings import keys


def test_the_readme_key_table_is_made_from_the_schema():
    """A key added to a check's options without running `mailguard keys --write README.md`
    fails here, so the README never disagrees with what the loader reads."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert keys.spliced(readme) == readme, "run: .venv/bin/mailguard keys --write README.md"
    table = keys.table()
    for key in ("server.listen", "checks.limits.hourly", "checks.language.categories.NAME.alert",
                "sources.NAME.tenant_ids (microsoft365)", "dkim.domains.DOMAIN.key",
                "checks.personal.hours.holidays", "inspection.max_expanded"):
        assert f"| `{key}` |" in table, key
    assert "| `checks.limits.action` | reject when the table is there, else off |" in table
    assert "| `server.max_message_size` | `35MiB` |" in table


def write(tmp_path, extra):
    path = tmp_path / "mailguard.toml"
    path.write_text(toml_dump(deep_update(base_config(tmp_path / "var", "smtp://127.0.0.1:25"),
                                          extra)))
    return path


def test_parse_checks_the_schema_and_builds_nothing(tmp_path):
    """A missing wordlist folder is a resource problem: parse passes, build names the key."""
    path = write(tmp_path, {"checks": {"language": {"action": "log",
                                                    "folder": str(tmp_path / "nowhere")}}})
    parsed = config.parse(path)
    assert parsed.document.checks.language.action is Action.LOG
    assert parsed.document.checks.limits.present is False
    assert not (tmp_path / "var").exists()
    with pytest.raises(config.ConfigError, match=r"checks\.language\.folder: .*nowhere is not a "
                                                 r"folder of wordlists"):
        config.build(parsed)


def test_check_config_makes_no_key_and_a_start_does(tmp_path):
    path = write(tmp_path, {})
    checked = config.load(path, create=False)
    assert checked.storage.quarantine_key == b""
    assert "made when mailguard first starts" in checked.storage.quarantine_key_source
    assert not (tmp_path / "var").exists()   # nothing written: no folder, no key
    started = config.load(path)
    assert len(started.storage.quarantine_key) == 32
    assert (tmp_path / "var" / "quarantine.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("extra", "expected"), [
    ({"checks": {"limits": {"hourly": -1}}}, "checks.limits.hourly: must be at least 0, got -1"),
    ({"checks": {"bcc": {"mode": "each"}}}, "checks.bcc.mode: must be one of bcc, split; got "
                                            "'each'"),
    ({"checks": {"language": {"attachments": "yes"}}},
     "checks.language.attachments: must be true or false, got 'yes'"),
    ({"checks": {"personal": {"hours": {"mon": "9-5"}}}},
     "checks.personal.hours.mon: '9-5' is not a span such as \"08:00-17:30\""),
    ({"checks": {"personal": {"hours": {"timezone": "Mars/Olympus"}}}},
     "checks.personal.hours.timezone: unknown time zone 'Mars/Olympus'"),
    ({"checks": {"limits": {"max_recipients": True}}},
     "checks.limits.max_recipients: must be a whole number, not true/false"),
    ({"server": {"max_line_length": 500}},
     "server.max_line_length: must be at least 1000 (RFC 5322 allows 998 + CRLF)"),
    ({"checks": {"attachments": {"block_extensions": ["i.so"]}}},
     'checks.attachments.block_extensions: must list extensions such as "iso" or "one"'),
    ({"sources": {"hq": {"type": "network", "networks": ["10.0.0.0/8"], "tenant_ids": ["x"]}}},
     "sources.hq.tenant_ids: unknown key"),
    ({"notices": {"interval": 0.1}}, "notices.interval: must be at least 0.5, got 0.1"),
    ({"checks": {"disclaimer": {"personal_subject": "x"}}},
     "checks.disclaimer.personal_subject: set the personal tag once"),
    ({"unknown": {"a": 1}}, "unknown: unknown section"),
])
def test_each_problem_names_its_key(tmp_path, extra, expected):
    path = write(tmp_path, extra)
    with pytest.raises(config.ConfigError) as e:
        config.load(path, create=False)
    assert str(e.value).startswith(f"{path}: {expected}"), str(e.value)

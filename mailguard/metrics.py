"""Prometheus metrics. Imported only after PROMETHEUS_MULTIPROC_DIR is set when workers > 1."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("mailguard_messages_total", "Transactions by final verdict", ["verdict"])
FINDINGS = Counter("mailguard_findings_total", "Findings raised, by rule", ["rule"])
REFUSED = Counter("mailguard_refused_total", "Clients and messages refused by the SMTP face, by "
                  "reason", ["reason"])
SOURCES = Counter("mailguard_source_messages_total", "Messages from a cloud source, by source and "
                  "whether they proved they are ours", ["source", "outcome"])
ALERTS = Counter("mailguard_safeguarding_alerts_total", "Alerts to the safeguarding lead, by result",
                 ["result"])
PROCESSING = Histogram("mailguard_processing_seconds",
                       "Time from end of DATA to our final reply (checks + upstream)",
                       buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1, 5, 30))
CONNECTIONS = Gauge("mailguard_connections",
                    "Open client connections (SMTP clients; in milter mode, the MTA's)",
                    multiprocess_mode="livesum")

"""Durable state: the event log, the quarantine and its audit trail, in one SQLite file (WAL)."""

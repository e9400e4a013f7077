-- The shared store as of store version 3 (what the SQLite store's SCHEMA and COLUMNS make),
-- in PostgreSQL's types: timestamps as Unix seconds in double precision, flags as integers,
-- held messages in the database itself (held_files), so a node's disk holds no mail.
CREATE TABLE events (
    id TEXT PRIMARY KEY, ts DOUBLE PRECISION NOT NULL, client TEXT, helo TEXT, auth_user TEXT,
    sender TEXT, rcpt_count INTEGER, rcpt_domains TEXT, refused_count INTEGER, size BIGINT,
    verdict TEXT NOT NULL, checks TEXT, upstream TEXT, latency_ms DOUBLE PRECISION,
    quarantine_id TEXT, tls INTEGER, stamped INTEGER, source TEXT
);
CREATE INDEX events_ts ON events(ts);
CREATE TABLE quarantine (
    id TEXT PRIMARY KEY, ts DOUBLE PRECISION NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,
    sender TEXT, recipients TEXT NOT NULL, held_recipients TEXT NOT NULL, client TEXT,
    auth_user TEXT, size BIGINT, findings TEXT NOT NULL, file TEXT NOT NULL,
    updated DOUBLE PRECISION, note TEXT, last_reply TEXT, subject_hint TEXT, subject TEXT,
    assigned_to TEXT, safeguarding INTEGER NOT NULL DEFAULT 0, plan TEXT
);
CREATE INDEX quarantine_status ON quarantine(status, ts);
CREATE INDEX quarantine_ts ON quarantine(ts);
CREATE INDEX quarantine_assigned ON quarantine(assigned_to);
CREATE TABLE held_files (name TEXT PRIMARY KEY, data BYTEA NOT NULL);
CREATE TABLE held_rules (
    qid TEXT NOT NULL, check_name TEXT NOT NULL, rule TEXT NOT NULL, PRIMARY KEY (qid, rule)
);
CREATE INDEX held_rules_check ON held_rules(check_name, qid);
CREATE TABLE audit (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ts DOUBLE PRECISION NOT NULL,
    actor TEXT NOT NULL, action TEXT NOT NULL, quarantine_id TEXT, detail TEXT, address TEXT
);
CREATE INDEX audit_ts ON audit(ts);
CREATE TABLE reviewers (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL, totp TEXT,
    created DOUBLE PRECISION NOT NULL, generation INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE comments (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, qid TEXT NOT NULL,
    ts DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, text TEXT NOT NULL
);
CREATE INDEX comments_qid ON comments(qid);
CREATE TABLE false_positives (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, qid TEXT NOT NULL, rule TEXT NOT NULL,
    ts DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL
);
CREATE INDEX false_positives_rule ON false_positives(rule);
CREATE TABLE notices (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ts DOUBLE PRECISION NOT NULL,
    qid TEXT NOT NULL, recipient TEXT NOT NULL, kind TEXT NOT NULL, claimed DOUBLE PRECISION,
    tries INTEGER NOT NULL DEFAULT 0, digest INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX notices_pending ON notices(claimed, recipient);

-- Recipient history for the misdirected check (mailguard/store/history.py): keyed hashes of
-- sender-recipient pairs, never addresses, with the days each was first and last seen.
CREATE TABLE history (
    pair BYTEA PRIMARY KEY, sender BYTEA NOT NULL, first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
);
CREATE INDEX history_last_seen ON history(last_seen);

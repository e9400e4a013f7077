-- Facts every node must agree on, such as which quarantine key held mail is sealed with
-- (its fingerprint: an HMAC under the key, never the key).
CREATE TABLE cluster (name TEXT PRIMARY KEY, value TEXT NOT NULL);

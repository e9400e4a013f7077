-- The hourly recipient counts ([checks.limits] hourly), shared by every node so that N nodes
-- enforce one limit: per sender per minute, and when IT was last told of a sender's burst.
CREATE TABLE sent (
    sender TEXT NOT NULL, minute BIGINT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (sender, minute)
);
CREATE INDEX sent_minute ON sent(minute);
CREATE TABLE told (sender TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL);

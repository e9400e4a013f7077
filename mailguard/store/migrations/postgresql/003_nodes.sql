-- Which node wrote each event and held each message (server.node, default the host name).
ALTER TABLE events ADD COLUMN node TEXT;
ALTER TABLE quarantine ADD COLUMN node TEXT;

"""Getting mail out: the upstream connection or Maildir (relay), DKIM signing of what mailguard
changed (dkim), and the trace headers and stamp it adds (trace)."""

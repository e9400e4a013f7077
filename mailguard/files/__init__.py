"""Attachment facts: what a file really is (filetype), whether it is encrypted (encryption),
what it says (extract), what archives hold (archives), read once per message within bounds
(limits) into one report (report). Kept import-free so config can read the limits."""

"""Attachment facts: what a file really is (filetype), whether it is encrypted (encryption),
what it says (extract, sheets), what archives hold (archives, sevenzip), read once per
message within bounds (limits) into one report (report). Kept light so config can read the
limits: the format libraries load when a file first needs them."""

import logging

# pypdf warns on every malformed PDF ("EOF marker not found"); the report already says the
# file could not be read, so only its errors are worth a log line.
logging.getLogger("pypdf").setLevel(logging.ERROR)

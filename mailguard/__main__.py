"""Allows `python -m mailguard`."""

from mailguard.cli import main

raise SystemExit(main())

"""mailguard: an outbound SMTP gateway that enforces schools' acceptable-use policies."""

__version__ = "0.1.0"

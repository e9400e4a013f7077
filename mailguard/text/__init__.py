"""text/."""

"""notices/."""

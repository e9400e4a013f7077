"""The `mailguard` subcommands, one module per audience: review (DPO), wordlists and setup (IT)."""

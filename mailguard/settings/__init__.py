"""Settings: the schema (pydantic models; each check's beside the check), read in two phases.

`config.parse` reads the TOML and validates it against the schema: pure, no I/O beyond reading
the file. `config.build` then makes the resources (compiled lists, keys, templates, stores).
"""

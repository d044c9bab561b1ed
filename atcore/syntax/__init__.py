"""atproto identifier syntax: one module per string format, each with parse_* and is_valid_*."""

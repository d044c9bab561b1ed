"""atcore: the AT Protocol core shared by every Skyloft service (pure; no I/O)."""

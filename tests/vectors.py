"""Where the official vectors live: ../shared next to the checkout (or $SKYLOFT_SHARED)."""

from __future__ import annotations

import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


def _find_shared() -> Path:
    if "SKYLOFT_SHARED" in os.environ:
        return Path(os.environ["SKYLOFT_SHARED"])
    for parent in _ROOT.parents:
        candidate = parent / "shared"
        if (candidate / "interop-tests").is_dir():
            return candidate
    raise RuntimeError("official vectors not found: set SKYLOFT_SHARED to the shared/ folder")


SHARED = _find_shared()
INTEROP = SHARED / "interop-tests"
REPO_FIXTURES = SHARED / "atproto-repo-fixtures"
PLC_INTEROP = SHARED / "plc-interop-tests"
LEXICONS = SHARED / "lexicons"

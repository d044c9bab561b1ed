"""Where the official vectors live.

In order: `$SKYLOFT_SHARED`; a `shared/` folder beside the checkout or one of its parents (the
workplace layout, read in place); else `tests/shared/`, a verbatim copy of the vector folders
(CC0 / MIT / Apache-2.0, their SOURCE.md and licenses included) so a fresh machine can run
the suite. `test_vendored_vectors_match` keeps the copy identical to the originals.
"""

from __future__ import annotations

import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
VENDORED = _ROOT / "tests" / "shared"


def _find_shared() -> Path:
    if "SKYLOFT_SHARED" in os.environ:
        return Path(os.environ["SKYLOFT_SHARED"])
    for parent in _ROOT.parents:
        candidate = parent / "shared"
        if (candidate / "interop-tests").is_dir():
            return candidate
    return VENDORED


SHARED = _find_shared()
INTEROP = SHARED / "interop-tests"
REPO_FIXTURES = SHARED / "atproto-repo-fixtures"
PLC_INTEROP = SHARED / "plc-interop-tests"
LEXICONS = SHARED / "lexicons"

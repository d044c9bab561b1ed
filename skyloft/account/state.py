"""The local record of a migration's progress, so a re-run continues where one stopped
(spec-account.md, "PDS Account Migration").

One JSON file per DID. It is written atomically (a temporary file renamed over the old one)
after every step, so a kill at any instant leaves the previous or the next state, never half
of one. It holds no password and no token: only what the servers cannot tell us again, such
as a PLC operation already signed with a single-use email code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STEPS = ("account", "repo", "blobs", "preferences", "identity", "activate", "deactivate", "verify")


@dataclass
class MigrationState:
    did: str
    old_pds: str
    new_pds: str
    handle: str
    done: list[str] = field(default_factory=list)
    imported_rev: str | None = None
    records: int | None = None
    blobs: int | None = None
    plc_operation: dict[str, Any] | None = None

    def is_done(self, step: str) -> bool:
        return step in self.done

    def mark(self, step: str) -> None:
        if step not in self.done:
            self.done.append(step)

    def pending(self) -> list[str]:
        return [step for step in STEPS if step not in self.done]


def default_path(did: str) -> Path:
    """`$XDG_DATA_HOME/skyloft/migrations/<did>.json` (~/.local/share when unset)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "skyloft" / "migrations" / f"{did.replace(':', '_')}.json"


def load(path: Path) -> MigrationState | None:
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not a migration state file")
    try:
        return MigrationState(**raw)
    except TypeError as exc:
        raise ValueError(f"{path}: not a migration state file ({exc})") from None


def save(path: Path, state: MigrationState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w") as out:
        json.dump(asdict(state), out, indent=2)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


class Journal:
    """A migration's state and the file it is kept in: every change is saved at once."""

    def __init__(self, path: Path, state: MigrationState, say: Callable[[str], None]) -> None:
        self.path = path
        self.state = state
        self._say = say

    def save(self) -> None:
        save(self.path, self.state)

    def done(self, step: str) -> None:
        if not self.state.is_done(step):
            self.state.mark(step)
            self.save()
            self._say(f"done: {step}")

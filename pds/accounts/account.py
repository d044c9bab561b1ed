"""An account hosted here, as its row reads (spec-account.md, "Account Status")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Account:
    did: str
    handle: str
    email: str | None
    password_hash: str | None
    created_at: str
    email_confirmed_at: str | None
    deactivated_at: str | None
    takedown_ref: str | None

    @property
    def status(self) -> str | None:
        """None when active, else the `status` the lexicons name for the account."""
        if self.takedown_ref is not None:
            return "takendown"
        if self.deactivated_at is not None:
            return "deactivated"
        return None

    @property
    def active(self) -> bool:
        return self.status is None

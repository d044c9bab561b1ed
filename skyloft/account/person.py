"""What a migration needs from the person running it, and the two ways it stops for them."""

from __future__ import annotations

from typing import Protocol


class Prompts(Protocol):
    def old_password(self) -> str: ...
    def new_password(self) -> str: ...
    def plc_token(self) -> str | None: ...
    def say(self, text: str) -> None: ...


class MigrationError(Exception):
    """The migration cannot go on; the message says why and what to do."""


class MigrationPaused(Exception):
    """The migration waits for the person (a PLC code, a published did:web document)."""

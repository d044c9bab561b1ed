"""What the directory's handlers share: built by the app's lifespan, never a module global."""

from __future__ import annotations

from dataclasses import dataclass

from plc.config import PlcConfig
from plc.operations import PlcOperations
from plc.store import PlcStore


@dataclass(frozen=True)
class PlcContext:
    config: PlcConfig
    store: PlcStore
    ops: PlcOperations
    version: str

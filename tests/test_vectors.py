"""The vendored copy of the official vectors is byte-identical to the originals it came from."""

from __future__ import annotations

import pytest

from tests.vectors import SHARED, VENDORED


def test_vendored_vectors_match() -> None:
    if SHARED == VENDORED:
        pytest.skip("only the vendored copy is present on this machine")
    copied = [p for p in VENDORED.rglob("*") if p.is_file()]
    assert len(copied) > 50
    for path in copied:
        original = SHARED / path.relative_to(VENDORED)
        assert original.read_bytes() == path.read_bytes(), f"{path} differs from {original}"

"""Lexicon schemas: loading, reference resolution and data validation (spec-lexicon.md)."""

from __future__ import annotations

from atcore.lexicon.catalog import Catalog
from atcore.lexicon.params import validate_params
from atcore.lexicon.validate import validate_input, validate_output, validate_record, validate_value

__all__ = [
    "Catalog",
    "validate_input",
    "validate_output",
    "validate_params",
    "validate_record",
    "validate_value",
]

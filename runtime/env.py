"""Settings read from the environment once at start-up (DESIGN.md, "Running the services"): the
error every service's config raises, and the parsers of booleans and integers they share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from atcore.errors import InvalidSyntax
from atcore.syntax.integer import INT64_MAX, INT64_MIN, parse_integer

TRUE: Final = frozenset({"true", "1", "yes"})
FALSE: Final = frozenset({"false", "0", "no", ""})


class ConfigError(ValueError):
    """A setting is missing or has a bad value; the message names the variable or flag."""


def env_bool(env: Mapping[str, str], name: str) -> bool:
    """`name` as true/false (1/0, yes/no); unset or empty is false."""
    value = env.get(name, "").strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def env_int(
    env: Mapping[str, str],
    name: str,
    default: int,
    minimum: int = INT64_MIN,
    maximum: int = INT64_MAX,
) -> int:
    """`name` as an integer in `minimum..maximum` (ASCII digits, atcore.syntax.integer); unset or
    empty is `default`."""
    value = env.get(name)
    if not value:
        return default
    try:
        return parse_integer(value, minimum, maximum)
    except InvalidSyntax as exc:
        raise ConfigError(f"{name} {exc}") from None

"""Settings read from the environment once at start-up (DESIGN.md, "Running the services"): the
error every service's config raises, and the parsers of booleans, integers and durations they
share."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from atcore.errors import InvalidSyntax
from atcore.syntax.integer import INT64_MAX, INT64_MIN, parse_integer

TRUE: Final = frozenset({"true", "1", "yes"})
FALSE: Final = frozenset({"false", "0", "no", ""})
# Go's time.ParseDuration, as the official relay and Jetstream read theirs, minus the units
# no setting needs (ns, us) and signs.
_DURATION: Final = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+")
_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


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


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (`72h`, `1h30m`, `90s`, `1.5s`, `250ms`); ValueError otherwise."""
    if not _DURATION.fullmatch(text):
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * _SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


def env_duration(env: Mapping[str, str], name: str, default: float) -> float:
    """`name` as a Go duration in seconds; unset or empty is `default`."""
    value = env.get(name)
    if not value:
        return default
    try:
        return parse_duration(value)
    except ValueError:
        message = f"{name} must be a duration like 72h, 30m or 250ms, got {value!r}"
        raise ConfigError(message) from None

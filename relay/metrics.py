"""Prometheus text exposition of the relay's counters and gauges (exposition format 0.0.4)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]


@dataclass
class Metrics:
    """Counters by name and labels; gauges are computed at scrape time by the caller."""

    counters: dict[str, dict[Labels, int]] = field(default_factory=dict)
    help: dict[str, str] = field(default_factory=dict)

    def declare(self, name: str, help_text: str) -> None:
        self.help[name] = help_text
        self.counters.setdefault(name, {})

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        series = self.counters.setdefault(name, {})
        key = tuple(sorted(labels.items())) if len(labels) > 1 else tuple(labels.items())
        series[key] = series.get(key, 0) + amount

    def value(self, name: str, **labels: str) -> int:
        return self.counters.get(name, {}).get(tuple(sorted(labels.items())), 0)

    def by_label(self, name: str, label: str) -> dict[str, int]:
        """One counter's totals per value of `label` (for the status page)."""
        out: dict[str, int] = {}
        for key, count in self.counters.get(name, {}).items():
            value = dict(key).get(label, "")
            out[value] = out.get(value, 0) + count
        return out

    def render(self, gauges: Mapping[str, tuple[str, Mapping[Labels, float]]]) -> str:
        """The exposition text: every counter, then the gauges given as name -> (help, series)."""
        lines: list[str] = []
        for name in sorted(self.counters):
            lines += _family(
                name, "counter", self.help.get(name, name), self.counters[name].items()
            )
        for name in sorted(gauges):
            help_text, series = gauges[name]
            lines += _family(name, "gauge", help_text, series.items())
        return "\n".join(lines) + "\n"


def _family(
    name: str, kind: str, help_text: str, series: Iterable[tuple[Labels, float]]
) -> list[str]:
    lines = [f"# HELP {name} {_escape(help_text, help_only=True)}", f"# TYPE {name} {kind}"]
    for labels, value in sorted(series):
        text = ",".join(f'{key}="{_escape(val)}"' for key, val in labels)
        number = str(int(value)) if float(value).is_integer() else repr(float(value))
        lines.append(f"{name}{{{text}}} {number}" if text else f"{name} {number}")
    return lines


def _escape(value: str, help_only: bool = False) -> str:
    value = value.replace("\\", "\\\\").replace("\n", "\\n")
    return value if help_only else value.replace('"', '\\"')

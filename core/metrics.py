"""The metrics registry: apps contribute families of series with `register()` from their AppConfig.ready;
`config.metrics` renders them for GET /metrics in Prometheus text format."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Family:
    """One metric family: name, help, type and its samples (labels, value; suffix for histograms)."""

    name: str
    help: str
    type: str
    samples: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)

    def add(self, labels: dict[str, Any], value: Any, suffix: str = "") -> None:
        self.samples.append((suffix, labels, float(value)))


Collector = Callable[[], Iterable[Family]]
_collectors: list[Collector] = []


def register(collector: Collector) -> None:
    if collector not in _collectors:
        _collectors.append(collector)


def _escape(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value) if value != int(value) else str(int(value))


def render(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for suffix, labels, value in family.samples:
            text = ",".join(f'{name}="{_escape(label)}"' for name, label in labels.items())
            lines.append(f"{family.name}{suffix}{{{text}}} {_number(value)}" if text else
                         f"{family.name}{suffix} {_number(value)}")  # fmt: skip
    return "\n".join(lines) + "\n"


def collect() -> list[Family]:
    return [family for collector in _collectors for family in collector()]

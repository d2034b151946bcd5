"""Result tables shared by every benchmark: absolute numbers, ratios, targets.

A :class:`Comparison` collects one value per variant per round. Ratios are
*speed* ratios (``1.0x`` = as fast as the baseline, ``0.5x`` = half the
throughput or twice the time), taken per round between variants measured
back to back and then reduced to their median, which cancels most of the
drift of a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

__all__ = ["RESULTS", "Comparison", "Target", "parser", "save"]

RESULTS = Path(__file__).resolve().parent / "results"


def parser(name: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark accepts."""
    out = argparse.ArgumentParser(prog=f"python -m bench {name}", description=description)
    out.add_argument("--quick", action="store_true", help="a short smoke run (fewer rounds)")
    out.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    out.add_argument("--save", action="store_true", help="also write bench/results/*.json")
    return out


def save(name: str, results: list[Comparison], **context: object) -> Path:
    """Write ``results`` (and ``context``) to ``bench/results/<name>-<time>.json``."""
    now = datetime.now(UTC)
    doc = {"benchmark": name, "date": now.isoformat(timespec="seconds"), **context}
    doc["tables"] = [result.summary() for result in results]
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}-{now:%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return path


@dataclass(frozen=True, slots=True)
class Target:
    """``subject`` must reach ``minimum`` times the speed of ``baseline``."""

    subject: str
    baseline: str
    minimum: float


@dataclass
class Comparison:
    """Values of several variants measured in interleaved rounds.

    Attributes:
        title: the table's title.
        unit: unit of the values (``req/s``, ``µs/req``).
        higher_is_better: ``True`` for throughput, ``False`` for time.
        names: variant key to display name, in display order.
        baselines: variant keys that get a ratio column.
        targets: ratios that must be met.
        gating: whether ``--check`` counts this table's targets (a table
            that only corroborates another one shows them, marked ``info``).
        notes: lines printed under the table.
    """

    title: str
    unit: str
    higher_is_better: bool
    names: dict[str, str]
    baselines: tuple[str, ...] = ()
    targets: tuple[Target, ...] = ()
    gating: bool = True
    notes: list[str] = field(default_factory=list)
    rounds: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, value: float) -> None:
        """Record one round's value of variant ``key``."""
        self.rounds.setdefault(key, []).append(value)

    def median(self, key: str) -> float:
        """The median value of a variant."""
        return statistics.median(self.rounds[key])

    def ratio(self, subject: str, baseline: str) -> float:
        """Median per-round speed ratio of ``subject`` to ``baseline``."""
        pairs = zip(self.rounds[subject], self.rounds[baseline], strict=False)
        if self.higher_is_better:
            ratios = [s / b for s, b in pairs if b > 0]
        else:
            ratios = [b / s for s, b in pairs if s > 0]
        return statistics.median(ratios) if ratios else float("nan")

    def met(self) -> bool:
        """Whether every target is met (always true when not gating)."""
        met = (self.ratio(t.subject, t.baseline) >= t.minimum for t in self.targets)
        return not self.gating or all(met)

    def summary(self) -> dict[str, object]:
        """Medians, rounds, ratios and targets as a JSON-ready dict."""
        return {
            "title": self.title,
            "unit": self.unit,
            "median": {key: self.median(key) for key in self.rounds},
            "rounds": self.rounds,
            "ratios": {
                f"{key}/{base}": self.ratio(key, base)
                for key in self.rounds
                for base in self.baselines
                if key != base and base in self.rounds
            },
            "targets": [
                {
                    "ratio": f"{t.subject}/{t.baseline}",
                    "minimum": t.minimum,
                    "gating": self.gating,
                    "value": self.ratio(t.subject, t.baseline),
                }
                for t in self.targets
            ],
        }

    def render(self, console: Console) -> None:
        """Print the table, the targets and the notes."""
        table = Table(title=self.title, title_justify="left")
        table.add_column("variant")
        table.add_column(f"{self.unit} (median)", justify="right")
        table.add_column("min - max", justify="right")
        for base in self.baselines:
            table.add_column(f"vs {self.names[base]}", justify="right")
        for key, name in self.names.items():
            if key not in self.rounds:
                continue
            values = self.rounds[key]
            row = [name, _fmt(self.median(key)), f"{_fmt(min(values))} - {_fmt(max(values))}"]
            row += [
                "—" if key == b or b not in self.rounds else f"{self.ratio(key, b):.2f}x"
                for b in self.baselines
            ]
            table.add_row(*row)
        console.print(table)
        for target in self.targets:
            value = self.ratio(target.subject, target.baseline)
            ok = value >= target.minimum
            verdict = "[green]met[/green]" if ok else "[red]MISSED[/red]"
            if not self.gating:
                verdict = f"{'met' if ok else 'missed'} (info only: --check reads the table above)"
            console.print(
                f"  target: {self.names[target.subject]} / {self.names[target.baseline]}"
                f" = {value:.2f}x, needs >= {target.minimum:.2f}x: {verdict}"
            )
        for note in self.notes:
            console.print(f"  {note}", highlight=False)
        console.print()


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:,.1f}"

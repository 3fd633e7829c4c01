"""What the benchmark scripts share: the table row, the ratio verdict, the machine line, the table."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Row:
    figure: str
    edgelr: str
    reference: str
    ratio: str
    target: str
    verdict: str


def at_most(figure: str, edgelr: float, reference: float, limit: float | None, fmt: Callable[[float], str]) -> Row:
    """A row for 'edgelr takes at most limit times the reference' (limit None: shown, no target)."""
    ratio = edgelr / reference
    if limit is None:
        return Row(figure, fmt(edgelr), fmt(reference), f"{ratio:.2f}×", "—", "—")
    return Row(figure, fmt(edgelr), fmt(reference), f"{ratio:.2f}×", f"≤ {limit:g}×",
               "PASS" if ratio <= limit else "MISS")


def machine_line() -> str:
    """CPU model, cores, RAM and the load average: a busy neighbour shows here."""
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as handle:
        cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    usable = len(os.sched_getaffinity(0))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    return (f"machine: {cpu}, {os.cpu_count()} cores ({usable} usable), {ram:.0f} GiB RAM, "
            f"{platform.system()} {platform.machine()}; load average at start {load}")


def table(rows: list[Row]) -> list[str]:
    """The rows as an aligned Markdown table."""
    header = ["figure", "edgelr", "reference", "ratio", "target", ""]
    cells = [header] + [[r.figure, r.edgelr, r.reference, r.ratio, r.target, r.verdict] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cell, widths)) + " |" for cell in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return lines

"""Run every benchmark module (or those named on the command line) and print one table.

python -m benchmarks                # all
python -m benchmarks webhook audit  # bench_webhook.py and bench_audit.py only
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path

from benchmarks.common import Row


def _modules(selected: list[str]) -> list[str]:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if selected:
        names = [n for n in names if n.removeprefix("bench_") in selected]
    return names


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.3g}"


def main(argv: list[str]) -> int:
    rows: list[tuple[str, Row]] = []
    for name in _modules(argv):
        started = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        for row in module.run():
            rows.append((name.removeprefix("bench_"), row))
        print(f"  {name} took {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    header = ("bench", "measurement", "value", "unit", "baseline", "ratio", "note")
    table = [header]
    for bench, row in rows:
        ratio = row.ratio
        table.append(
            (
                bench,
                row.name,
                _fmt(row.value),
                row.unit,
                "" if row.baseline is None else _fmt(row.baseline),
                "" if ratio is None else f"{ratio:.2f}",
                row.note,
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for i, line in enumerate(table):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Probe: which echo views carry which phenotype, read through a pretrained echo tower.

    python bench/probe_tower_views.py --tower DIR --cohort DIR [--cache DIR] [--json-out FILE]

For the labelled clips of the cohort's train and val splits (the pairs CSV's), a ridge probe on
the frozen tower's per-clip features is fitted on train and scored on val (trainer.view_probe):
per view, per clip whatever its view, and per study (the mean of its clips' features), for the
tower's fields and the wall-motion index (wmsi, which the tower is not trained on). The table is
checked against the published ordering (issue 21: LV volumes, EF and wall motion best in
A2C/A4C, PSAX between, PLAX weakest; walls in PLAX/PSAX; LA in A4C > A2C >> PSAX/PLAX; RV in A4C,
almost nothing in A2C; a study-over-clip LVEF R2 gain of about +0.11). The tower's own head r per
view (what `e2r train-echo` records) is printed beside it. `e2r synth-report OUT --tower DIR`
prints the same table. Exit 1 when an expectation fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from trainer.view_probe import format_table, probe_views, view_expectations


def _print(rows: list[dict], columns: list[str]) -> None:
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tower", type=Path, required=True)
    ap.add_argument("--cohort", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=Path("bench_out/cache"))
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args(argv)
    table = probe_views(args.tower, args.cohort, args.cache, progress=False)
    expectations = view_expectations(table)
    print(f"Linear probe, val Pearson r ({table.summary['probe']})")
    _print(format_table(table), ["row", "val n", *table.fields])
    head_fields = [f for f in table.fields if any(f in v for v in table.head_r.values())]
    print("\nThe tower's own head, val Pearson r")
    _print(format_table(table, table.head_r), ["row", "val n", *head_fields])
    print("\nAgainst the published ordering")
    _print([{"expectation": f.name, "margin": f"{f.value:.3f}", "bar": f.threshold,
             "ok": "yes" if f.passed else "NO", "detail": f.detail} for f in expectations],
           ["expectation", "margin", "bar", "ok", "detail"])
    if args.json_out:
        args.json_out.write_text(json.dumps({**table.as_dict(), "expectations": [asdict(f) for f in expectations]},
                                            indent=2))
    return 0 if all(f.passed for f in expectations) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Probe: which echo views carry which phenotype, read through a pretrained echo tower.

    python bench/probe_tower_views.py --tower DIR --cohort DIR [--cache DIR]

For every validation video of the cohort (the pairs CSV's val split) the tower predicts the
study's phenotypes; the Pearson r per view and per field says whether the views carry
complementary information (SPEC.md: walls best in PLAX/PSAX, LA in A4C/A2C/PLAX, RV in A4C/PSAX),
which is what multi-view aggregation can exploit over a single view. Prints a table; --json-out
writes it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from e2r.echo_tower import load_echo_tower
from trainer.config import make_train_config
from trainer.echo_pretrain import ECHO_DEFAULTS, EchoTowerTask, load_echo_data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tower", type=Path, required=True)
    ap.add_argument("--cohort", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=Path("bench_out/cache"))
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args(argv)
    tower, meta = load_echo_tower(args.tower)
    cfg = make_train_config(args.cohort, args.cache, defaults=ECHO_DEFAULTS, cache_dir=str(args.cache),
                            workers=2, progress=False)
    data = load_echo_data(cfg, tower.cfg, tuple(meta["fields"]), min_studies=2)
    task = EchoTowerTask(cfg, data, tower.cfg)
    task.model = tower
    table = task.view_figures()
    fields = list(meta["fields"])
    print("view   videos  " + "  ".join(f"{f:>11s}" for f in fields))
    for view, row in table.items():
        print(f"{view:6s} {row['videos']:6d}  " + "  ".join(f"{row[f]:11.3f}" for f in fields))
    if args.json_out:
        args.json_out.write_text(json.dumps({"tower": str(args.tower), "hash": meta["hash"], "by_view": table}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

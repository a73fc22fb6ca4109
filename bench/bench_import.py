"""Streaming import of MIMIC-IV-ECHO's long structured_measurement.csv.gz: time and peak RSS.

The real file is ~28M rows / 2.6 GB (uncompressed). This writes a synthetic file of the same
shape (8 columns, MIMIC-like names and result strings, ~4 % of rows for wanted fields of wanted
studies) with N rows, then runs `e2r.datasets.mimic_echo.import_mimic_echo` on it in a child
process and reports rows/s and the child's peak RSS (/proc/self/status VmHWM and
resource.getrusage's ru_maxrss), and a linear
extrapolation of the time to 28M rows. Memory does not grow with the row count (one row at a time;
only the wanted values of the study list's measurement IDs are kept).

    python bench/bench_import.py --rows 3000000 --studies 7500 --ids 300000
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COLUMNS = ("subject_id", "measurement_id", "measurement_datetime", "test_type", "measurement",
           "measurement_description", "result", "unit")
# 40 measurement names per report, 8 of which the importer uses (as in the real file, most are not).
NAMES = ("biplane_lvef", "septal_thickness", "inf_lat_thickness", "lvedd", "la_vol", "resting_hr", "biplane_lvedv",
         "biplane_lvesv", *(f"other_{i}" for i in range(32)))
RESULTS = ("55%", "1.1", "10", "4.8", "62", "72", "120", "50", "<2.0", "1.5-2.0")

CHILD = r"""
import datetime, json, resource, sys, time
from e2r.datasets.mimic_echo import EchoStudy, import_mimic_echo
n = int(sys.argv[2]); ids = int(sys.argv[3])
step = max(1, ids // n)
studies = {str(i): EchoStudy(str(10000000 + i), str(i), datetime.datetime(2180, 1, 1), (f"{70000000 + i * step}",))
           for i in range(n)}
t = time.perf_counter()
rows, s = import_mimic_echo(sys.argv[1], studies, {})
# VmHWM: this program's own peak RSS (ru_maxrss can carry the parent's across fork + exec).
try:
    hwm = next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM:")) / 1024
except (OSError, StopIteration):
    hwm = None
print(json.dumps({"rows_read": s.rows_read, "rows_used": s.rows_used, "seconds": time.perf_counter() - t,
                  "studies_with_lvef": s.values["lvef"], "peak_rss_mb_vmhwm": hwm,
                  "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_file(path: Path, rows: int, ids: int) -> float:
    """Write the synthetic long file; returns its uncompressed size in bytes."""
    size = 0
    with gzip.open(path, "wt", compresslevel=1, newline="") as fh:
        line = ",".join(COLUMNS) + "\n"
        fh.write(line)
        size += len(line)
        for i in range(rows):
            report, k = divmod(i, len(NAMES))
            mid = 70000000 + report % ids
            test = "TEE" if report % 11 == 0 else ("TTE" if report % 2 else "tte")
            line = (f"{10000000 + mid % 90000},{mid},2180-01-01 10:00:00,{test},{NAMES[k]},"
                    f"{NAMES[k].replace('_', ' ')},{RESULTS[k % len(RESULTS)]},cm\n")
            fh.write(line)
            size += len(line)
    return float(size)


def main() -> None:
    """Parse flags, write the file, run the import in a child process, print one JSON document."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=3_000_000)
    ap.add_argument("--studies", type=int, default=7_500, help="studies in the study list (MIMIC-IV-ECHO: ~7.2k)")
    ap.add_argument("--ids", type=int, default=300_000, help="distinct measurement IDs in the file")
    ap.add_argument("--keep", type=Path, default=None, help="write the file here and keep it")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "structured_measurement.csv.gz"
        t0 = time.perf_counter()
        raw = write_file(path, args.rows, args.ids)
        write_s = time.perf_counter() - t0
        out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(args.studies), str(args.ids)],
                             capture_output=True, text=True, check=True)
        res = json.loads(out.stdout)
        res.update(rows=args.rows, gz_mb=path.stat().st_size / 2**20, raw_mb=raw / 2**20, write_s=write_s,
                   rows_per_s=args.rows / res["seconds"],
                   extrapolated_s_28M_rows=28_000_000 / (args.rows / res["seconds"]))
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in res.items()}, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: write a phantom cohort at default video size and report speed and DICOM sizes.

Usage: python bench/bench_synth.py [N_PATIENTS=1000] [WORKERS=2] [OUT_DIR]
The numbers are for synthetic data on this machine; other processes sharing the CPU slow it down.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from e2r.phantom import write_cohort


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    out = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(tempfile.mkdtemp(prefix="e2r_bench_synth_"))
    if out.exists() and any(out.iterdir()):
        sys.exit(f"Error: {out} is not empty; give a new or empty folder (the benchmark never deletes yours)")
    summary = write_cohort(out, n, seed=0, workers=workers)
    result = {
        "patients": summary.patients, "studies": summary.studies, "videos": summary.videos,
        "ecgs": summary.ecgs, "workers": workers, "cpu_count": os.cpu_count(),
        "seconds": round(summary.seconds, 1), "patients_per_s": round(summary.patients_per_s, 2),
        "dicom_kb_mean": round(summary.dicom_bytes_mean / 1024, 1),
        "dicom_kb_max": round(summary.dicom_bytes_max / 1024, 1),
        "load_avg_1min": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(result, indent=2))
    if len(sys.argv) <= 3:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Q waves per coronary territory: phantom v2 ECGs against the real PTB-XL records.

    python bench/probe_qwaves.py [--per-territory 200] [--seed 0] [--data ../shared/data]

Measures the same thing on both sides with e2r.phantom.qwaves (XQRS fiducials, median beat,
Fourth Universal Definition Q-wave criteria, R in V3): the share of ECGs with pathological Q
waves in two contiguous leads of each territory's facing group (anterior V1-V4, lateral I/aVL/
V5-V6, inferior II/III/aVF), poor R-wave progression (R V3 <= 0.3 mV) and the median R in V3.
Phantom rows: version 2 hearts (e2r.phantom.latent_v2) with a single infarcted territory (or
none), each ECG from e2r.phantom.ecg_synth.synth_ecg at 500 Hz. Real rows: the 500 PTB-XL records
of ../shared/data/ecg/ptbxl by their scp_codes (a record counts for each MI code it carries).
PTB-XL is validation only: nothing here is fitted on it. Skips with a message without the data.
"""

from __future__ import annotations

import argparse
import ast
import csv
import sys
from pathlib import Path

import numpy as np

from e2r.phantom.qwaves import FACING_LEADS, QWaveMeasures, measure_qwaves

ROOT = Path(__file__).resolve().parents[1]
PTBXL_CODES = ("NORM", "ASMI", "AMI", "IMI", "ILMI", "LMI")
PTBXL_TERRITORY = {"NORM": "none", "ASMI": "LAD", "AMI": "LAD", "IMI": "RCA", "ILMI": "RCA+LCx", "LMI": "LCx"}


def phantom_measures(per_territory: int, seed: int) -> dict[str, list[QWaveMeasures]]:
    """Q-wave measures of phantom v2 ECGs, `per_territory` hearts each of territory none, LAD,
    LCx and RCA (single territories, drawn from the v2 cohort distribution)."""
    from e2r.phantom import latent_v2
    from e2r.phantom.ecg_synth import synth_ecg

    rng = np.random.default_rng(seed)
    out: dict[str, list[QWaveMeasures]] = {t: [] for t in ("none", "LAD", "LCx", "RCA")}
    while min(len(v) for v in out.values()) < per_territory:
        exam = latent_v2.draw_baseline_exam(rng)
        if exam.territory not in out or len(out[exam.territory]) >= per_territory:
            continue
        sig, _ = synth_ecg(exam, rng, 500.0)
        out[exam.territory].append(measure_qwaves(sig, 500.0))
    return out


def ptbxl_measures(ptbxl: Path) -> dict[str, list[QWaveMeasures]]:
    """Q-wave measures of the PTB-XL records by SCP code (500 Hz files)."""
    import wfdb

    out: dict[str, list[QWaveMeasures]] = {c: [] for c in PTBXL_CODES}
    with (ptbxl / "ptbxl_database.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        codes = [c for c in ast.literal_eval(row["scp_codes"]) if c in out]
        if not codes:
            continue
        rec = wfdb.rdrecord(str(ptbxl / row["filename_hr"]))
        names = [n.upper() for n in rec.sig_name]
        order = [names.index(n) for n in ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")]
        m = measure_qwaves(rec.p_signal.T[order], float(rec.fs))
        for c in codes:
            out[c].append(m)
    return out


def summary(ms: list[QWaveMeasures]) -> dict[str, float]:
    """Group Q-wave rates, poor R progression rate and median R V3 of a set of ECGs."""
    row = {f"q_{t}": float(np.mean([t in m.groups for m in ms])) for t in FACING_LEADS}
    row["prwp"] = float(np.mean([m.poor_r_progression for m in ms]))
    row["r_v3"] = float(np.median([m.r_v3_mv for m in ms]))
    return row


def table(rows: list[tuple[str, str, list[QWaveMeasures]]]) -> str:
    """A markdown table: source, label, n, Q in each territory's facing leads, PRWP, R V3."""
    head = ("| source | label (territory) | n | Q in V1-V4 (LAD) | Q in I/aVL/V5-V6 (LCx) | "
            "Q in II/III/aVF (RCA) | R V3 <= 0.3 mV | median R V3, mV |")
    lines = [head, "|" + "---|" * 8]
    for source, label, ms in rows:
        if not ms:
            continue
        s = summary(ms)
        lines.append(f"| {source} | {label} | {len(ms)} | {s['q_LAD']:.2f} | {s['q_LCx']:.2f} | "
                     f"{s['q_RCA']:.2f} | {s['prwp']:.2f} | {s['r_v3']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-territory", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args(argv)
    ptbxl = args.data / "ecg" / "ptbxl"
    if not (ptbxl / "ptbxl_database.csv").is_file():
        print(f"skipped: no PTB-XL records at {ptbxl} (see ../shared/data/README.md)")
        return 0
    rows: list[tuple[str, str, list[QWaveMeasures]]] = []
    real = ptbxl_measures(ptbxl)
    rows += [("PTB-XL", f"{c} ({PTBXL_TERRITORY[c]})", real[c]) for c in PTBXL_CODES]
    lad = real["ASMI"] + [m for m in real["AMI"] if m not in real["ASMI"]]
    rows.append(("PTB-XL", "ASMI or AMI (LAD)", lad))
    phantom = phantom_measures(args.per_territory, args.seed)
    rows += [("phantom v2", t, ms) for t, ms in phantom.items()]
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A stand-in query ECG for tests and benchmarks: a seeded 12-lead record that every ECG reader
and the search path accept, with no phantom heart behind it (the cohort's ECGs, written by
`cohort`, carry one; this one is only noise and a pulse train).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from e2r.phantom.writers import write_ecg_wfdb


def write_pulse_ecg(folder: str | Path, name: str, seed: int = 0, fs: int = 500) -> Path:
    """Write `<folder>/<name>.hea/.dat`: 10 s, 12 leads in canonical order, in mV, of seeded noise
    plus a beat-like pulse every 0.8 s (each lead its own amplitude); returns the header's path."""
    rng = np.random.default_rng(seed)
    t = np.arange(10 * fs) / fs
    beats = np.exp(-((t % 0.8) - 0.3) ** 2 / (2 * 0.01 ** 2))
    sig = beats[:, None] * rng.uniform(0.3, 1.5, 12) + 0.02 * rng.standard_normal((t.size, 12))  # (T, 12)
    folder = Path(folder)
    write_ecg_wfdb(folder, name, sig.T, fs, "standard")
    return folder / f"{name}.hea"

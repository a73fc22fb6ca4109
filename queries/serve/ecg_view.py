"""The ECG as the viewer draws it: the 12 canonical leads in mV, at most 10 s, at a display rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: Display rate: 4 ms per sample is finer than the 1 mm (40 ms) grid the viewer draws.
DISPLAY_FS = 250.0
WINDOW_S = 10.0


def ecg_for_display(path: str | Path) -> dict[str, Any]:
    """Read an ECG (any reader e2r has) and return {fs, leads, duration_s, signal: 12 lists of mV}.

    Raises the reader's ECGReadError / DicomReadError for a file e2r cannot read.
    """
    from scipy.signal import resample_poly

    from e2r.ecg import read_ecg

    record = read_ecg(path)
    sig = np.asarray(record.signal, dtype=np.float64)[:, : int(round(WINDOW_S * record.fs))]  # (12, T)
    fs = float(record.fs)
    if fs > DISPLAY_FS:
        filled = np.nan_to_num(sig)  # the polyphase filter cannot pass NaN: gaps are drawn flat, empty leads stay null
        up, down = _ratio(DISPLAY_FS, fs)
        sig = np.where(np.isnan(sig).all(axis=1, keepdims=True), np.nan, 0.0)[:, :1] + resample_poly(filled, up, down, axis=1)
        fs = DISPLAY_FS
    rounded = np.round(sig, 3)
    signal = rounded.tolist()  # plain floats at C speed; NaN (no value) becomes null below
    if np.isnan(rounded).any():
        signal = [[None if v != v else v for v in lead] for lead in signal]
    return {
        "fs": fs,
        "leads": list(record.leads),
        "duration_s": round(sig.shape[1] / fs, 3),
        "derived_leads": list(record.derived),
        "signal": signal,
    }


def _ratio(target: float, source: float) -> tuple[int, int]:
    """Integer up/down factors with up/down ~= target/source."""
    from fractions import Fraction

    frac = Fraction(target / source).limit_denominator(1000)
    return frac.numerator, frac.denominator

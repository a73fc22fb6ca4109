"""WFDB records written the way public ECG collections really write them (no real data), for the
header quirks e2r reads. Each writer cites where the form comes from.

    georgia_signal(n, fs) -> (12, n) mV in canonical lead order, limb leads obeying Einthoven
    write_georgia_original(folder, name, signal, ...) -> header path
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def georgia_signal(n: int = 5000, fs: float = 500.0, seed: int = 0) -> np.ndarray:
    """(12, n) mV: Gaussian P-QRS-T beats, the limb leads derived from I and II exactly, so a
    reader that mixes up leads or scales is caught."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    beat = np.zeros(n)
    for start in np.arange(0.3, n / fs, 0.85):
        for offset, width, amp in ((-0.16, 0.025, 0.15), (0.0, 0.012, 1.2), (0.25, 0.05, 0.3)):
            beat += amp * np.exp(-0.5 * ((t - start - offset) / width) ** 2)
    lead_i, lead_ii = 0.6 * beat, beat + 0.01 * rng.standard_normal(n)
    limb = [lead_i, lead_ii, lead_ii - lead_i, -(lead_i + lead_ii) / 2, lead_i - lead_ii / 2, lead_ii - lead_i / 2]
    chest = [(k - 2.5) * 0.4 * beat + 0.01 * rng.standard_normal(n) for k in range(6)]
    return np.stack(limb + chest)


def _matlab_v4(adu: np.ndarray) -> bytes:
    """A MATLAB v4 file holding the (12, T) int16 matrix `val`, as the CinC 2020/2021 `.mat` files do:
    a 20-byte header (type 30 = little-endian int16, rows, columns, no imaginary part, name length),
    the name "val\\0" (24 bytes in all: the `+24` byte offset in their headers), then the samples
    column-major (one frame of 12 samples after another)."""
    rows, cols = adu.shape
    return struct.pack("<5i", 30, rows, cols, 0, 4) + b"val\0" + np.ascontiguousarray(adu.T).astype("<i2").tobytes()


def write_georgia_original(folder: Path, name: str = "E00271", signal: np.ndarray | None = None,
                           fs: int = 500, gain: float = 1000.0, when: str = "05-May-2020 14:50:55",
                           record: str | None = None) -> Path:
    """A CinC 2020/2021 Georgia (G12EC) record in its original form: the record line names the
    record with its signal file's extension and writes the date as dd-Mon-yyyy before the time;
    the signal lines write `16+24` and `gain/mV` without a baseline (wfdb then takes the ADC zero, 0).

    Real headers of this form: E07835 of physionet.org/content/challenge-2021/1.0.2, quoted in
    https://github.com/MIT-LCP/wfdb-python/issues/351 (`E07835.mat 12 500 5000 05-May-2020 09:49:17`,
    `E07835.mat 16+24 1000/mV 16 0 -268 14726 0 I`); E00001 of the CinC 2020 Georgia set is the same
    with gain 4880/mV. wfdb-python issue 415 lists the date-before-time form for both challenges.
    `record`: the name written on the record line (default `<name>.mat`; `name` gives the form of
    the other CinC sources and of Chapman-Shaoxing/Ningbo, e.g. `JS00001 12 500 5000 23-Mar-2021 20:20:47`).
    """
    signal = georgia_signal(fs=fs) if signal is None else signal
    adu = np.clip(np.round(signal * gain), -32767, 32767).astype(np.int16)  # (12, T)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.mat").write_bytes(_matlab_v4(adu))
    lines = [f"{record or name + '.mat'} 12 {fs} {adu.shape[1]} {when}".rstrip()]
    for k, lead in enumerate(LEADS):
        checksum = int(adu[k].astype(np.int64).sum() % 65536)
        checksum = checksum - 65536 if checksum > 32767 else checksum  # written signed, as theirs are
        lines.append(f"{name}.mat 16+24 {gain:g}/mV 16 0 {int(adu[k, 0])} {checksum} 0 {lead}")
    lines += ["#Age: 71", "#Sex: Female", "#Dx: 270492004,39732003", "#Rx: Unknown", "#Hx: Unknown"]
    header = folder / f"{name}.hea"
    header.write_text("\n".join(lines) + "\n")
    return header

"""ECG reading: real records (PTB, CinC 2021, pydicom's DICOM ECG), records written here with
wfdb in any lead order, rate, unit and format, and every bad input a user can hand over."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import wfdb

from e2r.ecg import CANONICAL_LEADS, ECGRecord, read_ecg
from e2r.ecg.leads import canonical_lead
from e2r.errors import ECGReadError

SHARED_ECG = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ecg"
needs_shared = pytest.mark.skipif(not SHARED_ECG.is_dir(), reason="../shared/data/ecg not present")

_TO_UNIT = {"mV": 1.0, "uV": 1000.0, "V": 0.001}
_GAIN_PER_MV = {"16": 1000.0, "212": 200.0}  # adu per mV that fit int16 / 12-bit ranges


def synthetic_ecg(fs: float, seconds: float, seed: int = 0) -> dict[str, np.ndarray]:
    """A 12-lead ECG in mV: a 3-D dipole with P, QRS and T bumps projected on the leads, limb leads
    obeying Einthoven/Goldberger exactly, so a reader that mixes up leads is caught."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(fs * seconds))) / fs
    dipole = np.zeros((3, t.size))
    for beat in np.arange(0.3, seconds, 0.8 + 0.05 * rng.random()):
        for offset, width, amp in ((-0.16, 0.025, 0.15), (0.0, 0.012, 1.2), (0.25, 0.05, 0.3)):
            direction = rng.normal(size=3) * 0.2 + np.array([1.0, 0.6, -0.3])
            dipole += np.outer(direction, amp * np.exp(-0.5 * ((t - beat - offset) / width) ** 2))
    lead_i = dipole[0]
    lead_ii = 0.5 * dipole[0] + 0.87 * dipole[1]
    leads = {
        "I": lead_i,
        "II": lead_ii,
        "III": lead_ii - lead_i,
        "aVR": -(lead_i + lead_ii) / 2,
        "aVL": lead_i - lead_ii / 2,
        "aVF": lead_ii - lead_i / 2,
    }
    for k in range(1, 7):
        leads[f"V{k}"] = rng.normal(size=3) @ dipole
    return leads


def write_record(
    folder: Path,
    name: str,
    signals: dict[str, np.ndarray],
    fs: float,
    units: str = "mV",
    fmt: str = "16",
) -> Path:
    """Write a WFDB record whose channels are `signals` (file name -> mV) in dict order."""
    names = list(signals)
    p_signal = np.stack([signals[n] for n in names], axis=1) * _TO_UNIT[units]
    gain = _GAIN_PER_MV[fmt] / _TO_UNIT[units]
    wfdb.wrsamp(
        name, fs=fs, units=[units] * len(names), sig_name=names, p_signal=p_signal,
        fmt=[fmt] * len(names), adc_gain=[gain] * len(names), baseline=[0] * len(names),
        write_dir=str(folder),
    )
    return folder / name


def as_canonical(leads: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([leads[n] for n in CANONICAL_LEADS])


# ---------------------------------------------------------------- lead names


@pytest.mark.parametrize(
    "name, expected",
    [
        ("i", ("I", 1.0)), ("I", ("I", 1.0)), ("lead I", ("I", 1.0)), ("Lead I (Einthoven)", ("I", 1.0)),
        ("DII", ("II", 1.0)), ("iii", ("III", 1.0)), ("AVR", ("aVR", 1.0)), ("avr", ("aVR", 1.0)),
        ("-aVR", ("aVR", -1.0)), ("aVF", ("aVF", 1.0)), ("v1", ("V1", 1.0)), ("C6", ("V6", 1.0)),
        ("MDC_ECG_LEAD_AVL", ("aVL", 1.0)), ("vx", None), ("V7", None), ("ABP", None), ("II rhythm", None),
    ],
)
def test_canonical_lead_aliases(name, expected):
    assert canonical_lead(name) == expected


# ---------------------------------------------------------------- real data


def _real_headers() -> list[Path]:
    if not SHARED_ECG.is_dir():
        return []
    return sorted(SHARED_ECG.glob("*/*.hea"))


@pytest.mark.shared_data
@needs_shared
@pytest.mark.parametrize("header", _real_headers(), ids=lambda p: p.stem)
def test_real_records_read_to_12_plausible_leads(header):
    record = read_ecg(header.with_suffix(".mat") if header.with_suffix(".mat").exists() else header)
    is_ptb = header.parent.name == "ptbdb"
    assert record.fs == (1000.0 if is_ptb else 500.0)
    assert record.signal.shape == (12, 38400 if is_ptb else 5000)
    assert record.signal.dtype == np.float32
    assert record.leads == CANONICAL_LEADS and record.derived == ()
    x = record.signal
    assert np.isfinite(x).all()
    assert (np.abs(x) < 5.0).mean() > 0.999  # mV, not uV or adu
    assert np.ptp(x, axis=1).max() > 0.3  # a real QRS somewhere
    # Einthoven's law holds in every real record, so the limb leads were mapped by name correctly.
    i, ii, iii = x[0], x[1], x[2]
    assert np.abs(iii - (ii - i)).mean() < 0.02


@pytest.mark.shared_data
@needs_shared
def test_ptb_record_by_every_name_and_frank_leads_ignored():
    base = SHARED_ECG / "ptbdb" / "s0010_re"
    records = [read_ecg(p) for p in (base, f"{base}.hea", f"{base}.dat", f"{base}.xyz")]
    for record in records[1:]:
        np.testing.assert_array_equal(record.signal, records[0].signal)
    assert records[0].source_leads == (
        "i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6", "vx", "vy", "vz",
    )
    assert records[0].record_name == "s0010_re"
    assert records[0].duration_s == pytest.approx(38.4)
    assert records[2].path == f"{base}.dat"


@pytest.mark.shared_data
@needs_shared
def test_real_record_with_flat_leads_warns(caplog):
    with caplog.at_level(logging.WARNING):
        record = read_ecg(SHARED_ECG / "cinc2021" / "JS20004")
    flat = [w for w in record.warnings if "flat" in w]
    assert flat == [f"lead {lead} is flat (constant signal)" for lead in ("V2", "V4", "V6")]
    assert "V4 is flat" in caplog.text


def test_pydicom_waveform_ecg():
    from pydicom import dcmread, examples

    path = examples.get_path("waveform")
    record = read_ecg(path)
    ds = dcmread(path)
    assert record.fs == 1000.0 and record.duration_s == pytest.approx(10.0)
    assert record.signal.shape == (12, 10000)
    assert record.record_name == ds.SOPInstanceUID
    assert record.source_leads[:2] == ("Lead I (Einthoven)", "Lead II")
    raw = ds.waveform_array(0)  # uV, rhythm group
    np.testing.assert_allclose(record.signal, (raw.T / 1000.0).astype(np.float32), rtol=1e-6)
    assert np.abs(record.signal).max() < 5.0 and np.ptp(record.signal, axis=1).min() > 0.1


# ---------------------------------------------------------------- records written here


@pytest.mark.parametrize("fs, units, fmt", [(250, "uV", "16"), (500, "mV", "212"), (1000, "V", "16")])
def test_shuffled_order_rates_units_formats(tmp_path, fs, units, fmt):
    truth = synthetic_ecg(fs, 4.0, seed=fs)
    order = list(CANONICAL_LEADS)
    np.random.default_rng(fs).shuffle(order)
    file_names = {"I": "i", "aVR": "AVR", "V1": "v1", "aVL": "avl", "V6": "C6"}
    written = {file_names.get(lead, lead): truth[lead] for lead in order}
    base = write_record(tmp_path, "rec", written, fs, units, fmt)
    record = read_ecg(base)
    assert record.fs == fs and record.source_leads == tuple(written)
    assert record.derived == ()
    tol = 1.0 / _GAIN_PER_MV[fmt]  # one quantisation step in mV
    np.testing.assert_allclose(record.signal, as_canonical(truth), atol=tol)


def test_mimic_order_avf_before_avl_is_reordered(tmp_path):
    truth = synthetic_ecg(500, 3.0)
    mimic = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]
    base = write_record(tmp_path, "mimic", {n: truth[n] for n in mimic}, 500)
    record = read_ecg(f"{base}.hea")
    np.testing.assert_allclose(record.signal[4], truth["aVL"], atol=1e-3)
    np.testing.assert_allclose(record.signal[5], truth["aVF"], atol=1e-3)


def test_missing_limb_leads_derived_and_extra_leads_ignored(tmp_path):
    truth = synthetic_ecg(500, 3.0, seed=3)
    written = {n: truth[n] for n in ("V3", "I", "V1", "V2", "II", "V4", "V5", "V6")}
    written.update(vx=truth["V1"] * 0.3, vy=truth["V2"] * 0.2, RESP=np.sin(np.arange(1500) / 100))
    written["lead II"] = truth["II"] * 0.5  # a rhythm strip named like lead II: the first II wins
    base = write_record(tmp_path, "derive", written, 500)
    record = read_ecg(f"{base}.dat")
    assert record.derived == ("III", "aVR", "aVL", "aVF")
    np.testing.assert_allclose(record.signal, as_canonical(truth), atol=2e-3)
    assert any("appears again" in w for w in record.warnings)


def test_inverted_avr_is_flipped(tmp_path):
    truth = synthetic_ecg(500, 2.0, seed=4)
    written = {("-aVR" if n == "aVR" else n): (-truth[n] if n == "aVR" else truth[n]) for n in CANONICAL_LEADS}
    record = read_ecg(write_record(tmp_path, "inv", written, 500))
    np.testing.assert_allclose(record.signal[3], truth["aVR"], atol=1e-3)
    assert record.derived == ()


def test_cinc_style_mat_file_with_byte_offset(tmp_path):
    truth = synthetic_ecg(500, 2.0, seed=5)
    adu = np.round(as_canonical(truth) * 1000).astype("<i2")  # (12, T)
    # MATLAB v4 stores the (12, T) matrix column-major: one frame of 12 samples after another.
    (tmp_path / "E1.mat").write_bytes(b"\0" * 24 + adu.T.tobytes())
    lines = [f"E1 12 500 {adu.shape[1]}"] + [
        f"E1.mat 16x1+24 1000.0(0)/mv 16 0 {adu[k, 0]} 0 0 {lead}" for k, lead in enumerate(CANONICAL_LEADS)
    ]
    (tmp_path / "E1.hea").write_text("\n".join(lines) + "\n# Dx: 426783006\n")
    for name in ("E1", "E1.hea", "E1.mat"):
        record = read_ecg(tmp_path / name)
        np.testing.assert_allclose(record.signal, as_canonical(truth), atol=1e-3)


def test_nan_only_lead_is_a_warning_not_an_error(tmp_path):
    truth = synthetic_ecg(500, 2.0, seed=6)
    truth["V3"] = np.full_like(truth["V3"], np.nan)
    truth["V4"] = truth["V4"].copy()
    truth["V4"][100:150] = np.nan
    record = read_ecg(write_record(tmp_path, "nan", {n: truth[n] for n in CANONICAL_LEADS}, 500))
    assert "lead V3 has no valid samples (all NaN)" in record.warnings
    assert any(w.startswith("lead V4: 5.0% of samples missing") for w in record.warnings)
    assert np.isnan(record.signal[8]).all() and np.isnan(record.signal[9]).sum() == 50


def test_record_is_frozen(tmp_path):
    record = read_ecg(write_record(tmp_path, "fz", synthetic_ecg(250, 1.0), 250))
    assert isinstance(record, ECGRecord)
    with pytest.raises(AttributeError):
        record.fs = 1.0  # type: ignore[misc]


# ---------------------------------------------------------------- bad input


def _error(path) -> str:
    with pytest.raises(ECGReadError) as info:
        read_ecg(path)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_bad_path_not_found(tmp_path):
    message = _error(tmp_path / "nothing")
    assert str(tmp_path / "nothing") in message and "no such file" in message


def test_bad_named_header_not_found(tmp_path):
    assert _error(tmp_path / "rec.hea") == f"{tmp_path / 'rec.hea'}: no such file; check the path"


def test_bad_zero_byte_file(tmp_path):
    (tmp_path / "empty.hea").write_bytes(b"")
    assert "0 bytes" in _error(tmp_path / "empty.hea")
    (tmp_path / "empty.dcm").write_bytes(b"")
    assert "empty.dcm: file is empty" in _error(tmp_path / "empty.dcm")


def test_bad_header_whose_signal_file_is_missing(tmp_path):
    base = write_record(tmp_path, "lost", synthetic_ecg(500, 1.0), 500)
    (tmp_path / "lost.dat").unlink()
    message = _error(base)
    assert "lost.hea" in message and "signal file lost.dat is missing" in message


def test_bad_truncated_signal_file(tmp_path):
    base = write_record(tmp_path, "cut", synthetic_ecg(500, 2.0), 500)
    data = (tmp_path / "cut.dat").read_bytes()
    (tmp_path / "cut.dat").write_bytes(data[: len(data) // 2])
    message = _error(base)
    assert "cut.dat" in message and "truncated" in message


def test_bad_truncated_212_signal_file(tmp_path):
    base = write_record(tmp_path, "cut212", synthetic_ecg(500, 2.0), 500, fmt="212")
    data = (tmp_path / "cut212.dat").read_bytes()
    (tmp_path / "cut212.dat").write_bytes(data[:-7])
    assert "truncated" in _error(base)


@pytest.mark.parametrize(
    "text", ["hello, this is a letter\nnot an ECG\n", "rec 12 500 abc\n", "rec 3 500 1000\n"]
)
def test_bad_header_that_is_not_wfdb(tmp_path, text):
    (tmp_path / "rec.hea").write_text(text)
    message = _error(tmp_path / "rec.hea")
    assert "rec.hea" in message and "WFDB header" in message


def test_bad_only_three_unrelated_leads(tmp_path):
    t = np.arange(1000) / 500
    base = write_record(tmp_path, "abp", {"ABP": np.sin(t), "PLETH": np.cos(t), "RESP": np.sin(3 * t)}, 500)
    message = _error(base)
    assert "missing ECG leads I, II, III, aVR, aVL, aVF, V1, V2, V3, V4, V5, V6 " in message and "ABP, PLETH, RESP" in message


def test_bad_missing_precordial_lead(tmp_path):
    truth = synthetic_ecg(500, 1.0)
    base = write_record(tmp_path, "nov3", {n: truth[n] for n in CANONICAL_LEADS if n != "V3"}, 500)
    message = _error(base)
    assert "missing ECG leads V3 " in message


def test_bad_all_leads_flat(tmp_path):
    flat = {n: np.full(1000, 0.25) for n in CANONICAL_LEADS}
    assert "no usable lead" in _error(write_record(tmp_path, "flat", flat, 500))


def test_bad_unknown_units(tmp_path):
    base = write_record(tmp_path, "mmhg", synthetic_ecg(500, 1.0), 500)
    header = (tmp_path / "mmhg.hea").read_text().replace("/mV", "/mmHg")
    (tmp_path / "mmhg.hea").write_text(header)
    assert "unknown signal unit 'mmHg'" in _error(base)


def test_bad_signal_file_without_header(tmp_path):
    (tmp_path / "orphan.dat").write_bytes(b"\0" * 100)
    assert "without its WFDB header orphan.hea" in _error(tmp_path / "orphan.dat")


def test_bad_text_file_named_dcm(tmp_path):
    (tmp_path / "ecg.dcm").write_text("this is not DICOM\n" * 20)
    assert "not a DICOM file" in _error(tmp_path / "ecg.dcm")


def test_bad_dicom_without_waveform(tmp_path):
    from pydicom import examples

    assert "holds no waveform" in _error(examples.get_path("ct"))


def test_bad_truncated_dicom_waveform(tmp_path):
    from pydicom import dcmread, examples

    ds = dcmread(examples.get_path("waveform"))
    item = ds.WaveformSequence[0]
    item.WaveformData = item.WaveformData[: len(item.WaveformData) // 3]
    out = tmp_path / "short_ecg"  # no extension: detected by the DICM preamble
    ds.save_as(out)
    assert "cannot be decoded" in _error(out)


def test_bad_folder(tmp_path):
    assert "is a folder" in _error(tmp_path)


@pytest.mark.parametrize("fmt", ["16", "212"])
def test_signal_read_from_the_parsed_header_equals_wfdb_rdrecord(tmp_path, fmt):
    """read_wfdb reads the signals from the header it already parsed (numpy for format 16,
    wfdb's own segment reader otherwise): the values are wfdb.rdrecord's exactly, NaNs included."""
    from e2r.ecg.wfdb import _read_signals

    truth = synthetic_ecg(500, 3.0, seed=9)
    truth["V2"] = truth["V2"].copy()
    truth["V2"][10:20] = np.nan
    base = write_record(tmp_path, "eq", {n: truth[n] for n in CANONICAL_LEADS}, 500, fmt=fmt)
    channels = [0, 2, 5, 7, 11]
    expected = wfdb.rdrecord(str(base), channels=channels, physical=True, return_res=64).p_signal
    got = _read_signals(wfdb.rdheader(str(base)), str(base), channels).p_signal
    np.testing.assert_array_equal(got, expected)


def test_plain_headers_are_read_as_wfdb_reads_them(tmp_path):
    """The plain-header reader (no wfdb/pandas import on a search) gives wfdb.rdheader's fields for
    every header it accepts (real records and ones written here); other headers go to wfdb."""
    from e2r.ecg.wfdb import _header_lines, _plain_header

    written = [write_record(tmp_path, f"w{fmt}", synthetic_ecg(500, 1.0, seed=1), 500, fmt=fmt).with_suffix(".hea")
               for fmt in ("16", "212")]
    other_rate = write_record(tmp_path, "w16_250", synthetic_ecg(250, 2.0, seed=2), 250).with_suffix(".hea")
    accepted = 0
    for header_path in [*_real_headers(), *written, other_rate]:
        plain = _plain_header(_header_lines(header_path), header_path.stem)
        if plain is None:
            continue
        accepted += 1
        ref = wfdb.rdheader(str(header_path.with_suffix("")))
        for name in ("record_name", "n_sig", "fs", "sig_len", "file_name", "fmt", "byte_offset", "adc_gain",
                     "baseline", "units", "sig_name"):
            assert getattr(plain, name) == getattr(ref, name), (header_path, name)
    assert accepted >= 2
    assert _plain_header(_header_lines(written[1]), "w212") is None  # format 212: wfdb reads it

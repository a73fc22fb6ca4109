"""Seeded generator of hostile inputs for e2r's readers (run by tests/test_fuzz.py).

Three kinds of case, each a good seed file with one or more mutations applied:

  "wfdb"       WFDB ECG records (.hea + .dat/.mat). Seeds: `helpers.cohort.write_ecg` (12 leads,
               100 Hz, format 16) and, when ../shared/data/ecg is there, copies of CinC 2021
               records (.mat, format 16x1+24) and PTB s0010_re (15 signals in two files); and
               `helpers.wfdb_quirks.write_georgia_original`, a CinC Georgia record in its original
               form (`E00271.mat 12 500 5000 05-May-2020 14:50:55`, `16+24 1000/mV` signal lines).
               Mutations: every field of the record line and of the signal lines (sampling rate,
               signal count, sample count, file name, format, gain, baseline, units, ADC fields,
               lead names), line structure (dropped, duplicated, reordered lines, CRLF, BOM, NUL),
               signal file content, a Latin-1 record name, truncation and byte flips of either file.
  "dicom_ecg"  DICOM 12-lead ECG Waveform Storage. Seed: pydicom.examples "waveform" (copied).
               Mutations: WaveformSequence items and their sample counts, rates, channel counts,
               bit depths, data; channel definitions, sensitivities and units items; transfer
               syntax, deeply nested sequences, an unknown VR, truncation, byte flips.
  "echo"       DICOM ultrasound cine loops. Seeds: `helpers.dicom.write_us_dicom` (grey and RGB,
               raw and JPEG) and pydicom.examples "ybr_color" (copied). Mutations: Rows/Columns,
               NumberOfFrames, pixel module tags, frame time tags, StudyDate, Modality/UIDs,
               SequenceOfUltrasoundRegions (also replaced by a non-sequence), raw pixel data
               shorter/longer than the header says, broken JPEG fragments, a wrong
               TransferSyntaxUID over an unchanged body, deeply nested sequences, unknown VRs,
               file and folder names that are not UTF-8, truncation, byte flips.

Deterministic: `plan_cases(seed)` is the same list on every run (for the same seed files
present), and `materialize` writes the same bytes. Random parts (offsets, flipped bytes, compound
mutations) come from numpy Generators seeded by (seed, crc32(case_id)). Nothing is written
outside the `out_dir` a caller gives (seeds are copied to `out_dir/_seeds`).

    plan_cases(seed=0) -> list[CaseSpec]               cheap: writes nothing
    materialize(spec, out_dir) -> Path                 writes one case under out_dir/<case_id>/
    generate_cases(out_dir, seed=0) -> Iterator[(case_id, path, kind)]   both; >= 1,000 cases

`CaseSpec.expect` is "error" when the mutation makes the input unusable for certain (a reader must
raise a named error, success is a silent misread), else "any" (success or a named error).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import struct
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SHARED_ECG = REPO.parent / "shared" / "data" / "ecg"
KINDS = ("wfdb", "dicom_ecg", "echo")

# Transfer syntaxes used to relabel an unchanged body.
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_LS = "1.2.840.10008.1.2.4.80"
JPEG_2000 = "1.2.840.10008.1.2.4.90"
RLE = "1.2.840.10008.1.2.5"


@dataclass(frozen=True)
class CaseSpec:
    """One planned case: which seed, which mutations (plain data), what outcome is acceptable."""

    case_id: str        # "<kind>-<nnnn>-<seed>-<mutation>", ASCII, unique
    kind: str           # "wfdb" | "dicom_ecg" | "echo"
    seed: str           # seed name (see `seeds`)
    mutation: str       # readable summary of `ops`
    ops: tuple          # tuple of op tuples, applied in phase order by `materialize`
    expect: str         # "error" or "any"
    seed_value: int     # the plan's seed (for the case's Generator)


@dataclass(frozen=True)
class Seed:
    name: str
    kind: str
    sources: tuple[str, ...]   # files copied into the seed folder ("" = synthesised)
    main: str                  # file name of the main file (.hea or .dcm)


# --------------------------------------------------------------------------------------------
# Seeds


def seeds(shared: Path = SHARED_ECG) -> list[Seed]:
    """The good inputs every case starts from; shared-data seeds only when the folder exists."""
    import pydicom.examples

    out = [Seed("synth100", "wfdb", (), "synth100.hea"), Seed(GEORGIA_SEED, "wfdb", (), "E00271.hea")]
    cinc = shared / "cinc2021"
    if cinc.is_dir():
        names = sorted({p.stem for p in cinc.glob("*.hea") if p.with_suffix(".mat").is_file()})
        picked: list[str] = []
        for prefix in ("E", "HR", "JS"):  # one record per source (Georgia, PTB-XL, Chapman)
            match = [n for n in names if re.fullmatch(prefix + r"\d+", n)]
            if match:
                picked.append(match[0])
        for n in picked:
            out.append(Seed(f"cinc_{n}", "wfdb", (str(cinc / f"{n}.hea"), str(cinc / f"{n}.mat")), f"{n}.hea"))
    ptb = shared / "ptbdb"
    if (ptb / "s0010_re.hea").is_file():
        files = tuple(str(ptb / f"s0010_re.{ext}") for ext in ("hea", "dat", "xyz") if (ptb / f"s0010_re.{ext}").is_file())
        out.append(Seed("ptb_s0010_re", "wfdb", files, "s0010_re.hea"))
    out.append(Seed("waveform", "dicom_ecg", (str(pydicom.examples.get_path("waveform")),), "waveform.dcm"))
    for name in ("grey_raw", "rgb_raw", "grey_jpeg", "rgb_jpeg"):
        out.append(Seed(name, "echo", (), f"{name}.dcm"))
    out.append(Seed("ybr_color", "echo", (str(pydicom.examples.get_path("ybr_color")),), "ybr_color.dcm"))
    return out


@functools.lru_cache(maxsize=None)
def _seeds_cached() -> tuple[Seed, ...]:
    return tuple(seeds())


def _echo_frames(colour: bool) -> np.ndarray:
    """8 frames 32x40 of a pulsing dark disc on a textured background (fixed seed)."""
    rng = np.random.default_rng(1234)
    yy, xx = np.mgrid[:32, :40]
    frames = []
    for f in range(8):
        r = 8 + 3 * np.sin(2 * np.pi * f / 8)
        img = np.where(np.hypot(yy - 16, xx - 20) < r, 30, 170) + rng.integers(0, 50, (32, 40))
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    grey = np.stack(frames)
    if not colour:
        return grey
    return np.stack([grey, (grey * 0.8).astype(np.uint8), 255 - grey], axis=-1)


def write_seed(seed: Seed, out_dir: Path) -> Path:
    """Write (once) the seed's files under out_dir/_seeds/<name>/; return that folder."""
    folder = Path(out_dir) / "_seeds" / seed.name
    done = folder / ".complete"
    if done.is_file():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if seed.sources:
        for src in seed.sources:
            dst = folder / (seed.main if seed.kind != "wfdb" else Path(src).name)
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o644)
    elif seed.name == GEORGIA_SEED:
        from helpers.wfdb_quirks import write_georgia_original

        write_georgia_original(folder)
    elif seed.kind == "wfdb":
        from helpers.cohort import write_ecg

        write_ecg(folder / "synth100", 0.5, np.random.default_rng(7), fs=100)
    else:
        _write_echo_seed(seed.name, folder / seed.main)
    done.write_text("ok\n")
    return folder


def _write_echo_seed(name: str, path: Path) -> None:
    import pydicom

    from helpers.dicom import write_us_dicom

    idx = ("grey_raw", "rgb_raw", "grey_jpeg", "rgb_jpeg").index(name) + 1
    write_us_dicom(path, _echo_frames("rgb" in name), jpeg="jpeg" in name, frame_time_ms=40.0,
                   region=(2, 2, 37, 29), series_description="Apical 4 chamber",
                   study_uid=f"1.2.826.0.1.3680043.10.999.77.{idx}",
                   sop_uid=f"1.2.826.0.1.3680043.10.999.78.{idx}", patient_id=f"FUZZ{idx}")
    ds = pydicom.dcmread(path)  # write_us_dicom draws a random SeriesInstanceUID: fix it
    ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.10.999.79.{idx}"
    ds.save_as(path, enforce_file_format=True)


# --------------------------------------------------------------------------------------------
# The plan

E = "error"
A = "any"

# Record line: (token index, value, expect).
WFDB_FS = [("-500", E), ("nan", E), ("inf", E), ("-inf", E), ("0", E), ("abc", E), ("1e9", E),
           ("1.5e3", A), ("0.0001", E), ("1e400", E), ("-0", E), ("1e-300", E), ("NaN", E),
           ("Infinity", E), ("20001", E), ("49", E), ("+250", A), ("250.", A), ("100/0", A),
           ("100/nan", A), ("100(abc)", A), ("0x64", E), ("\u0661\u0660\u0660", A), ("1_000", A)]
WFDB_NSIG = [("0", E), ("1", E), ("11", E), ("13", E), ("24", E), ("-1", E), ("abc", E), ("1e3", E),
             ("999999", E), ("12.0", E)]
WFDB_SIGLEN = [("0", E), ("1", E), ("2", E), ("3", A), ("10", A), ("1000000000000", E),
               ("9223372036854775808", E), (str(10 ** 30), E), ("-5", E), ("abc", E), ("1.5", E),
               ("1e3", A), ("__del__", A)]
WFDB_RECOTHER = [(0, "other_name", A), (4, "25:99:99", A), (4, "12:00:00 32/13/2020", A),
                 (4, "abc def ghi", A)]
# Signal lines: (field, value, expect).
WFDB_SIG = (
    [("fmt", v, e) for v, e in [("0", A), ("8", A), ("80", A), ("160", A), ("212", A), ("310", A),
                                ("311", A), ("24", A), ("32", A), ("61", A), ("508", A), ("516", A),
                                ("999", E), ("abc", E), ("16x0", A), ("16x2", A), ("16x-1", A),
                                ("16:5", A), ("16+1", A), ("16+999999999", E), ("16x1000000", E)]]
    + [("gain", v, e) for v, e in [("0", A), ("nan", E), ("-200", A), ("inf", E), ("-inf", E),
                                   ("1e-300", E), ("1e300", A), ("abc", E), ("", A), ("1e400", E),
                                   ("-0", A)]]
    + [("baseline", v, A) for v in ("abc", "99999999999999999999", "-1", "nan", "1.5")]
    + [("units", v, e) for v, e in [("", A), ("uV", A), ("\u00b5V", A), ("V", A), ("nV", A),
                                    ("garbage", E), ("mmHg", E), ("mV/mV", E), ("%", E),
                                    ("\u00e9\u00e8", E)]]
    + [("adcres", v, A) for v in ("-1", "99", "abc")]
    + [("adczero", v, A) for v in ("abc", "99999999999999999999")]
    + [("initval", v, A) for v in ("abc", "-")]
    + [("checksum", v, A) for v in ("abc", "99999999")]
    + [("blocksize", v, A) for v in ("abc", "-1", "512")]
    + [("file", v, e) for v, e in [("missing.dat", E), ("../missing.dat", E), ("@HEA@", A)]]
)
WFDB_NAMES = [("empty_all", E), ("empty_first", A), ("dup_all", E), ("dup_pair", A),
              ("non_ascii_suffix", A), ("fullwidth", A), ("lower", A), ("upper", A), ("swap", A),
              ("long", E), ("control", A), ("numeric", E), ("aliases", A)]
WFDB_LINES = [("drop_last_sig", E), ("drop_first_sig", E), ("dup_first_sig", A), ("blank_lines", A),
              ("crlf", A), ("bom", A), ("nul", A), ("comments_only", E), ("empty", E),
              ("only_record", E), ("tabs", A), ("long_line", A), ("trailing_garbage", A),
              ("reorder", E), ("comment_noise", A)]
WFDB_SIGBYTES = [("empty", E), ("one_byte", E), ("odd_len", E), ("half", E), ("double", A),
                 ("random_same_size", A), ("all_nan", E), ("all_zero", A), ("all_max", A)]
# The original CinC Georgia header (record name `E00271.mat`, read as `E00271` with a note): every
# record-line mutation above, plus record names whose extension names no signal file.
GEORGIA_SEED = "georgia_original"
WFDB_GEORGIA = [(("rec", 0, "E00271"), A), (("rec", 0, "E00271.dat"), E), (("rec", 0, "E00271.MAT"), E),
                (("rec", 0, "E00271.mat.mat"), E), (("rec", 0, ".mat"), E), (("rec", 0, "other.mat"), E),
                (("rec", 4, "31-Dec-2020"), A), (("rec", 4, "__del__"), A), (("lines", "crlf"), A),
                (("sig", "all", "file", "E00271.dat"), E)]

ECG_WAVE_ATTR = (
    [("NumberOfWaveformSamples", v, e) for v, e in [(0, E), (1, E), (2, E), (3, A), (0xFFFFFFFF, E),
                                                   (10 ** 6, E), (None, E)]]
    + [("SamplingFrequency", v, e) for v, e in [("0", E), ("nan", E), ("-500", E), ("1e9", E), ("inf", E),
                                               ("0.0001", E), (None, E), ("abc", E), ("1e400", E),
                                               ("-0", E), ("1.5e3", A), ("NaN", E)]]
    + [("NumberOfWaveformChannels", v, E) for v in (0, 1, 11, 13, 255, None)]
    + [("WaveformBitsAllocated", v, A) for v in (0, 8, 32, 12, 64, None)]
    + [("WaveformSampleInterpretation", v, A) for v in ("UB", "SB", "MB", "AB", "XX", None)]
    + [("MultiplexGroupLabel", v, e) for v, e in [("MEDIAN BEAT", E), (None, A), ("rhythm", A)]]
)
ECG_WAVE_ALL = [("SamplingFrequency", v, E) for v in ("0", "nan", "-500", "1e9")] + \
               [("NumberOfWaveformSamples", v, E) for v in (0, 2, 0xFFFFFFFF)]
ECG_WAVEDATA = [("empty", E), ("half", E), ("odd", E), ("removed", E), ("double", A), ("zeros", A),
                ("all_min", A)]
ECG_WAVESEQ = [("removed", E), ("empty", E), ("items_empty", E), ("only_median", E), ("dup_rhythm", A),
               ("reverse", A), ("non_sequence", E), ("non_sequence_bytes", E)]
ECG_CHANNEL = [("no_source_seq", A, E), ("source_empty", A, E), ("source_no_codevalue", A, A),
               ("source_no_meaning", A, A), ("source_blank", A, E), ("source_nonascii", A, A),
               ("units_no_codevalue", E, E), ("units_empty_seq", E, E), ("units_blank", E, E),
               ("units_garbage", E, E), ("units_mV", A, A), ("units_V", A, A), ("units_removed", E, E),
               ("sens_0", A, A), ("sens_nan", A, E), ("sens_neg", A, A), ("sens_empty", A, A),
               ("sens_removed", E, E), ("sens_huge", A, A), ("corr_0", A, A), ("corr_nan", A, E),
               ("baseline_nan", A, E), ("label_nonascii", A, A)]   # (variant, expect first, expect all)
ECG_CHANNELSEQ = [("removed", E), ("empty", E), ("fewer", E), ("extra", A)]
ECG_TOP = [("Modality", "US", A), ("Modality", None, A), ("Modality", "__del__", A),
           ("SOPClassUID", "1.2.840.10008.5.1.4.1.1.3.1", A),
           ("Modality+SOPClassUID", "__del__", A)]  # untagged: `e2r inspect` must read it as read_ecg does
ECG_TS = [IMPLICIT_LE, EXPLICIT_BE, DEFLATED_LE, JPEG_BASELINE, "1.2.3.4"]

ECHO_ATTR = (
    [(t, v, e) for t in ("Rows", "Columns")
     for v, e in [(None, E), ("two", E), (1, A), (0, E), (65535, E), (2, A)]]
    + [("NumberOfFrames", v, e) for v, e in [(None, E), ("0", E), ("1", E), ("2", A), ("2147483647", E),
                                             ("999999999999", E), ("abc", E), ("-3", E), ("2.5", E),
                                             ("1e3", E), ("8\\8", E)]]
    + [("SamplesPerPixel", v, A) for v in (0, 2, 4, None)]
    + [("BitsAllocated", v, A) for v in (0, 1, 7, 16, 64, None)]
    + [("BitsStored", v, A) for v in (0, 12, 16, None)]
    + [("HighBit", v, A) for v in (15, None)]
    + [("PixelRepresentation", v, A) for v in (1, 5)]
    + [("PhotometricInterpretation", v, A) for v in ("", "PALETTE COLOR", "YBR_FULL_422", "YBR_FULL", "XYZ",
                                                     "MONOCHROME1", "RGB", "YBR_RCT")]
    + [("PlanarConfiguration", v, A) for v in (1, 7, None)]
    + [("FrameTime", v, A) for v in ("0", "nan", "-40", "inf", "abc", "1e-300", "1e9", None, "__del__",
                                     "1e300", "100000", "0.0001", "0.04")]  # 0.04: seconds written as ms
    + [("StudyDate", v, A) for v in ("00000000", "", "2024-01-02", "99999999", "20241340", "2024010",
                                     "20240230")]
    + [("Modality", v, e) for v, e in [("", A), ("us", A), ("CT", E), ("__del__", A), ("US\\CT", A)]]
    + [("SOPClassUID", v, A) for v in ("__del__", "1.2.3", "")]
    + [("StudyInstanceUID", v, A) for v in ("__del__", "", "9" * 64)]
    + [("SeriesDescription", v, A) for v in ("Apical 4 chamber " * 4, "\u00e9chographie 4 cavit\u00e9s",
                                             "A4C\\PLAX")]
    + [("SpecificCharacterSet", v, A) for v in ("GARBAGE", "ISO_IR 192", "ISO_IR 100")]
)
ECHO_FRAMETIME = ["cine_rate_zero", "cine_rate_huge", "ftv_garbage", "ftv_nan", "none", "ftv_one_absurd",
                  "cine_rate_huge_ftv_ok"]
ECHO_REGIONS = ["non_sequence", "non_sequence_us", "non_sequence_bytes", "empty_seq", "item_empty",
                "coords_huge", "coords_inverted", "coords_zero_area", "coords_negative", "coords_text",
                "many_items", "item_missing_fields", "spatial_format_garbage", "nested_regions"]
ECHO_PIXELS_RAW = [("short_2", E), ("short_frame", E), ("half", E), ("empty", E), ("removed", E),
                   ("longer_frame", A), ("longer_2", A)]
ECHO_PIXELS_JPEG = [("drop_last_frame", E), ("keep_one_frame", E), ("extra_frame", A),
                    ("truncate_frame", A), ("garbage_frame", A), ("no_soi", A), ("no_eoi", A),
                    ("zero_fragment", A), ("bot_garbage", A), ("sof_lossless", A), ("sof_12bit", A),
                    ("jpeg_flip", A), ("removed", E), ("empty_encapsulated", E)]
ECHO_TS_RAW = [DEFLATED_LE, JPEG_BASELINE, JPEG_LS, IMPLICIT_LE, EXPLICIT_BE, "1.2.3.4", ""]
ECHO_TS_JPEG = [EXPLICIT_LE, DEFLATED_LE, RLE, JPEG_2000, IMPLICIT_LE, "1.2.3.4"]
ECHO_NAMES = ["latin1", "latin1_dir", "no_ext", "unicode_spaces"]
NESTED_DEPTHS = (8, 300, 5000)


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", text)
    return s[:60].strip("_") or "x"


def _op_str(op: tuple) -> str:
    parts = []
    for a in op:
        if isinstance(a, bytes):
            a = a.hex()
        parts.append("None" if a is None else str(a))
    return ":".join(parts)


def _seed_ops(seed: Seed, full: bool) -> list[tuple[tuple, str]]:
    """The deterministic (op, expect) list for one seed (random ops get their randomness later)."""
    ops: list[tuple[tuple, str]] = []
    if seed.kind == "wfdb":
        if seed.name == GEORGIA_SEED:
            ops += [(("rec", 2, v), e) for v, e in WFDB_FS]
            ops += [(("rec", 1, v), e) for v, e in WFDB_NSIG]
            ops += [(("rec", 3, v), e) for v, e in WFDB_SIGLEN]
            ops += [(("rec", i, v), e) for i, v, e in WFDB_RECOTHER]
            ops += WFDB_GEORGIA
        elif full:
            ops += [(("rec", 2, v), e) for v, e in WFDB_FS]
            ops += [(("rec", 1, v), e) for v, e in WFDB_NSIG]
            ops += [(("rec", 3, v), e) for v, e in WFDB_SIGLEN]
            ops += [(("rec", i, v), e) for i, v, e in WFDB_RECOTHER]
            which = ("all", "first") if seed.name == "synth100" else ("all",)
            for w in which:
                for f, v, e in WFDB_SIG:
                    # one bad line is as fatal as all when it carries a needed lead (lead I)
                    ops.append((("sig", w, f, v), e))
            ops += [(("names", v), e) for v, e in WFDB_NAMES]
            ops += [(("lines", v), e) for v, e in WFDB_LINES]
            ops += [(("sigbytes", v), e) for v, e in WFDB_SIGBYTES]
            ops += [(("latin1",), A), (("via", "base"), A), (("via", "dat"), A)]
        ops += [(("truncate", "hea", i), A) for i in range(4)]
        ops += [(("truncate", "sig", i), E) for i in range(4)]
        ops += [(("flip", "hea", i), A) for i in range(4)]
        ops += [(("flip", "sig", i), A) for i in range(4)]
    elif seed.kind == "dicom_ecg":
        ops += [(("wave_attr", "rhythm", a, v), e) for a, v, e in ECG_WAVE_ATTR]
        ops += [(("wave_attr", "all", a, v), e) for a, v, e in ECG_WAVE_ALL]
        ops += [(("wavedata", v), e) for v, e in ECG_WAVEDATA]
        ops += [(("waveseq", v), e) for v, e in ECG_WAVESEQ]
        for v, e_first, e_all in ECG_CHANNEL:
            ops += [(("channel", "first", v), e_first), (("channel", "all", v), e_all)]
        ops += [(("channelseq", v), e) for v, e in ECG_CHANNELSEQ]
        ops += [(("top", a, v), e) for a, v, e in ECG_TOP]
        ops += [(("ts", u), A) for u in ECG_TS]
        ops += [(("nested", d), A) for d in NESTED_DEPTHS]
        ops += [(("unknown_vr", b"ZZ"), A), (("unknown_vr", b"\x00\x01"), A), (("no_preamble",), A)]
        ops += [(("truncate", where, i), A) for where in ("header", "any") for i in range(6)]
        ops += [(("flip", where, i), A) for where in ("header", "any") for i in range(6)]
    else:
        jpeg = "jpeg" in seed.name or seed.name == "ybr_color"
        ops += [(("attr", attr, v), e) for attr, v, e in ECHO_ATTR]
        ops += [(("frametime", v), A) for v in ECHO_FRAMETIME]
        ops += [(("regions", v), A) for v in ECHO_REGIONS]
        ops += [(("pixels", v), e) for v, e in (ECHO_PIXELS_JPEG if jpeg else ECHO_PIXELS_RAW)]
        ops += [(("ts", u), A) for u in (ECHO_TS_JPEG if jpeg else ECHO_TS_RAW)]
        ops += [(("nested", d), A) for d in NESTED_DEPTHS]
        ops += [(("unknown_vr", b"ZZ"), A), (("unknown_vr", b"\x00\x01"), A), (("no_preamble",), A)]
        ops += [(("name", v), A) for v in ECHO_NAMES]
        ops += [(("truncate", where, i), A) for where in ("header", "any") for i in range(3)]
        ops += [(("flip", where, i), A) for where in ("header", "any") for i in range(3)]
    return ops


def _key(op: tuple) -> tuple:
    """Ops with the same key touch the same thing; a compound case uses distinct keys."""
    if op[0] in ("rec", "attr", "top"):
        return op[:2]
    if op[0] == "sig":
        return ("sig", op[2])
    if op[0] in ("wave_attr",):
        return ("wave_attr", op[2])
    if op[0] in ("truncate", "flip", "via", "name", "ts", "nested", "unknown_vr", "no_preamble"):
        return ("bytes", op[0])
    return op[:1]


def _fragile(op: tuple) -> bool:
    """A fatal op whose effect another op could undo (data made shorter than a header that a
    second op shrinks; a dropped signal line that a second op makes the count agree with)."""
    return op[0] in ("truncate", "flip", "sigbytes", "wavedata", "pixels") or \
        (op[0] == "lines" and op[1].startswith("drop_"))


def _compound_expect(ops: list[tuple[tuple, str]]) -> str:
    """"error" when some op is fatal beyond repair and no byte-level op touched the header."""
    if any(op[0] in ("truncate", "flip") and op[1] in ("hea", "header", "any") for op, _ in ops):
        return A
    return E if any(e == E and not _fragile(op) for op, e in ops) else A


# Compound (random) cases per kind, drawn from the seeds' op lists.
N_COMPOUND = {"wfdb": 120, "dicom_ecg": 60, "echo": 100}


def plan_cases(seed: int = 0, shared: Path = SHARED_ECG) -> list[CaseSpec]:
    """Every case, in a fixed order: each seed's deterministic mutations, then compound ones."""
    rng = np.random.default_rng([seed, 20260])
    specs: list[CaseSpec] = []
    counters = {k: 0 for k in KINDS}
    all_seeds = seeds(shared)

    def add(s: Seed, ops: list[tuple[tuple, str]], expect: Optional[str] = None) -> None:
        n = counters[s.kind]
        counters[s.kind] += 1
        mutation = "+".join(_op_str(op) for op, _ in ops)
        case_id = f"{s.kind}-{n:04d}-{s.name}-{_slug(mutation)}"
        specs.append(CaseSpec(case_id, s.kind, s.name, mutation, tuple(op for op, _ in ops),
                              expect or _compound_expect(ops), seed))

    per_seed: dict[str, list[tuple[tuple, str]]] = {}
    seen_cinc = False
    for s in all_seeds:
        full = True
        if s.kind == "wfdb" and s.name.startswith("cinc_"):
            full, seen_cinc = not seen_cinc, True  # full plan on the first CinC record only
        ops = _seed_ops(s, full)
        per_seed[s.name] = ops
        for op, e in ops:
            add(s, [(op, e)], e)
    for kind in KINDS:
        kind_seeds = [s for s in all_seeds if s.kind == kind]
        for _ in range(N_COMPOUND[kind]):
            s = kind_seeds[int(rng.integers(len(kind_seeds)))]
            pool = per_seed[s.name]
            k = int(rng.integers(2, 4))
            chosen: list[tuple[tuple, str]] = []
            keys: set = set()
            for i in rng.permutation(len(pool)):
                op, e = pool[int(i)]
                if _key(op) in keys:
                    continue
                keys.add(_key(op))
                chosen.append((op, e))
                if len(chosen) == k:
                    break
            add(s, chosen)
    return specs


# --------------------------------------------------------------------------------------------
# Materialising one case


def _case_rng(spec: CaseSpec, salt: int = 0) -> np.random.Generator:
    return np.random.default_rng([spec.seed_value, zlib.crc32(spec.case_id.encode()), salt])


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def materialize(spec: CaseSpec, out_dir: Path) -> Path:
    """Write one case under out_dir/<case_id>/ (seeds under out_dir/_seeds) and return the path
    to hand to the reader. Idempotent: an existing case folder is rewritten."""
    out_dir = Path(out_dir)
    seed = next(s for s in _seeds_cached() if s.name == spec.seed)
    seed_dir = write_seed(seed, out_dir)
    case_dir = out_dir / spec.case_id
    if os.path.lexists(case_dir):
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    if spec.kind == "wfdb":
        return _materialize_wfdb(spec, seed, seed_dir, case_dir)
    return _materialize_dicom(spec, seed, seed_dir, case_dir)


def generate_cases(out_dir: Path, seed: int = 0) -> Iterator[tuple[str, Path, str]]:
    """Plan and write every case under out_dir; yields (case_id, path, kind)."""
    for spec in plan_cases(seed):
        yield spec.case_id, materialize(spec, out_dir), spec.kind


# ---- WFDB


_GAIN_RE = re.compile(r"([^(/]*)(?:\(([^)]*)\))?(?:/(.*))?")
_FMT_RE = re.compile(r"(\d+)(.*)")
_SIG_FIELDS = {"file": 0, "fmt": 1, "gain": 2, "adcres": 3, "adczero": 4, "initval": 5, "checksum": 6,
               "blocksize": 7}
_FULLWIDTH = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)})
_ALIASES = {"I": "lead I", "II": "MLII", "III": "D3", "AVR": "-aVR", "AVL": "aVL", "AVF": "aVF"}


class _Header:
    """A WFDB header as lines, with the record line and signal lines located."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        content = [i for i, ln in enumerate(self.lines) if ln.strip() and not ln.lstrip().startswith("#")]
        self.rec = content[0]
        n_sig = int(self.lines[self.rec].split()[1])
        self.sig = content[1:1 + n_sig]

    def rec_tokens(self) -> list[str]:
        return self.lines[self.rec].split()

    def sig_tokens(self, i: int) -> list[str]:
        toks = self.lines[self.sig[i]].split()
        defaults = ["x.dat", "16", "200", "12", "0", "0", "0", "0"]
        return toks + defaults[len(toks):] if len(toks) < 8 else toks

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _set_gain_part(tok: str, part: str, value: str) -> str:
    m = _GAIN_RE.fullmatch(tok)
    gain, base, units = m.group(1), m.group(2), m.group(3)
    if part == "gain":
        gain = value
    elif part == "baseline":
        base = value
    else:
        units = value
    return gain + (f"({base})" if base is not None else "") + (f"/{units}" if units is not None else "")


def _wfdb_field_ops(h: _Header, op: tuple, names: dict) -> None:
    kind = op[0]
    if kind == "rec":
        _, idx, value = op
        toks = h.rec_tokens()
        if value == "__del__":
            toks = toks[:idx]
        else:
            while len(toks) <= idx:
                toks.append("0")
            toks[idx] = value
        h.lines[h.rec] = " ".join(toks)
    elif kind == "sig":
        _, which, fld, value = op
        rows = range(len(h.sig)) if which == "all" else [0]
        for i in rows:
            toks = h.sig_tokens(i)
            if fld in ("gain", "baseline", "units"):
                toks[2] = _set_gain_part(toks[2], fld, value)
            elif fld == "fmt":
                suffix = _FMT_RE.fullmatch(toks[1]).group(2) if _FMT_RE.fullmatch(toks[1]) else ""
                toks[1] = value if re.search(r"[x:+]", value) or not value[:1].isdigit() else value + suffix
            elif fld == "file":
                toks[0] = names["hea"] if value == "@HEA@" else value
            else:
                toks[_SIG_FIELDS[fld]] = value
            h.lines[h.sig[i]] = " ".join(toks)
    elif kind == "names":
        variant = op[1]
        descs = [" ".join(h.sig_tokens(i)[8:]) for i in range(len(h.sig))]
        if variant == "empty_all":
            descs = [""] * len(descs)
        elif variant == "empty_first":
            descs[0] = ""
        elif variant == "dup_all":
            descs = [descs[0]] * len(descs)
        elif variant == "dup_pair":
            descs[1] = descs[0]
        elif variant == "non_ascii_suffix":
            descs = [d + "\u00e9" for d in descs]
        elif variant == "fullwidth":
            descs = [d.translate(_FULLWIDTH) for d in descs]
        elif variant == "lower":
            descs = [d.lower() for d in descs]
        elif variant == "upper":
            descs = [d.upper() for d in descs]
        elif variant == "swap":
            descs = descs[::-1]
        elif variant == "long":
            descs = [d * 500 for d in descs]
        elif variant == "control":
            descs = [d + "\x01\x7f" for d in descs]
        elif variant == "numeric":
            descs = [str(i + 1) for i in range(len(descs))]
        elif variant == "aliases":
            descs = [_ALIASES.get(d.upper(), d) for d in descs]
        for i, d in enumerate(descs):
            toks = h.sig_tokens(i)[:8]
            h.lines[h.sig[i]] = " ".join(toks + ([d] if d else []))


def _wfdb_line_op(h: _Header, variant: str) -> str:
    lines = list(h.lines)
    rec, sig = h.rec, h.sig
    if variant == "drop_last_sig":
        del lines[sig[-1]]
    elif variant == "drop_first_sig":
        del lines[sig[0]]
    elif variant == "dup_first_sig":
        lines.insert(sig[0], lines[sig[0]])
    elif variant == "blank_lines":
        lines = [x for ln in lines for x in (ln, "")]
    elif variant == "comments_only":
        lines = ["# " + ln for ln in lines]
    elif variant == "empty":
        return ""
    elif variant == "only_record":
        lines = [lines[rec]]
    elif variant == "tabs":
        lines = [ln.replace(" ", "\t") for ln in lines]
    elif variant == "long_line":
        lines.append("#" + "x" * 100_000)
    elif variant == "trailing_garbage":
        lines.append("xxxx yyyy zzzz")
    elif variant == "reorder":
        lines = [lines[i] for i in sig] + [lines[rec]]
    elif variant == "comment_noise":
        lines = ["#", "# \u00e9\u00e8 noise", "   "] + lines
    elif variant == "nul":
        lines[rec] = lines[rec] + "\x00"
    text = "\n".join(lines) + "\n"
    if variant == "crlf":
        text = text.replace("\n", "\r\n")
    elif variant == "bom":
        text = "\ufeff" + text
    return text


def _sig_bytes(data: bytes, variant: str, offset: int, rng: np.random.Generator) -> bytes:
    head, body = data[:offset], data[offset:]
    if variant == "empty":
        return b""
    if variant == "one_byte":
        return data[:1]
    if variant == "odd_len":
        return data[:-1]
    if variant == "half":
        return data[: len(data) // 2]
    if variant == "double":
        return data + body
    if variant == "random_same_size":
        return head + rng.integers(0, 256, len(body), dtype=np.uint8).tobytes()
    if variant == "all_nan":
        return head + b"\x00\x80" * (len(body) // 2)
    if variant == "all_zero":
        return head + b"\x00" * len(body)
    if variant == "all_max":
        return head + b"\xff\x7f" * (len(body) // 2)
    raise ValueError(variant)


def _truncate(data: bytes, rng: np.random.Generator, hi: Optional[int] = None) -> bytes:
    hi = len(data) if hi is None else min(hi, len(data))
    return data[: int(rng.integers(0, max(hi, 1)))]


def _flip(data: bytes, rng: np.random.Generator, hi: Optional[int] = None) -> bytes:
    if not data:
        return data
    hi = len(data) if hi is None else max(1, min(hi, len(data)))
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        pos = int(rng.integers(0, hi))
        buf[pos] ^= int(rng.integers(1, 256))
    return bytes(buf)


def _materialize_wfdb(spec: CaseSpec, seed: Seed, seed_dir: Path, case_dir: Path) -> Path:
    hea_name = seed.main
    base = hea_name[:-4]
    hea_text = (seed_dir / hea_name).read_text()
    h = _Header(hea_text)
    sig_files = sorted({h.sig_tokens(i)[0] for i in range(len(h.sig))})
    main_sig = h.sig_tokens(0)[0]
    sig_offset = 0
    fmt_tail = h.sig_tokens(0)[1]
    if "+" in fmt_tail:
        sig_offset = int(fmt_tail.rsplit("+", 1)[1])
    names = {"hea": hea_name}
    ops = spec.ops
    text: Optional[str] = None
    for op in ops:
        if op[0] in ("rec", "sig", "names"):
            _wfdb_field_ops(h, op, names)
    for op in ops:
        if op[0] == "lines":
            text = _wfdb_line_op(h, op[1])
    if text is None:
        text = h.text()
    hea = text.encode("utf-8")
    sig_data: dict[str, Optional[bytes]] = {f: None for f in sig_files}  # None: link the seed's file
    for op in ops:
        if op[0] == "sigbytes":
            sig_data[main_sig] = _sig_bytes((seed_dir / main_sig).read_bytes(), op[1], sig_offset,
                                            _case_rng(spec, 1))
    latin1 = any(op[0] == "latin1" for op in ops)  # record name b"rec\xe9" (Latin-1, not UTF-8)
    for i, op in enumerate(ops):
        if op[0] == "truncate":
            if op[1] == "hea":
                hea = _truncate(hea, _case_rng(spec, 10 + i))
            else:
                data = sig_data[main_sig] if sig_data[main_sig] is not None else (seed_dir / main_sig).read_bytes()
                sig_data[main_sig] = _truncate(data, _case_rng(spec, 10 + i))
        elif op[0] == "flip":
            if op[1] == "hea":
                hea = _flip(hea, _case_rng(spec, 20 + i))
            else:
                data = sig_data[main_sig] if sig_data[main_sig] is not None else (seed_dir / main_sig).read_bytes()
                sig_data[main_sig] = _flip(data, _case_rng(spec, 20 + i), hi=None)
    dir_b = os.fsencode(case_dir)
    if latin1:
        new_b = b"rec\xe9"
        hea = hea.replace(base.encode(), new_b)
        rename = {f: f.replace(base, os.fsdecode(new_b)) for f in sig_files}
    else:
        new_b = base.encode()
        rename = {f: f for f in sig_files}
    hea_path_b = dir_b + b"/" + new_b + b".hea"
    with open(hea_path_b, "wb") as fh:
        fh.write(hea)
    for f in sig_files:
        target_b = dir_b + b"/" + os.fsencode(rename[f])
        if sig_data[f] is None:
            src = seed_dir / f
            try:
                os.link(src, target_b)
            except OSError:
                shutil.copyfile(src, os.fsdecode(target_b))
        else:
            with open(target_b, "wb") as fh:
                fh.write(sig_data[f])
    via = next((op[1] for op in ops if op[0] == "via"), None)
    if via == "base":
        return Path(os.fsdecode(dir_b + b"/" + new_b))
    if via == "dat":
        return Path(os.fsdecode(dir_b + b"/" + os.fsencode(rename[main_sig])))
    return Path(os.fsdecode(hea_path_b))


# ---- DICOM (ECG and echo)


@contextmanager
def _lenient_pydicom():
    """Let pydicom write values its validation would refuse (restored afterwards)."""
    from pydicom import config

    old = (config.settings.reading_validation_mode, config.settings.writing_validation_mode)
    config.settings.reading_validation_mode = config.IGNORE
    config.settings.writing_validation_mode = config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        config.settings.reading_validation_mode, config.settings.writing_validation_mode = old


def _set(ds: Any, keyword: str, value: Any, vr: Optional[str] = None) -> None:
    """Set `keyword` to `value` as written (None: empty value; "__del__": remove the element)."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import DataElement

    tag = tag_for_keyword(keyword)
    if value == "__del__":
        if tag in ds:
            del ds[tag]
        return
    vr = vr or dictionary_VR(tag)
    if isinstance(value, str) and "\\" in value:
        value = value.split("\\")
    try:
        elem = DataElement(tag, vr, value)
    except (ValueError, TypeError, OverflowError):
        # DS/IS refuse to hold "abc" or "1e400" even with validation off: keep the text as
        # written, the way such a value arrives from a file
        elem = DataElement(tag, vr, None)
        elem._value = value
    ds[tag] = elem


def _item(**kw: Any) -> Any:
    from pydicom.dataset import Dataset

    d = Dataset()
    for k, v in kw.items():
        setattr(d, k, v)
    return d


def _mutate_ecg(ds: Any, op: tuple, rng: np.random.Generator) -> None:
    from pydicom.dataelem import DataElement
    from pydicom.sequence import Sequence

    kind = op[0]
    if kind == "top":
        for attr in op[1].split("+"):
            _set(ds, attr, op[2])
        return
    waves = ds.WaveformSequence
    rhythm = [w for w in waves if "MEDIAN" not in str(w.get("MultiplexGroupLabel", "")).upper()]
    if kind == "wave_attr":
        _, sel, attr, value = op
        for w in (rhythm[:1] if sel == "rhythm" else list(waves)):
            _set(w, attr, value)
    elif kind == "wavedata":
        w = rhythm[0]
        data = bytes(w.WaveformData)
        variant = op[1]
        if variant == "removed":
            del w.WaveformData
            return
        new = {"empty": b"", "half": data[: len(data) // 2], "odd": data[:-3], "double": data + data,
               "zeros": b"\x00" * len(data), "all_min": b"\x00\x80" * (len(data) // 2)}[variant]
        w.WaveformData = new
    elif kind == "waveseq":
        variant = op[1]
        if variant == "removed":
            del ds.WaveformSequence
        elif variant == "empty":
            ds.WaveformSequence = Sequence([])
        elif variant == "items_empty":
            ds.WaveformSequence = Sequence([_item() for _ in waves])
        elif variant == "only_median":
            ds.WaveformSequence = Sequence([w for w in waves if w not in rhythm])
        elif variant == "dup_rhythm":
            ds.WaveformSequence = Sequence(list(waves) + rhythm[:1])
        elif variant == "reverse":
            ds.WaveformSequence = Sequence(list(waves)[::-1])
        elif variant == "non_sequence":
            del ds.WaveformSequence
            ds[0x54000100] = DataElement(0x54000100, "LO", "garbage")
        elif variant == "non_sequence_bytes":
            del ds.WaveformSequence
            ds[0x54000100] = DataElement(0x54000100, "OB", b"\x01\x02\x03\x04")
    elif kind == "channel":
        _, sel, variant = op
        for w in rhythm[:1]:
            chans = list(w.ChannelDefinitionSequence)
            for ch in (chans[:1] if sel == "first" else chans):
                _mutate_channel(ch, variant)
    elif kind == "channelseq":
        w = rhythm[0]
        variant = op[1]
        if variant == "removed":
            del w.ChannelDefinitionSequence
        elif variant == "empty":
            w.ChannelDefinitionSequence = Sequence([])
        elif variant == "fewer":
            w.ChannelDefinitionSequence = Sequence(list(w.ChannelDefinitionSequence)[:-3])
        elif variant == "extra":
            chans = list(w.ChannelDefinitionSequence)
            w.ChannelDefinitionSequence = Sequence(chans + chans[:2])
    elif kind == "top":
        _set(ds, op[1], op[2])


def _mutate_channel(ch: Any, variant: str) -> None:
    from pydicom.sequence import Sequence

    src = ch.ChannelSourceSequence[0] if ch.get("ChannelSourceSequence") else None
    units = ch.ChannelSensitivityUnitsSequence[0] if ch.get("ChannelSensitivityUnitsSequence") else None
    if variant == "no_source_seq":
        del ch.ChannelSourceSequence
    elif variant == "source_empty":
        ch.ChannelSourceSequence = Sequence([])
    elif variant == "source_no_codevalue" and src is not None:
        del src.CodeValue
    elif variant == "source_no_meaning" and src is not None:
        del src.CodeMeaning
    elif variant == "source_blank" and src is not None:
        src.CodeValue, src.CodeMeaning = "", ""
    elif variant == "source_nonascii" and src is not None:
        src.CodeMeaning = src.CodeMeaning + " \u00e9\u00e8"
    elif variant == "units_no_codevalue" and units is not None:
        del units.CodeValue
    elif variant == "units_empty_seq":
        ch.ChannelSensitivityUnitsSequence = Sequence([])
    elif variant == "units_blank" and units is not None:
        units.CodeValue = ""
    elif variant == "units_garbage" and units is not None:
        units.CodeValue = "furlong"
    elif variant == "units_mV" and units is not None:
        units.CodeValue = "mV"
    elif variant == "units_V" and units is not None:
        units.CodeValue = "V"
    elif variant == "units_removed":
        del ch.ChannelSensitivityUnitsSequence
    elif variant.startswith("sens_"):
        value = {"sens_0": "0", "sens_nan": "nan", "sens_neg": "-1.25", "sens_empty": None,
                 "sens_removed": "__del__", "sens_huge": "1e300"}[variant]
        _set(ch, "ChannelSensitivity", value)
    elif variant == "corr_0":
        _set(ch, "ChannelSensitivityCorrectionFactor", "0")
    elif variant == "corr_nan":
        _set(ch, "ChannelSensitivityCorrectionFactor", "nan")
    elif variant == "baseline_nan":
        _set(ch, "ChannelBaseline", "nan")
    elif variant == "label_nonascii":
        ch.ChannelLabel = "Ableitung \u00e9"


def _region_item(**coords: int) -> Any:
    item = _item(RegionSpatialFormat=1, RegionDataType=1, RegionFlags=0)
    for k, v in coords.items():
        setattr(item, k, v)
    return item


def _mutate_echo(ds: Any, op: tuple, rng: np.random.Generator) -> None:

    kind = op[0]
    if kind == "attr":
        _, attr, value = op
        if value == "two":
            value = [int(ds.get(attr, 32) or 32)] * 2
        _set(ds, attr, value)
    elif kind == "frametime":
        variant = op[1]
        _set(ds, "FrameTime", "__del__")
        if variant == "cine_rate_zero":
            _set(ds, "CineRate", "0")
        elif variant == "cine_rate_huge":
            _set(ds, "CineRate", "99999999")
        elif variant == "ftv_garbage":
            _set(ds, "FrameTimeVector", ["abc", "nan", "-1"], vr="DS")
        elif variant == "ftv_nan":
            _set(ds, "FrameTimeVector", ["0", "nan", "inf"] + ["nan"] * 5, vr="DS")
        elif variant == "ftv_one_absurd":
            _set(ds, "FrameTimeVector", ["0"] + ["40"] * (int(ds.NumberOfFrames) - 2) + ["1e300"], vr="DS")
        elif variant == "cine_rate_huge_ftv_ok":
            _set(ds, "CineRate", "99999999")
            _set(ds, "FrameTimeVector", ["0"] + ["40"] * (int(ds.NumberOfFrames) - 1), vr="DS")
    elif kind == "regions":
        _mutate_regions(ds, op[1])
    elif kind == "pixels":
        _mutate_pixels(ds, op[1], rng)


def _mutate_regions(ds: Any, variant: str) -> None:
    from pydicom.dataelem import DataElement
    from pydicom.sequence import Sequence

    tag = 0x00186011
    rows, cols = int(ds.Rows), int(ds.Columns)
    # UL values: an earlier mutation may have left Rows or Columns at 0 or 1 (a box that is empty
    # on purpose then, never a negative number pydicom cannot write)
    box = dict(RegionLocationMinX0=1, RegionLocationMinY0=1, RegionLocationMaxX1=max(cols - 2, 0),
               RegionLocationMaxY1=max(rows - 2, 0))
    if tag in ds:
        del ds[tag]
    if variant == "non_sequence":
        ds[tag] = DataElement(tag, "LO", "garbage")
    elif variant == "non_sequence_us":
        ds[tag] = DataElement(tag, "US", 7)
    elif variant == "non_sequence_bytes":
        ds[tag] = DataElement(tag, "OB", b"\x00\x01\x02\x03")
    elif variant == "empty_seq":
        ds[tag] = DataElement(tag, "SQ", Sequence([]))
    elif variant == "item_empty":
        ds[tag] = DataElement(tag, "SQ", Sequence([_item()]))
    elif variant == "coords_huge":
        ds[tag] = DataElement(tag, "SQ", Sequence([_region_item(
            RegionLocationMinX0=0xFFFFFFF0, RegionLocationMinY0=0xFFFFFFF0,
            RegionLocationMaxX1=0xFFFFFFFF, RegionLocationMaxY1=0xFFFFFFFF)]))
    elif variant == "coords_inverted":
        ds[tag] = DataElement(tag, "SQ", Sequence([_region_item(
            RegionLocationMinX0=cols - 2, RegionLocationMinY0=rows - 2,
            RegionLocationMaxX1=1, RegionLocationMaxY1=1)]))
    elif variant == "coords_zero_area":
        ds[tag] = DataElement(tag, "SQ", Sequence([_region_item(
            RegionLocationMinX0=5, RegionLocationMinY0=5, RegionLocationMaxX1=5, RegionLocationMaxY1=5)]))
    elif variant in ("coords_negative", "coords_text"):
        item = _region_item()
        for k in box:
            from pydicom.datadict import tag_for_keyword

            t = tag_for_keyword(k)
            item[t] = DataElement(t, "SL", -5) if variant == "coords_negative" else DataElement(t, "LO", "abc")
        ds[tag] = DataElement(tag, "SQ", Sequence([item]))
    elif variant == "many_items":
        ds[tag] = DataElement(tag, "SQ", Sequence([_region_item(**box) for _ in range(1000)]))
    elif variant == "item_missing_fields":
        ds[tag] = DataElement(tag, "SQ", Sequence([_item(RegionSpatialFormat=1, RegionLocationMinX0=1)]))
    elif variant == "spatial_format_garbage":
        item = _region_item(**box)
        item[0x00186012] = DataElement(0x00186012, "LO", "two-d")
        ds[tag] = DataElement(tag, "SQ", Sequence([item]))
    elif variant == "nested_regions":
        inner = _region_item(**box)
        inner[tag] = DataElement(tag, "SQ", Sequence([_region_item(**box)]))
        ds[tag] = DataElement(tag, "SQ", Sequence([inner]))


def _encapsulate(frames: list[bytes], bot: Optional[list[int]] = None) -> bytes:
    out = bytearray()
    table = b"".join(struct.pack("<L", v) for v in bot) if bot else b""
    out += struct.pack("<HHL", 0xFFFE, 0xE000, len(table)) + table
    for f in frames:
        if len(f) % 2:
            f = f + b"\x00"
        out += struct.pack("<HHL", 0xFFFE, 0xE000, len(f)) + f
    out += struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    return bytes(out)


def _mutate_pixels(ds: Any, variant: str, rng: np.random.Generator) -> None:
    from pydicom.encaps import generate_frames

    if variant == "removed":
        del ds.PixelData
        return
    data = bytes(ds.PixelData)
    n = int(ds.NumberOfFrames)
    encapsulated = ds["PixelData"].is_undefined_length
    if not encapsulated:
        frame = len(data) // n
        new = {"short_2": data[:-2], "short_frame": data[:-frame], "half": data[: len(data) // 2],
               "empty": b"", "longer_frame": data + data[:frame], "longer_2": data + b"\x00\x00"}[variant]
        ds.PixelData = new
        return
    frames = list(generate_frames(data, number_of_frames=n))
    bot: Optional[list[int]] = None
    if variant == "drop_last_frame":
        frames = frames[:-1]
    elif variant == "keep_one_frame":
        frames = frames[:1]
    elif variant == "extra_frame":
        frames = frames + frames[:1]
    elif variant == "truncate_frame":
        frames[0] = frames[0][: int(rng.integers(2, max(3, len(frames[0]))))]
    elif variant == "garbage_frame":
        frames[0] = rng.integers(0, 256, len(frames[0]), dtype=np.uint8).tobytes()
    elif variant == "no_soi":
        frames[0] = frames[0][2:]
    elif variant == "no_eoi":
        frames[0] = frames[0].rstrip(b"\x00")[:-2]
    elif variant == "zero_fragment":
        frames.insert(1, b"")
    elif variant == "bot_garbage":
        bot = [int(v) for v in rng.integers(0, 2 ** 32, len(frames), dtype=np.uint64)]
    elif variant == "sof_lossless":
        frames[0] = frames[0].replace(b"\xff\xc0", b"\xff\xc3", 1)
    elif variant == "sof_12bit":
        i = frames[0].find(b"\xff\xc0")
        if i >= 0:
            b = bytearray(frames[0])
            b[i + 4] = 12
            frames[0] = bytes(b)
    elif variant == "jpeg_flip":
        frames[0] = _flip(frames[0], rng)
    elif variant == "empty_encapsulated":
        frames = []
    ds.PixelData = _encapsulate(frames, bot)
    ds["PixelData"].is_undefined_length = True


def _meta_end(data: bytes) -> int:
    """Offset just past the file meta group (0002) of a file with the 132-byte preamble."""
    pos = 132
    while pos + 8 <= len(data):
        group = struct.unpack("<H", data[pos:pos + 2])[0]
        if group != 0x0002:
            break
        vr = data[pos + 4:pos + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV"):
            length = struct.unpack("<L", data[pos + 8:pos + 12])[0]
            pos += 12 + length
        else:
            length = struct.unpack("<H", data[pos + 6:pos + 8])[0]
            pos += 8 + length
    return pos


def _with_transfer_syntax(data: bytes, uid: str) -> bytes:
    """The same body under a file meta group that names another transfer syntax."""
    end = _meta_end(data)
    elems = []
    pos = 132
    while pos < end:
        tag = data[pos:pos + 4]
        vr = data[pos + 4:pos + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV"):
            length = struct.unpack("<L", data[pos + 8:pos + 12])[0]
            elem, pos = data[pos:pos + 12 + length], pos + 12 + length
        else:
            length = struct.unpack("<H", data[pos + 6:pos + 8])[0]
            elem, pos = data[pos:pos + 8 + length], pos + 8 + length
        group, el = struct.unpack("<HH", tag)
        if el == 0x0000:
            continue  # group length: rewritten below
        if el == 0x0010:
            value = uid.encode() + (b"\x00" if len(uid) % 2 else b"")
            elem = tag + b"UI" + struct.pack("<H", len(value)) + value
        elems.append(elem)
    body = b"".join(elems)
    group_len = struct.pack("<HH", 0x0002, 0x0000) + b"UL" + struct.pack("<HL", 4, len(body))
    return data[:132] + group_len + body + data[end:]


def _nested_blob(depth: int) -> bytes:
    head = struct.pack("<HH", 0x7FDF, 0x1010) + b"SQ\x00\x00" + struct.pack("<L", 0xFFFFFFFF)
    item = struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
    item_end = struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
    seq_end = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    return (head + item) * depth + (item_end + seq_end) * depth


def _pixel_pos(data: bytes) -> int:
    """Offset of the first bulk data element of an explicit-VR file (PixelData, else the first
    WaveformData), else len(data): what lies before it is "the header"."""
    start = _meta_end(data)
    for tag in (b"\xe0\x7f\x10\x00", b"\x00\x54\x10\x10"):
        hits = [i for i in (data.find(tag + vr, start) for vr in (b"OB", b"OW")) if i >= 0]
        if hits:
            return min(hits)
    return len(data)


def _append_pos(data: bytes) -> int:
    """Where an element sorting after everything but the pixel data goes."""
    start = _meta_end(data)
    hits = [i for i in (data.find(b"\xe0\x7f\x10\x00" + vr, start) for vr in (b"OB", b"OW")) if i >= 0]
    return min(hits) if hits else len(data)


def _insert_before_pixels(data: bytes, blob: bytes) -> bytes:
    pos = _append_pos(data)
    return data[:pos] + blob + data[pos:]


def _materialize_dicom(spec: CaseSpec, seed: Seed, seed_dir: Path, case_dir: Path) -> Path:
    import io

    import pydicom

    ops = spec.ops
    src = seed_dir / seed.main
    ds_ops = [op for op in ops if op[0] in ("wave_attr", "wavedata", "waveseq", "channel", "channelseq",
                                            "top", "attr", "frametime", "regions", "pixels")]
    if ds_ops:
        with _lenient_pydicom():
            ds = pydicom.dcmread(src)
            for i, op in enumerate(ds_ops):
                rng = _case_rng(spec, 30 + i)
                try:
                    (_mutate_ecg if spec.kind == "dicom_ecg" else _mutate_echo)(ds, op, rng)
                except (AttributeError, KeyError, IndexError, TypeError, ValueError):
                    if len(ds_ops) == 1:
                        raise  # a single mutation that cannot be applied is a bug of the plan
                    # else an earlier op of a compound case removed what this one changes
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=False)
            data = buf.getvalue()
    else:
        data = src.read_bytes()
    for i, op in enumerate(ops):
        rng = _case_rng(spec, 50 + i)
        if op[0] == "ts":
            data = _with_transfer_syntax(data, op[1])
        elif op[0] == "nested":
            data = _insert_before_pixels(data, _nested_blob(op[1]))
        elif op[0] == "unknown_vr":
            data = _insert_before_pixels(data, struct.pack("<HH", 0x7FDF, 0x1011) + op[1]
                                         + struct.pack("<H", 4) + b"abcd")
        elif op[0] == "no_preamble":
            data = data[132:]
        elif op[0] == "truncate":
            data = _truncate(data, rng, hi=_pixel_pos(data) + 16 if op[1] == "header" else None)
        elif op[0] == "flip":
            data = _flip(data, rng, hi=_pixel_pos(data) + 16 if op[1] == "header" else None)
    name = next((op[1] for op in ops if op[0] == "name"), None)
    dir_b = os.fsencode(case_dir)
    if name == "latin1":
        path_b = dir_b + b"/\xe9cho_caf\xe9.dcm"
    elif name == "latin1_dir":
        os.mkdir(dir_b + b"/\xe9tude")
        path_b = dir_b + b"/\xe9tude/video.dcm"
    elif name == "no_ext":
        path_b = dir_b + b"/IM_0001"
    elif name == "unicode_spaces":
        path_b = dir_b + "/vid\u00e9o  \u2028 cine.dcm".encode("utf-8")
    else:
        path_b = dir_b + b"/" + seed.main.encode()
    with open(path_b, "wb") as fh:
        fh.write(data)
    return Path(os.fsdecode(path_b))

"""ECG preprocessing to the model's input, following Echo2ECG's `process_ecg`
(ecg/data_processing/processing.py in the authors' code):

    NaN handling -> clipping (paper: +/- 4 std; e2r's default: per-lead quantile rule, see
    ECGPreprocessConfig.clip) -> baseline removal by asymmetric least squares
    (lam 1e7, p 0.3, 5 iterations) -> z-score per lead group (I-III, aVR-aVF, V1-V6)

plus what their pipeline did offline: resampling to the model's rate and a fixed window taken
from the start of the record (their CropResizing(start_idx=0)). Short records are zero-padded
after normalisation and the padding is reported. Each step is a small public function on plain
(n_leads, T) arrays; `preprocess_ecg` chains them according to an `ECGPreprocessConfig`.

The paper's z-score divides each group's voltage away, and voltage is the first ECG sign of left
ventricular hypertrophy (Sokolow-Lyon, Cornell). Two choices keep it, with the model input's shape
unchanged (12, N): "mv_softclip" (fixed mV scale, tanh soft limit; `softclip_mv`) and
"lead_groups_logscale" (the paper's z-score times a compressed function of each group's voltage;
`lead_groups_logscale`). Between baseline removal and normalisation every record's amplitude is
checked (`check_amplitude`): a QRS beyond +/-10 mV or a record under 0.05 mV peak-to-peak is a
gain or units error, refused with ECGAmplitudeError, never rescaled.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import linalg

from e2r.ecg.record import ECGRecord, check_fs
from e2r.errors import ConfigError, ECGAmplitudeError

_ALS_REFERENCE_FS = 500.0  # rate at which the paper's ALS lam was chosen (UK Biobank ECGs, 500 Hz)

# ECGPreprocessConfig.normalise choices. The first is the paper's recipe (and the default).
NORMALISE_MODES = ("lead_groups", "lead", "record", "none", "mv_softclip", "lead_groups_logscale")
# The choices whose model input keeps the absolute voltage (in full or compressed).
AMPLITUDE_MODES = ("none", "mv_softclip", "lead_groups_logscale")
# The "QRS height" of a lead: this quantile of |signal| after baseline removal. It sits on the R/S
# peaks of the typical beat (QRS takes ~10 % of a beat) while a few artefact samples cannot move
# it: PTB-XL record 421 ("lead V4 shows artifact") has an 11 mV spike and a V4 QRS of ~4 mV.
AMPLITUDE_QUANTILE = 0.99


@dataclass(frozen=True)
class ECGPreprocessConfig:
    """How an ECGRecord becomes model input. Defaults are the paper's values where it has them."""

    fs: float = 250.0  # model input sampling rate, Hz
    window_s: float = 10.0  # model input length, s; N = round(fs * window_s) samples
    crop: str = "start"  # which part of a longer record is kept: "start" (paper) or "center"
    # "interpolate": linear across gaps, whole-NaN leads -> 0; "zero": the paper's nan_to_num
    nan_fill: str = "interpolate"
    # Clipping: "quantile" per lead at median +/- clip_k * (distance from median to its clip_quantile
    # quantiles); on the 22 real ECGs in ../shared/data no R peak comes within 2.7x of that distance,
    # so k=4 cuts artefacts only. "std" is the paper's +/- 4 std of the whole record, which cuts the
    # R peaks of a typical lead by up to ~40% (QRS voltage carries LV hypertrophy); "none".
    clip: str = "quantile"
    clip_k: float = 4.0  # clipping width (paper, for clip="std": 4)
    clip_quantile: float = 0.005  # quantile for clip="quantile"
    baseline: str = "als"  # "als": asymmetric least squares (paper); "highpass": zero-phase Butterworth; "none"
    baseline_cutoff_hz: float = 0.5  # high-pass cut-off for baseline="highpass"
    als_lam: float = 1e7  # ALS smoothness at 500 Hz (paper); scaled by (fs/500)^4 so the cut-off in Hz stays put
    als_p: float = 0.3  # ALS asymmetry (paper)
    als_iter: int = 5  # ALS reweighting iterations (paper)
    notch_hz: float | None = None  # mains notch (50 or 60); off: the paper has none
    lowpass_hz: float | None = None  # zero-phase low-pass cut-off; off: the paper has none
    # "lead_groups" (paper), "lead", "record", "none" (mV as is), or the two that keep the voltage
    # robustly: "mv_softclip" and "lead_groups_logscale" (see softclip_mv, lead_groups_logscale)
    normalise: str = "lead_groups"
    lead_groups: tuple[int, ...] = (3, 6, 12)  # end index of each group: I-III, aVR-aVF, V1-V6 (paper)
    amplitude_unit_mv: float = 1.0  # "mv_softclip": mV per input unit (the linear part's scale)
    amplitude_bound_mv: float = 5.0  # "mv_softclip": tanh soft limit, mV (3 mV loses 11 %, 10 mV reads 4.8)
    scale_ref_mv: float = 1.0  # "lead_groups_logscale": group QRS height (mV) whose factor is 1
    scale_power: float = 0.5  # "lead_groups_logscale": factor ~ (height / ref)^power; 0 is the paper's z-score
    scale_max_ratio: float = 4.0  # "lead_groups_logscale": heights beyond ref x or / this saturate
    # Refusal of an implausible amplitude (after baseline removal, mV; every normalise choice):
    max_qrs_mv: float | None = 10.0  # a lead's QRS height (99th percentile of |x|) beyond this; None: no check
    min_peak_to_peak_mv: float | None = 0.05  # no lead reaching this 1st-99th percentile span; None: no check

    def __post_init__(self) -> None:
        # A config read back from JSON carries a list here; keep the record hashable and exact.
        if isinstance(self.lead_groups, list):
            object.__setattr__(self, "lead_groups", tuple(self.lead_groups))

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid field and its value."""
        choices = {
            "crop": ("start", "center"),
            "nan_fill": ("interpolate", "zero"),
            "clip": ("quantile", "std", "none"),
            "baseline": ("als", "highpass", "none"),
            "normalise": NORMALISE_MODES,
        }
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"ecg_preprocess.{name}={value!r} is not one of {', '.join(allowed)}")
        positive = ("fs", "window_s", "clip_k", "baseline_cutoff_hz", "als_lam", "amplitude_unit_mv",
                    "amplitude_bound_mv", "scale_ref_mv")
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ConfigError(f"ecg_preprocess.{name}={value!r} must be a positive number")
        if round(self.fs * self.window_s) < 1:
            raise ConfigError(f"ecg_preprocess.window_s={self.window_s!r} gives no sample at fs={self.fs}")
        if not 0 < self.clip_quantile < 0.5:
            raise ConfigError(f"ecg_preprocess.clip_quantile={self.clip_quantile!r} must lie between 0 and 0.5")
        if not 0 < self.als_p < 1:
            raise ConfigError(f"ecg_preprocess.als_p={self.als_p!r} must lie between 0 and 1")
        if not (isinstance(self.als_iter, int) and self.als_iter >= 1):
            raise ConfigError(f"ecg_preprocess.als_iter={self.als_iter!r} must be an integer >= 1")
        nyquist = self.fs / 2
        for name in ("baseline_cutoff_hz", "notch_hz", "lowpass_hz"):
            value = getattr(self, name)
            if value is not None and not 0 < value < nyquist:
                raise ConfigError(
                    f"ecg_preprocess.{name}={value!r} must lie between 0 and the Nyquist rate {nyquist:g} Hz"
                )
        groups = tuple(self.lead_groups)
        if not groups or groups[-1] != 12 or any(b <= a for a, b in zip((0, *groups), groups)):
            raise ConfigError(
                f"ecg_preprocess.lead_groups={self.lead_groups!r} must be increasing group ends ending at 12"
            )
        if not (isinstance(self.scale_power, (int, float)) and 0 <= self.scale_power <= 1):
            raise ConfigError(f"ecg_preprocess.scale_power={self.scale_power!r} must lie between 0 and 1")
        if not (isinstance(self.scale_max_ratio, (int, float)) and np.isfinite(self.scale_max_ratio)
                and self.scale_max_ratio > 1):
            raise ConfigError(f"ecg_preprocess.scale_max_ratio={self.scale_max_ratio!r} must be a number above 1")
        for name in ("max_qrs_mv", "min_peak_to_peak_mv"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ConfigError(f"ecg_preprocess.{name}={value!r} must be a positive number of mV, or None")
        if (self.max_qrs_mv is not None and self.min_peak_to_peak_mv is not None
                and self.min_peak_to_peak_mv >= self.max_qrs_mv):
            raise ConfigError(f"ecg_preprocess.min_peak_to_peak_mv={self.min_peak_to_peak_mv!r} must be below "
                              f"max_qrs_mv={self.max_qrs_mv!r}")

    @property
    def n_samples(self) -> int:
        """Model input length in samples."""
        return int(round(self.fs * self.window_s))

    @property
    def keeps_amplitude(self) -> bool:
        """True when the model input keeps the voltage in mV (in full or compressed)."""
        return self.normalise in AMPLITUDE_MODES

    def describe(self) -> str:
        """One short line: rate, window and normalisation (what `e2r index --stats` shows)."""
        norm = self.normalise
        if norm == "mv_softclip":
            norm += f" ({self.amplitude_unit_mv:g} mV/unit, soft limit {self.amplitude_bound_mv:g} mV)"
        elif norm == "lead_groups_logscale":
            norm += (f" (ref {self.scale_ref_mv:g} mV, power {self.scale_power:g}, "
                     f"max ratio {self.scale_max_ratio:g})")
        return f"{self.fs:g} Hz x {self.window_s:g} s, clip {self.clip}, baseline {self.baseline}, normalise {norm}"


@dataclass(frozen=True)
class PreprocessedECG:
    """Model input for one ECG."""

    signal: np.ndarray  # float32 (12, N), N = round(fs * window_s); normalised, zero-padded
    fs: float  # Hz
    cropped_s: float  # seconds of the record left out of the window
    padded_s: float  # seconds of zeros added because the record was shorter than the window
    notes: tuple[str, ...]  # what was done that a user should know (resampled, cropped, padded, derived leads)


def fill_nan(x: np.ndarray, mode: str = "interpolate") -> np.ndarray:
    """Replace NaN/inf per lead: linear interpolation across gaps (nearest value at the edges),
    or zeros (`mode="zero"`, the paper's nan_to_num). A lead with no finite value becomes zeros."""
    out = np.array(x, dtype=np.float64, copy=True)
    bad = ~np.isfinite(out)
    if not bad.any():
        return out
    if mode == "zero":
        out[bad] = 0.0
        return out
    t = np.arange(out.shape[-1])
    for row in range(out.shape[0]):
        missing = bad[row]
        if not missing.any():
            continue
        if missing.all():
            out[row] = 0.0
        else:
            out[row, missing] = np.interp(t[missing], t[~missing], out[row, ~missing])
    return out


def robust_clip(x: np.ndarray, mode: str = "quantile", k: float = 4.0, quantile: float = 0.005) -> np.ndarray:
    """Clip outliers (electrode pops, saturation). "quantile": per lead to median +/- k * h, h the
    larger distance from the median to its `quantile` / 1 - `quantile` values, which leaves QRS
    peaks alone; "std": to +/- k * std of the whole array, centred at 0 (the paper's rule, which
    also cuts tall R waves); "none": unchanged."""
    x = np.asarray(x, dtype=np.float64)
    if mode == "none":
        return x.copy()
    if mode == "std":
        bound = k * float(np.std(x))
        return np.clip(x, -bound, bound) if bound > 0 else x.copy()
    if mode == "quantile":
        med = np.median(x, axis=-1, keepdims=True)
        lo, hi = np.quantile(x, [quantile, 1.0 - quantile], axis=-1, keepdims=True)
        half = np.maximum(hi - med, med - lo)
        return np.clip(x, med - k * half, med + k * half)
    raise ValueError(f"unknown clip mode {mode!r}")


def _als_baseline(y: np.ndarray, lam: float, p: float, n_iter: int) -> np.ndarray:
    """Asymmetric least squares baseline (Eilers & Boelens 2005) of each row of y (L, n): minimise
    sum w (y - z)^2 + lam * sum (second difference of z)^2, reweighting w by the sign of y - z.

    Each row's system is symmetric pentadiagonal. The rows are solved as one banded system of
    L * n unknowns whose bands are cut between rows (block diagonal), so an iteration is one
    LAPACK call for all leads instead of one per lead; the blocks are the per-row systems, so the
    result is the per-row solution (to float rounding). A row whose weights came out of an
    iteration unchanged has converged (the next solve would repeat the last), so later
    iterations solve only the rows still changing: usually 4 of the 5 solves, to the same result.
    """
    one_row = y.ndim == 1
    y = np.atleast_2d(y)
    rows, n = y.shape
    # Banded lower form of lam * D'D per row, D the (n-2, n) second-difference matrix
    # (LAPACK's lower band solve is ~1.5x faster here than the upper one).
    d0 = np.full(n, 6.0)
    d0[[0, -1]] = 1.0
    d0[[1, -2]] = 5.0
    d1 = np.full(n, -4.0)  # d1[j] couples j and j+1; d1[-1] would reach into the next row
    d1[[0, -2]] = -2.0
    d1[-1] = 0.0
    d2 = np.ones(n)  # d2[j] couples j and j+2
    d2[-2:] = 0.0
    off = np.stack([np.tile(lam * d1, rows), np.tile(lam * d2, rows)])
    diag = lam * d0
    w = np.ones((rows, n))
    z = np.empty((rows, n))
    active = np.arange(rows)  # rows whose weights changed in the last iteration
    for it in range(n_iter):
        k = len(active)
        bands = np.empty((3, k * n))
        bands[0] = (diag + w[active]).reshape(-1)
        bands[1:] = off[:, :k * n]
        ya = y[active]
        za = linalg.solveh_banded(bands, (w[active] * ya).reshape(-1), lower=True,
                                  check_finite=False).reshape(k, n)
        z[active] = za
        if it == n_iter - 1:
            break
        wa = np.where(ya > za, p, 1.0 - p)
        changed = (wa != w[active]).any(axis=1)
        w[active] = wa
        active = active[changed]
        if not len(active):
            break
    return z[0] if one_row else z


def remove_baseline(
    x: np.ndarray,
    fs: float,
    mode: str = "als",
    cutoff_hz: float = 0.5,
    als_lam: float = 1e7,
    als_p: float = 0.3,
    als_iter: int = 5,
) -> np.ndarray:
    """Remove baseline wander per lead. "als": subtract an asymmetric-least-squares baseline
    (the paper; `als_lam` is for 500 Hz and scaled by (fs/500)^4 to keep its cut-off, about
    1.4 Hz, in Hz); "highpass": 2nd-order Butterworth high-pass at `cutoff_hz`, zero-phase."""
    x = np.asarray(x, dtype=np.float64)
    if mode == "none" or x.shape[-1] < 4:
        return x.copy()
    if mode == "als":
        lam = als_lam * (fs / _ALS_REFERENCE_FS) ** 4
        return x - _als_baseline(x, lam, als_p, als_iter)
    if mode == "highpass":
        from scipy import signal as sps  # ~1.5 s to import: only where a filter is asked for

        sos = sps.butter(2, cutoff_hz, btype="highpass", fs=fs, output="sos")
        return sps.sosfiltfilt(sos, x, axis=-1, padlen=min(x.shape[-1] - 1, int(3 * fs)))
    raise ValueError(f"unknown baseline mode {mode!r}")


def filter_noise(
    x: np.ndarray, fs: float, notch_hz: float | None = None, lowpass_hz: float | None = None
) -> np.ndarray:
    """Optional mains notch (quality factor 30) and zero-phase 4th-order low-pass."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] < 16 or not (notch_hz or lowpass_hz):
        return x.copy()
    from scipy import signal as sps  # ~1.5 s to import: only where a filter is asked for

    if notch_hz:
        b, a = sps.iirnotch(notch_hz, 30.0, fs=fs)
        x = sps.filtfilt(b, a, x, axis=-1, padlen=min(x.shape[-1] - 1, 3 * max(len(a), len(b))))
    if lowpass_hz:
        sos = sps.butter(4, lowpass_hz, btype="lowpass", fs=fs, output="sos")
        x = sps.sosfiltfilt(sos, x, axis=-1, padlen=min(x.shape[-1] - 1, 27))
    return x


def normalise_lead_groups(
    x: np.ndarray, mode: str = "lead_groups", groups: tuple[int, ...] = (3, 6, 12), eps: float = 1e-6
) -> np.ndarray:
    """Z-score. "lead_groups": one mean and std per group of leads (rows up to each end index in
    `groups`; the paper uses I-III, aVR-aVF, V1-V6 so that amplitude ratios between the leads of
    a group, e.g. R-wave progression, survive); "lead": per lead; "record": one for all leads.
    A group whose std is below `eps` is only centred."""
    x = np.asarray(x, dtype=np.float64)
    if mode == "none":
        return x.copy()
    if mode == "lead":
        spans = [(i, i + 1) for i in range(x.shape[0])]
    elif mode == "record":
        spans = [(0, x.shape[0])]
    elif mode == "lead_groups":
        spans = list(zip((0, *groups[:-1]), groups))
    else:
        raise ValueError(f"unknown normalise mode {mode!r}")
    out = np.empty_like(x)
    for start, end in spans:
        block = x[start:end]
        std = float(block.std())
        out[start:end] = (block - block.mean()) / (std if std > eps else 1.0)
    return out


def softclip_mv(x: np.ndarray, unit_mv: float = 1.0, bound_mv: float = 5.0) -> np.ndarray:
    """"mv_softclip": the signal in mV on a fixed scale with a smooth limit,

        y = b * tanh(x / (unit_mv * b)),   b = bound_mv / unit_mv,

    so y = x / unit_mv for small x (1 mV = 1 unit by default) and |y| < b always. Every record and
    lead shares one scale, so absolute voltage, the LVH sign, reaches the model; the tanh keeps a
    pacing spike or a wrong gain from dominating the input (with 5 mV: 3 mV reads 2.68, 10 mV 4.82)
    and its slope never drops to zero, so the order of amplitudes survives. A gain error moves the
    input by its full factor: implausible ones are refused first (check_amplitude)."""
    b = bound_mv / unit_mv
    return b * np.tanh(np.asarray(x, dtype=np.float64) / (unit_mv * b))


def lead_groups_logscale(x: np.ndarray, groups: tuple[int, ...] = (3, 6, 12), ref_mv: float = 1.0,
                         power: float = 0.5, max_ratio: float = 4.0, eps: float = 1e-6) -> np.ndarray:
    """"lead_groups_logscale": the paper's per-group z-score, times a bounded, log-compressed
    function of the group's voltage:

        y_g = (x_g - mean_g) / std_g * exp(power * L * tanh(ln(a_g / ref_mv) / L)),   L = ln(max_ratio)

    a_g is the group's QRS height in mV: the 99th percentile of |x| over its leads (the R/S peaks,
    not moved by a few artefact samples nor by heart rate as the std is). Near ref_mv the factor is
    (a_g / ref_mv)^power, and it stays within max_ratio^(-power) .. max_ratio^power (0.5-2 by
    default). Why: the z-score keeps the waveform and the ratios inside a group (the paper's
    reason) but divides the voltage away; the factor puts the voltage back, compressed. With
    power 0.5 a 1.5x taller QRS (LVH) raises the input 1.22x and a 2x gain error only 1.41x
    (a fixed mV scale: 1.5x and 2x), and no record can push the input beyond 2x the z-score's.
    power = 0 is the paper's recipe exactly. A flat group is centred only, as in the z-score."""
    x = np.asarray(x, dtype=np.float64)
    log_bound = float(np.log(max_ratio))
    out = np.empty_like(x)
    for start, end in zip((0, *groups[:-1]), groups):
        block = x[start:end]
        std = float(block.std())
        z = (block - block.mean()) / (std if std > eps else 1.0)
        height = max(float(np.quantile(np.abs(block), AMPLITUDE_QUANTILE)), eps)
        out[start:end] = z * np.exp(power * log_bound * np.tanh(np.log(height / ref_mv) / log_bound))
    return out


def normalise(x: np.ndarray, cfg: ECGPreprocessConfig) -> np.ndarray:
    """Apply cfg.normalise to a (12, T) mV array (baseline removed): the z-scores of
    normalise_lead_groups, softclip_mv or lead_groups_logscale."""
    if cfg.normalise == "mv_softclip":
        return softclip_mv(x, cfg.amplitude_unit_mv, cfg.amplitude_bound_mv)
    if cfg.normalise == "lead_groups_logscale":
        return lead_groups_logscale(x, cfg.lead_groups, cfg.scale_ref_mv, cfg.scale_power, cfg.scale_max_ratio)
    return normalise_lead_groups(x, cfg.normalise, cfg.lead_groups)


def lead_amplitudes_mv(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per lead of a baseline-free (n_leads, T) mV array: (QRS height, the 99th percentile of |x|;
    peak-to-peak, the 1st-99th percentile span). Percentiles, so one artefact sample moves neither."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = np.quantile(x, [1.0 - AMPLITUDE_QUANTILE, AMPLITUDE_QUANTILE], axis=-1)
    return np.quantile(np.abs(x), AMPLITUDE_QUANTILE, axis=-1), hi - lo


def check_amplitude(x: np.ndarray, leads: tuple[str, ...], where: str, max_qrs_mv: float | None = 10.0,
                    min_peak_to_peak_mv: float | None = 0.05) -> None:
    """ECGAmplitudeError, one line naming `where`, the lead and the amplitude, when the record's
    voltage (baseline removed, mV) cannot be a real ECG's: a lead whose QRS height is beyond
    +/- max_qrs_mv (real QRS complexes stay under ~7 mV), or no lead spanning min_peak_to_peak_mv
    (a flat record). Both are what a wrong gain or unit gives (uV stored as mV reads 1000x too
    large, mV stored as V 1000x too small); the record is refused, never rescaled to look right."""
    height, span = lead_amplitudes_mv(x)
    if max_qrs_mv is not None and height.size and float(height.max()) > max_qrs_mv:
        i = int(np.argmax(height))
        raise ECGAmplitudeError(
            f"{where}: lead {leads[i]} has a QRS of {height[i]:.3g} mV, beyond the +/-{max_qrs_mv:g} mV a real "
            "ECG reaches; check the file's gain and units (uV stored as mV reads 1000x too large); "
            "e2r does not rescale it")
    if min_peak_to_peak_mv is not None and (not span.size or float(span.max()) < min_peak_to_peak_mv):
        i = int(np.argmax(span)) if span.size else 0
        raise ECGAmplitudeError(
            f"{where}: no lead reaches {min_peak_to_peak_mv:g} mV peak-to-peak (largest: lead {leads[i]}, "
            f"{float(span[i]) if span.size else 0.0:.3g} mV); the record is flat or its gain/units are wrong "
            "(mV stored as V reads 1000x too small); e2r does not rescale it")


def _ratio(fs_in: float, fs_out: float) -> Fraction:
    ratio = Fraction(fs_out).limit_denominator(10_000) / Fraction(fs_in).limit_denominator(10_000)
    return ratio.limit_denominator(1000)  # keeps the polyphase filter short


def resampled_length(n_in: int, fs_in: float, fs_out: float) -> int:
    """Samples `resample` returns for n_in input samples (resample_poly: ceil(n_in * up / down))."""
    if fs_in == fs_out:
        return n_in
    r = _ratio(fs_in, fs_out)
    return -(-n_in * r.numerator // r.denominator)


def resample_reach(n_out: int, fs_in: float, fs_out: float) -> int:
    """Input samples that determine the first n_out resampled ones: their span plus the polyphase
    filter's half-length (resample_poly: 10 * max(up, down) taps at the up-sampled rate), plus 2."""
    r = _ratio(fs_in, fs_out)
    up, down = r.numerator, r.denominator
    return -(-n_out * down // up) + -(-10 * max(up, down) // up) + 2


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Polyphase resampling along the last axis from fs_in to fs_out: scipy.signal.resample_poly's
    filter and output (Kaiser-windowed sinc, beta 5, half-length 10 * max(up, down)), in numpy,
    because importing scipy.signal costs a search process ~1.5 s."""
    x = np.asarray(x, dtype=np.float64)
    if fs_in == fs_out:
        return x.copy()
    check_fs(fs_in, "resample")  # bounds the up-sampling factor, and so the memory it takes
    ratio = _ratio(fs_in, fs_out)
    return _resample_poly(x, ratio.numerator, ratio.denominator)


def _resample_poly(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """resample_poly(x, up, down, axis=-1) with zero padding, computing only the kept outputs."""
    if up == down:
        return x.copy()
    n_in = x.shape[-1]
    n_out = -(-n_in * up // down)
    max_rate = max(up, down)
    half_len = 10 * max_rate
    taps = np.arange(2 * half_len + 1) - half_len
    h = np.sinc(taps / max_rate) / max_rate * np.kaiser(2 * half_len + 1, 5.0)  # scipy's firwin
    h = h / h.sum() * up
    n_pre_pad = down - half_len % down
    h = np.concatenate([np.zeros(n_pre_pad), h])
    first = (half_len + n_pre_pad) // down
    rows = x.reshape(-1, n_in)
    if up <= 4:
        # Zero-insert, full convolution, keep every down-th output (upfirdn's definition).
        upsampled = np.zeros((rows.shape[0], (n_in - 1) * up + 1))
        upsampled[:, ::up] = rows
        keep = slice(first * down, (first + n_out - 1) * down + 1, down)
        out = np.stack([np.convolve(row, h)[keep] for row in upsampled])
        if out.shape[-1] < n_out:  # the filter's tail ran past the end: zeros, as upfirdn pads
            out = np.pad(out, ((0, 0), (0, n_out - out.shape[-1])))
        return out.reshape(*x.shape[:-1], n_out)
    # Large up factors (e.g. 360 -> 250 Hz is 25/36): output k is sum_m x[m] h[k*down - m*up],
    # so per output only the ceil(len(h) / up) taps that meet a real sample, not a zero.
    t = (first + np.arange(n_out)) * down  # (n_out,)
    per = -(-len(h) // up)
    m = t[:, None] // up - np.arange(per)[None, :]  # (n_out, per) input indices
    k = t[:, None] - m * up  # tap indices
    valid = (m >= 0) & (m < n_in) & (k < len(h))
    weights = np.where(valid, h[np.minimum(k, len(h) - 1)], 0.0)
    lead = rows[:, np.clip(m, 0, n_in - 1)]  # (rows, n_out, per)
    return np.einsum("rop,op->ro", lead, weights).reshape(*x.shape[:-1], n_out)


def fix_window(x: np.ndarray, n: int, crop: str = "start") -> tuple[np.ndarray, int, int]:
    """Cut or zero-pad the last axis to exactly n samples. crop="start" keeps the first n samples
    and pads at the end; "center" keeps the middle and pads both sides.
    Returns (signal, samples cropped, samples padded)."""
    x = np.asarray(x)
    t = x.shape[-1]
    if t > n:
        start = 0 if crop == "start" else (t - n) // 2
        return x[..., start : start + n].copy(), t - n, 0
    if t < n:
        before = 0 if crop == "start" else (n - t) // 2
        pad = [(0, 0)] * (x.ndim - 1) + [(before, n - t - before)]
        return np.pad(x, pad), 0, n - t
    return x.copy(), 0, 0


def preprocess_ecg(record: ECGRecord, cfg: ECGPreprocessConfig) -> PreprocessedECG:
    """Turn a record into model input: fill NaN, resample to cfg.fs, crop to the window, optional
    notch/low-pass, clip, remove baseline, refuse an implausible amplitude (ECGAmplitudeError,
    check_amplitude), normalise (cfg.normalise), zero-pad to the window."""
    cfg.validate()
    n = cfg.n_samples
    notes: list[str] = []
    if record.derived:
        notes.append(f"derived from I and II: {', '.join(record.derived)}")
    notes.extend(record.warnings)

    x = fill_nan(record.signal, cfg.nan_fill)
    cropped = 0
    if record.fs != cfg.fs:
        n_resampled = resampled_length(x.shape[-1], record.fs, cfg.fs)
        if cfg.crop == "start" and n_resampled > n:
            # Only the window is kept: resample the window plus the filter's reach, not the record
            # (a polyphase output sample depends on input samples within its half-length only).
            x = x[..., :min(x.shape[-1], resample_reach(n, record.fs, cfg.fs))]
            cropped = n_resampled - n
        x = resample(x, record.fs, cfg.fs)
        notes.append(f"resampled {record.fs:g} Hz -> {cfg.fs:g} Hz")
    if x.shape[-1] > n:
        x, more, _ = fix_window(x, n, cfg.crop)
        cropped = cropped or more
    if cropped:
        notes.append(f"cropped {cropped / cfg.fs:.2f} s, kept the {cfg.crop} {cfg.window_s:g} s")
    x = filter_noise(x, cfg.fs, cfg.notch_hz, cfg.lowpass_hz)
    x = robust_clip(x, cfg.clip, cfg.clip_k, cfg.clip_quantile)
    x = remove_baseline(
        x, cfg.fs, cfg.baseline, cfg.baseline_cutoff_hz, cfg.als_lam, cfg.als_p, cfg.als_iter
    )
    check_amplitude(x, record.leads, record.path, cfg.max_qrs_mv, cfg.min_peak_to_peak_mv)
    x = normalise(x, cfg)
    x, _, padded = fix_window(x, n, cfg.crop)
    if padded:
        notes.append(
            f"record is {record.duration_s:.2f} s: padded {padded / cfg.fs:.2f} s of zeros to {cfg.window_s:g} s"
        )
    return PreprocessedECG(
        signal=x.astype(np.float32),
        fs=float(cfg.fs),
        cropped_s=cropped / cfg.fs,
        padded_s=padded / cfg.fs,
        notes=tuple(notes),
    )

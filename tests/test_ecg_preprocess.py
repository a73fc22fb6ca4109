"""ECG preprocessing: each step on plain arrays, the config's validation, the whole chain on
synthetic and real records."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse
from scipy.sparse.linalg import spsolve

from e2r.ecg import CANONICAL_LEADS, ECGRecord, read_ecg
from e2r.ecg.preprocess import (
    ECGPreprocessConfig,
    PreprocessedECG,
    _als_baseline,
    check_amplitude,
    fill_nan,
    filter_noise,
    fix_window,
    lead_amplitudes_mv,
    lead_groups_logscale,
    normalise_lead_groups,
    preprocess_ecg,
    remove_baseline,
    resample,
    robust_clip,
    softclip_mv,
)
from e2r.errors import ConfigError, ECGAmplitudeError

SHARED_ECG = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ecg"


def sine(freq: float, fs: float, seconds: float, amp: float = 1.0) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(int(fs * seconds)) / fs)


def amplitude_at(x: np.ndarray, freq: float, fs: float) -> float:
    """Amplitude of the `freq` component of x (x spans a whole number of periods)."""
    spectrum = np.fft.rfft(x) / (x.size / 2)
    return float(np.abs(spectrum[int(round(freq * x.size / fs))]))


def spiky_ecg(fs: float, seconds: float, seed: int = 0) -> np.ndarray:
    """(12, T) mV: narrow R peaks of different heights per lead over small noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(fs * seconds)) / fs
    beats = sum(np.exp(-0.5 * ((t - b) / 0.012) ** 2) for b in np.arange(0.4, seconds, 0.85))
    gains = rng.uniform(0.3, 2.5, size=(12, 1)) * rng.choice([-1, 1], size=(12, 1))
    return gains * beats + 0.02 * rng.normal(size=(12, t.size))


def make_record(signal: np.ndarray, fs: float, derived: tuple[str, ...] = ()) -> ECGRecord:
    return ECGRecord(
        signal=signal.astype(np.float32), fs=fs, path="mem", record_name="mem",
        source_leads=CANONICAL_LEADS, derived=derived,
    )


# ---------------------------------------------------------------- steps on arrays


def test_fill_nan_interpolates_and_zeroes_dead_leads():
    x = np.array([[0.0, np.nan, 2.0, np.nan, np.nan, 5.0], [np.nan] * 6, [np.nan, 1.0, np.inf, 3.0, 4.0, np.nan]])
    out = fill_nan(x)
    np.testing.assert_allclose(out[0], [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(out[1], 0.0)
    np.testing.assert_allclose(out[2], [1, 1, 2, 3, 4, 4])  # edges take the nearest value
    zero = fill_nan(x, "zero")
    np.testing.assert_array_equal(zero[0], [0, 0, 2, 0, 0, 5])
    assert np.isnan(x).sum() == 11  # input untouched


def test_quantile_clip_keeps_qrs_and_cuts_an_artefact():
    x = spiky_ecg(250, 10)
    np.testing.assert_array_equal(robust_clip(x, "quantile", 4.0), x)
    spiked = x.copy()
    spiked[3, 1000:1003] = 40.0  # electrode pop, 40 mV
    clipped = robust_clip(spiked, "quantile", 4.0)
    assert clipped[3].max() < 15.0 and clipped[3].max() >= np.abs(x[3]).max() - 1e-9
    np.testing.assert_array_equal(clipped[[0, 1, 2]], x[[0, 1, 2]])


def test_std_clip_is_the_papers_rule_and_none_is_identity():
    x = spiky_ecg(250, 10, seed=1)
    bound = 4 * x.std()
    clipped = robust_clip(x, "std", 4.0)
    assert np.abs(clipped).max() == pytest.approx(bound)
    np.testing.assert_array_equal(clipped[np.abs(x) < bound], x[np.abs(x) < bound])
    np.testing.assert_array_equal(robust_clip(x, "none"), x)


@pytest.mark.parametrize("mode", ["als", "highpass"])
@pytest.mark.parametrize("fs", [250.0, 500.0])
def test_remove_baseline_kills_slow_wander_keeps_10_hz(mode, fs):
    slow, fast = sine(0.2, fs, 10, amp=2.0), sine(10.0, fs, 10, amp=0.5)
    out = remove_baseline(np.stack([slow + fast]), fs, mode)[0]
    inner = slice(int(fs), -int(fs))  # away from the edges
    assert np.abs(out[inner] - out[inner].mean() - fast[inner]).max() < 0.1  # wander gone
    assert amplitude_at(out, 10.0, fs) == pytest.approx(0.5, rel=0.05)  # QRS-band content kept
    assert amplitude_at(out, 0.2, fs) < 0.1  # 2.0 before


def test_als_matches_the_papers_sparse_solver():
    """The banded solver equals Echo2ECG's `baseline_als` (scipy.sparse spsolve) to 1e-8."""
    rng = np.random.default_rng(0)
    y = np.cumsum(rng.normal(size=600)) * 0.02 + sine(3.0, 250, 2.4)
    lam, p, n_iter = 1e5, 0.3, 5
    d = sparse.diags([1.0, -2.0, 1.0], [0, -1, -2], shape=(y.size, y.size - 2))
    penalty = lam * d.dot(d.transpose())
    w = np.ones(y.size)
    for _ in range(n_iter):
        z = spsolve(sparse.csc_matrix(sparse.diags(w) + penalty), w * y)
        w = p * (y > z) + (1 - p) * (y < z)
    np.testing.assert_allclose(_als_baseline(y, lam, p, n_iter), z, atol=1e-8)


@pytest.mark.parametrize("fs_in, fs_out, seconds", [
    (500, 100, 10), (250, 100, 10), (1000, 100, 3), (100, 250, 4), (360, 250, 5), (500, 250, 0.01), (257, 100, 2)])
def test_numpy_resampler_equals_scipy_resample_poly(fs_in, fs_out, seconds):
    """e2r's resampler (numpy, so a search need not import scipy.signal) is resample_poly to 1e-12."""
    from scipy.signal import resample_poly
    from e2r.ecg.preprocess import _ratio

    x = spiky_ecg(fs_in, seconds, seed=4)
    r = _ratio(fs_in, fs_out)
    expected = resample_poly(x, r.numerator, r.denominator, axis=-1)
    np.testing.assert_allclose(resample(x, fs_in, fs_out), expected, rtol=0, atol=1e-12)


def test_als_all_leads_in_one_banded_solve_equals_one_solve_per_lead():
    """The block-diagonal solve (all leads at once) is the per-lead solve to 1e-9 mV."""
    x = spiky_ecg(100.0, 10.0, seed=3) + np.cumsum(np.random.default_rng(1).normal(size=(12, 1000)), 1) * 0.01
    lam = 1e7 * (100 / 500) ** 4
    per_lead = np.stack([_als_baseline(row, lam, 0.3, 5) for row in x])
    np.testing.assert_allclose(_als_baseline(x, lam, 0.3, 5), per_lead, rtol=0, atol=1e-9)


def test_als_stops_solving_converged_leads_with_the_same_result(monkeypatch):
    """A lead whose weights come out of an iteration unchanged is not solved again: fewer
    unknowns go to LAPACK, and every lead equals the paper's full n_iter iterations (spsolve)."""
    import e2r.ecg.preprocess as pre

    x = spiky_ecg(100.0, 10.0, seed=5) + np.cumsum(np.random.default_rng(2).normal(size=(12, 1000)), 1) * 0.01
    lam, p, n_iter = 1e7 * (100 / 500) ** 4, 0.3, 5
    solved = []
    real_solve = pre.linalg.solveh_banded
    monkeypatch.setattr(pre.linalg, "solveh_banded", lambda ab, b, **kw: solved.append(b.size) or real_solve(ab, b, **kw))
    got = _als_baseline(x, lam, p, n_iter)
    assert solved[0] == x.size and sum(solved) < n_iter * x.size
    d = sparse.diags([1.0, -2.0, 1.0], [0, -1, -2], shape=(1000, 998))
    penalty = lam * d.dot(d.transpose())
    for row, z_row in zip(x, got):
        w = np.ones(row.size)
        for _ in range(n_iter):
            z = spsolve(sparse.csc_matrix(sparse.diags(w) + penalty), w * row)
            w = np.where(row > z, p, 1 - p)
        np.testing.assert_allclose(z_row, z, atol=1e-8)


def _preprocess_reference(record: ECGRecord, cfg: ECGPreprocessConfig) -> np.ndarray:
    """e2r 0.2's order: resample the whole record, crop, ..., ALS one lead at a time."""
    x = resample(fill_nan(record.signal, cfg.nan_fill), record.fs, cfg.fs)
    x, _, _ = fix_window(x, cfg.n_samples, cfg.crop)
    x = robust_clip(filter_noise(x, cfg.fs, cfg.notch_hz, cfg.lowpass_hz), cfg.clip, cfg.clip_k, cfg.clip_quantile)
    lam = cfg.als_lam * (cfg.fs / 500.0) ** 4
    x = np.stack([row - _als_baseline(row, lam, cfg.als_p, cfg.als_iter) for row in x])
    x = normalise_lead_groups(x, cfg.normalise, cfg.lead_groups)
    return fix_window(x, cfg.n_samples, cfg.crop)[0].astype(np.float32)


@pytest.mark.parametrize("fs_in, seconds", [(500.0, 10.0), (500.0, 60.0), (250.0, 30.0), (1000.0, 12.0), (360.0, 20.0)])
@pytest.mark.parametrize("fs_model", [100.0, 250.0])
def test_preprocess_at_the_models_rate_matches_the_previous_order(fs_in, seconds, fs_model):
    """Only the window (+ the resampling filter's reach) is resampled, and the ALS baseline runs
    at the model's rate for all leads at once: the output equals e2r 0.2's (resample the whole
    record, one lead at a time) within 1e-5 (z-scored units; float32 output), and says the same."""
    x = spiky_ecg(fs_in, seconds, seed=2) + np.linspace(0, 1.5, int(fs_in * seconds))  # wander
    record = make_record(x, fs_in)
    cfg = ECGPreprocessConfig(fs=fs_model)
    out = preprocess_ecg(record, cfg)
    np.testing.assert_allclose(out.signal, _preprocess_reference(record, cfg), rtol=0, atol=1e-5)
    assert out.cropped_s == pytest.approx(max(0.0, seconds - 10.0), abs=1 / fs_model)


def test_filter_noise_notch_and_lowpass():
    fs = 500.0
    x = np.stack([sine(10, fs, 4) + sine(50, fs, 4, 0.3) + sine(150, fs, 4, 0.3)])
    out = filter_noise(x, fs, notch_hz=50.0)[0]
    assert amplitude_at(out, 50, fs) < 0.02 and amplitude_at(out, 10, fs) == pytest.approx(1.0, rel=0.02)
    out = filter_noise(x, fs, lowpass_hz=40.0)[0]
    assert amplitude_at(out, 150, fs) < 0.01 and amplitude_at(out, 10, fs) == pytest.approx(1.0, rel=0.02)
    np.testing.assert_array_equal(filter_noise(x, fs), x)


def test_normalise_lead_groups_keeps_ratios_inside_a_group():
    rng = np.random.default_rng(2)
    base = rng.normal(size=1000)
    x = np.stack([k * base + 3.0 for k in range(1, 13)]).astype(float)
    out = normalise_lead_groups(x, "lead_groups", (3, 6, 12))
    for start, end in ((0, 3), (3, 6), (6, 12)):
        assert out[start:end].mean() == pytest.approx(0, abs=1e-9)
        assert out[start:end].std() == pytest.approx(1, abs=1e-9)
    assert np.std(out[1]) / np.std(out[0]) == pytest.approx(2.0)  # II twice I stays twice I
    per_lead = normalise_lead_groups(x, "lead")
    np.testing.assert_allclose(per_lead.std(axis=1), 1.0)
    assert normalise_lead_groups(x, "record").std() == pytest.approx(1.0)
    flat = normalise_lead_groups(np.full((12, 50), 0.7), "lead_groups")
    np.testing.assert_allclose(flat, 0.0, atol=1e-12)


def test_resample_lengths_and_frequency():
    x = np.stack([sine(5.0, 250, 4)] * 2)
    up = resample(x, 250, 500)
    assert up.shape == (2, 2000)
    assert amplitude_at(up[0], 5.0, 500) == pytest.approx(1.0, rel=0.01)
    assert resample(x, 250, 125).shape == (2, 500)
    assert resample(np.zeros((1, 2570)), 257, 250).shape == (1, 2500)
    np.testing.assert_array_equal(resample(x, 250, 250), x)


def test_fix_window_crop_and_pad():
    x = np.arange(10.0)[None].repeat(2, axis=0)
    out, cropped, padded = fix_window(x, 4, "start")
    np.testing.assert_array_equal(out[0], [0, 1, 2, 3])
    assert (cropped, padded) == (6, 0)
    out, cropped, _ = fix_window(x, 4, "center")
    np.testing.assert_array_equal(out[0], [3, 4, 5, 6])
    out, cropped, padded = fix_window(x, 14, "start")
    assert out.shape == (2, 14) and (cropped, padded) == (0, 4)
    np.testing.assert_array_equal(out[0, 10:], 0)
    out, _, padded = fix_window(x, 14, "center")
    np.testing.assert_array_equal(out[0], [0, 0, *range(10), 0, 0])
    out, cropped, padded = fix_window(x, 10)
    assert (cropped, padded) == (0, 0) and out is not x


# ---------------------------------------------------------------- config


def test_default_config_is_valid_and_the_papers_where_it_has_values():
    cfg = ECGPreprocessConfig()
    cfg.validate()
    assert (cfg.fs, cfg.window_s, cfg.crop, cfg.n_samples) == (250.0, 10.0, "start", 2500)
    assert (cfg.baseline, cfg.als_lam, cfg.als_p, cfg.als_iter) == ("als", 1e7, 0.3, 5)
    assert (cfg.normalise, cfg.lead_groups) == ("lead_groups", (3, 6, 12))


def test_config_from_json_is_equal():
    cfg = ECGPreprocessConfig(clip="std", lead_groups=(6, 12))
    back = ECGPreprocessConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert back == cfg and hash(back) == hash(cfg)


@pytest.mark.parametrize(
    "field, value",
    [
        ("fs", 0.0), ("window_s", -1.0), ("crop", "end"), ("nan_fill", "mean"), ("clip", "mad"),
        ("clip_k", 0), ("clip_quantile", 0.7), ("baseline", "wavelet"), ("baseline_cutoff_hz", 200.0),
        ("als_p", 1.5), ("als_iter", 0), ("notch_hz", 130.0), ("lowpass_hz", -5.0),
        ("normalise", "minmax"), ("lead_groups", (6, 3, 12)), ("lead_groups", (3, 6)),
    ],
)
def test_config_validation_names_field_and_value(field, value):
    cfg = dataclasses.replace(ECGPreprocessConfig(), **{field: value})
    with pytest.raises(ConfigError) as info:
        cfg.validate()
    assert f"ecg_preprocess.{field}={value!r}" in str(info.value)
    with pytest.raises(ConfigError):
        preprocess_ecg(make_record(np.zeros((12, 100)), 250.0), cfg)


# ---------------------------------------------------------------- the chain


def test_long_record_is_resampled_and_cropped_at_the_start():
    fs = 1000.0
    x = spiky_ecg(fs, 30)
    x[:, : int(fs * 10)] *= 3  # the first 10 s are louder: the kept window must be these
    out = preprocess_ecg(make_record(x, fs, derived=("III",)), ECGPreprocessConfig())
    assert isinstance(out, PreprocessedECG)
    assert out.signal.shape == (12, 2500) and out.signal.dtype == np.float32
    assert out.fs == 250.0 and out.cropped_s == pytest.approx(20.0) and out.padded_s == 0.0
    assert "resampled 1000 Hz -> 250 Hz" in out.notes
    assert "derived from I and II: III" in out.notes
    assert any(n.startswith("cropped 20.00 s, kept the start") for n in out.notes)
    centre = preprocess_ecg(make_record(x, fs), ECGPreprocessConfig(crop="center", normalise="none"))
    start = preprocess_ecg(make_record(x, fs), ECGPreprocessConfig(normalise="none"))
    assert np.abs(start.signal).max() > 2 * np.abs(centre.signal).max()


def test_short_record_is_padded_with_zeros_after_normalisation():
    x = spiky_ecg(500, 4.0)
    out = preprocess_ecg(make_record(x, 500.0), ECGPreprocessConfig())
    assert out.signal.shape == (12, 2500)
    assert out.padded_s == pytest.approx(6.0) and out.cropped_s == 0.0
    np.testing.assert_array_equal(out.signal[:, 1000:], 0.0)
    assert out.signal[:, :1000].std() == pytest.approx(1.0, abs=0.05)
    assert any("padded 6.00 s of zeros" in n for n in out.notes)


def test_nan_and_dead_leads_give_finite_input():
    x = spiky_ecg(250, 10)
    x[4] = np.nan
    x[7, 500:700] = np.nan
    record = dataclasses.replace(make_record(x, 250.0), warnings=("lead aVL has no valid samples (all NaN)",))
    out = preprocess_ecg(record, ECGPreprocessConfig())
    assert np.isfinite(out.signal).all()
    assert "lead aVL has no valid samples (all NaN)" in out.notes
    assert not any(n.startswith("resampled") for n in out.notes)


def test_every_option_runs():
    x = spiky_ecg(360, 12) + sine(0.3, 360, 12)  # MIT-BIH-like rate with wander
    for cfg in (
        ECGPreprocessConfig(fs=100.0, window_s=10.08, baseline="highpass", clip="std", notch_hz=45.0, lowpass_hz=40.0),
        ECGPreprocessConfig(fs=500.0, nan_fill="zero", clip="none", baseline="none", normalise="lead"),
        ECGPreprocessConfig(normalise="record", crop="center"),
    ):
        out = preprocess_ecg(make_record(x, 360.0), cfg)
        assert out.signal.shape == (12, cfg.n_samples) and np.isfinite(out.signal).all()


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_ECG.is_dir(), reason="../shared/data/ecg not present")
def test_real_records_preprocess_and_default_clip_spares_real_peaks():
    cfg = ECGPreprocessConfig()
    for header in sorted(SHARED_ECG.glob("*/*.hea")):
        record = read_ecg(header)
        out = preprocess_ecg(record, cfg)
        assert out.signal.shape == (12, 2500) and np.isfinite(out.signal).all()
        windowed, _, _ = fix_window(resample(fill_nan(record.signal), record.fs, cfg.fs), cfg.n_samples)
        clipped = robust_clip(windowed, cfg.clip, cfg.clip_k, cfg.clip_quantile)
        np.testing.assert_array_equal(clipped, windowed, err_msg=f"{header.name}: real peaks clipped")


# ---------------------------------------------------------------- amplitude-keeping inputs


def _baseline_free(x: np.ndarray, cfg: ECGPreprocessConfig) -> np.ndarray:
    """The chain up to normalisation (what the normalisers and the amplitude check see), in mV."""
    x = robust_clip(fill_nan(x), cfg.clip, cfg.clip_k, cfg.clip_quantile)
    return remove_baseline(x, cfg.fs, cfg.baseline, cfg.baseline_cutoff_hz, cfg.als_lam, cfg.als_p, cfg.als_iter)


def test_softclip_mv_is_linear_near_zero_and_bounded():
    x = np.array([[0.0, 0.1, -0.1, 1.0, 3.0, 10.0, -1e6]])
    y = softclip_mv(x, unit_mv=1.0, bound_mv=5.0)
    np.testing.assert_allclose(y, 5.0 * np.tanh(x / 5.0))  # the docstring's formula
    assert y[0, 1] == pytest.approx(0.1, rel=1e-3) and y[0, 4] == pytest.approx(2.68, abs=0.01)
    assert y[0, 5] == pytest.approx(4.82, abs=0.01) and y[0, -1] == pytest.approx(-5.0)
    assert np.all(np.diff(y[0, [6, 0, 1, 3, 4, 5]]) > 0)  # order of amplitudes kept
    np.testing.assert_allclose(softclip_mv(x[:, :3], unit_mv=0.5), 2 * x[:, :3], rtol=1e-3)


def test_logscale_is_the_papers_zscore_times_a_bounded_compressed_group_voltage():
    x = spiky_ecg(250, 10, seed=3)
    groups = (3, 6, 12)
    paper = normalise_lead_groups(x, "lead_groups", groups)
    np.testing.assert_allclose(lead_groups_logscale(x, groups, power=0.0), paper, atol=1e-12)
    out = lead_groups_logscale(x, groups, ref_mv=1.0, power=0.5, max_ratio=4.0)
    for start, end in zip((0, 3), groups):  # one factor per group, computed as the docstring says
        height = np.quantile(np.abs(x[start:end]), 0.99)
        factor = np.exp(0.5 * np.log(4.0) * np.tanh(np.log(height) / np.log(4.0)))
        np.testing.assert_allclose(out[start:end], paper[start:end] * factor, rtol=1e-10)
    # a 2x gain error moves the input by less than sqrt(2) (a fixed mV scale: 2x); z-score: not at all
    ratio = np.abs(lead_groups_logscale(2 * x, groups)).mean() / np.abs(out).mean()
    assert 1.1 < ratio <= np.sqrt(2) + 1e-9
    np.testing.assert_allclose(normalise_lead_groups(2 * x, "lead_groups", groups), paper, atol=1e-9)
    huge = lead_groups_logscale(1000 * x, groups)  # the factor saturates at max_ratio ** power = 2
    np.testing.assert_allclose(huge, 2.0 * paper, rtol=1e-3)


@pytest.mark.parametrize("mode", ["mv_softclip", "lead_groups_logscale"])
def test_amplitude_modes_keep_voltage_the_papers_recipe_divides_away(mode):
    x = spiky_ecg(500, 10, seed=4)
    cfg = ECGPreprocessConfig(normalise=mode)
    small, tall = (preprocess_ecg(make_record(k * x, 500.0), cfg).signal for k in (1.0, 1.5))
    assert small.shape == tall.shape == (12, 2500)
    assert 1.1 < np.abs(tall).mean() / np.abs(small).mean() < 1.6  # a 1.5x taller ECG reads taller
    paper = ECGPreprocessConfig()
    np.testing.assert_allclose(preprocess_ecg(make_record(1.5 * x, 500.0), paper).signal,
                               preprocess_ecg(make_record(x, 500.0), paper).signal, atol=1e-4)
    assert cfg.keeps_amplitude and not paper.keeps_amplitude and mode in cfg.describe()


@pytest.mark.parametrize("gain, needle", [(1000.0, "beyond the +/-10 mV"), (0.001, "no lead reaches 0.05 mV")])
@pytest.mark.parametrize("mode", ["lead_groups", "mv_softclip"])
def test_an_implausible_amplitude_is_refused_naming_file_lead_and_mv(gain, needle, mode):
    x = spiky_ecg(500, 10, seed=5)
    record = dataclasses.replace(make_record(gain * x, 500.0), path="/data/ecg/rec042")
    with pytest.raises(ECGAmplitudeError) as info:
        preprocess_ecg(record, ECGPreprocessConfig(normalise=mode))
    msg = str(info.value)
    assert msg.startswith("/data/ecg/rec042: ") and needle in msg and "\n" not in msg
    assert "does not rescale" in msg and " mV" in msg
    cfg = ECGPreprocessConfig()
    height, span = lead_amplitudes_mv(_baseline_free(resample(gain * x, 500.0, cfg.fs), cfg))
    lead = CANONICAL_LEADS[int(np.argmax(height if gain > 1 else span))]
    assert f"lead {lead}" in msg
    off = ECGPreprocessConfig(normalise=mode, max_qrs_mv=None, min_peak_to_peak_mv=None)
    assert np.isfinite(preprocess_ecg(record, off).signal).all()  # the check can be switched off


def test_one_artefact_spike_or_a_dead_lead_is_not_a_refusal():
    x = spiky_ecg(500, 10, seed=6)
    x[9, 2481:2490] = -11.0  # PTB-XL record 421's V4 artefact: an 11 mV spike of a few samples
    x[4] = 0.0  # a dead lead
    out = preprocess_ecg(make_record(x, 500.0), ECGPreprocessConfig(normalise="mv_softclip"))
    assert np.isfinite(out.signal).all() and np.abs(out.signal).max() < 5.0
    check_amplitude(np.zeros((12, 10)) + 0.01 * np.arange(10), CANONICAL_LEADS, "mem", min_peak_to_peak_mv=None)


@pytest.mark.parametrize("field, value", [
    ("amplitude_unit_mv", 0.0), ("amplitude_bound_mv", -1.0), ("scale_ref_mv", 0.0), ("scale_power", 1.5),
    ("scale_max_ratio", 1.0), ("max_qrs_mv", 0.0), ("min_peak_to_peak_mv", float("nan")), ("min_peak_to_peak_mv", 20.0),
])
def test_amplitude_settings_are_validated(field, value):
    with pytest.raises(ConfigError) as info:
        dataclasses.replace(ECGPreprocessConfig(), **{field: value}).validate()
    assert f"ecg_preprocess.{field}={value!r}" in str(info.value)


def test_a_config_of_an_older_bundle_reads_with_the_checks_and_the_papers_recipe():
    old = {k: v for k, v in dataclasses.asdict(ECGPreprocessConfig()).items()
           if k not in ("amplitude_unit_mv", "amplitude_bound_mv", "scale_ref_mv", "scale_power", "scale_max_ratio",
                        "max_qrs_mv", "min_peak_to_peak_mv")}
    cfg = ECGPreprocessConfig(**old)
    assert cfg == ECGPreprocessConfig() and cfg.normalise == "lead_groups" and cfg.max_qrs_mv == 10.0


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_ECG.is_dir(), reason="../shared/data/ecg not present")
def test_no_real_record_is_refused_and_every_mode_gives_finite_input():
    """Every real record in ../shared/data/ecg (PTB-XL's 500 at 500 Hz, CinC, PTB) passes the
    amplitude check, which runs before normalisation and so is the same for every mode."""
    headers = sorted(h for h in SHARED_ECG.rglob("*.hea") if "records100" not in h.parts)
    cfg = ECGPreprocessConfig(fs=100.0)
    inputs = [preprocess_ecg(read_ecg(h), cfg) for h in headers]  # raises on a refusal
    assert len(inputs) == len(headers) >= 21
    for mode in ("mv_softclip", "lead_groups_logscale"):
        for h in headers[:: max(1, len(headers) // 25)]:
            out = preprocess_ecg(read_ecg(h), dataclasses.replace(cfg, normalise=mode))
            assert np.isfinite(out.signal).all() and np.abs(out.signal).max() < 50, h.name

"""The clinical ECG criteria (e2r.ecg.criteria): known amplitudes on a numpy-built 12-lead ECG give
the right mV, a broad QRS with LBBB morphology is called LBBB and a narrow one is not, the
labelled-ECG path scores the voltage rules like scikit-learn, and PTB-XL's voltages separate its
LVH records (skipped without ../shared/data)."""

from __future__ import annotations

import ast
import csv
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from e2r.ecg.criteria import measure_criteria

FS = 500.0
PTBXL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ecg" / "ptbxl"
I, AVL, V1, V3, V5, V6 = 0, 4, 6, 8, 10, 11


def _gauss(t: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((t - centre) / width) ** 2)


def synthetic_ecg(r: dict[int, float], s: dict[int, float], qrs_ms: float = 90.0, lbbb: bool = False,
                  hr: float = 70.0, seconds: float = 10.0) -> np.ndarray:
    """(12, T) mV: each beat's QRS is an R wave of r[lead] mV followed by an S wave of s[lead] mV
    (an LBBB beat: a slow, notched R peaking late, and a QS in V1); a T wave after; 0.3 mV offset."""
    t = np.arange(int(seconds * FS)) / FS
    sig = np.full((12, t.size), 0.3)
    w = qrs_ms / 1000.0
    for beat in np.arange(0.5, seconds - 0.6, 60.0 / hr):
        for k in range(12):
            if lbbb and k in (I, AVL, V5, V6):  # broad notched R, no q, peak late in the QRS
                sig[k] += r.get(k, 0.0) * (0.8 * _gauss(t, beat - 0.15 * w, 0.12 * w)
                                           + _gauss(t, beat + 0.22 * w, 0.12 * w))
            else:
                sig[k] += r.get(k, 0.0) * _gauss(t, beat - 0.12 * w, 0.09 * w)
                sig[k] -= s.get(k, 0.0) * _gauss(t, beat + 0.18 * w, 0.09 * w if not lbbb else 0.2 * w)
            sig[k] += 0.2 * _gauss(t, beat + 0.3, 0.05)
    return sig


# R and S amplitudes of a left-ventricular hypertrophy: SV1 2.1, RV5 2.4 (RV6 1.9): Sokolow 4.5 mV;
# RaVL 1.3, SV3 1.6: Cornell 2.9 mV.
R = {I: 1.0, 1: 1.2, 2: 0.4, AVL: 1.3, 5: 0.6, V1: 0.2, 7: 0.4, V3: 0.6, 9: 1.5, V5: 2.4, V6: 1.9}
S = {3: 0.9, V1: 2.1, 7: 1.9, V3: 1.6, 9: 0.8, V5: 0.3, V6: 0.1}


def test_voltages_of_known_amplitudes():
    c = measure_criteria(synthetic_ecg(R, S), FS, sex="F")
    assert c.n_beats >= 8
    # the band-pass (0.5-40 Hz) and the beat's Gaussian overlap cost a few percent of a wave
    np.testing.assert_allclose(c.s_mv[V1], 2.1, rtol=0.08)
    np.testing.assert_allclose(c.r_mv[V5], 2.4, rtol=0.08)
    np.testing.assert_allclose(c.r_mv[AVL], 1.3, rtol=0.08)
    np.testing.assert_allclose(c.s_mv[V3], 1.6, rtol=0.08)
    assert c.sokolow_lyon_mv == pytest.approx(c.s_mv[V1] + c.r_mv[V5])
    assert c.cornell_mv == pytest.approx(c.r_mv[AVL] + c.s_mv[V3])
    np.testing.assert_allclose([c.sokolow_lyon_mv, c.cornell_mv], [4.5, 2.9], rtol=0.08)
    assert c.sokolow_lyon_lvh and c.cornell_lvh is True  # women: > 2.0 mV
    assert 70 <= c.qrs_ms <= 115 and not c.lbbb
    small = measure_criteria(synthetic_ecg({k: v / 3 for k, v in R.items()}, {k: v / 3 for k, v in S.items()}), FS)
    np.testing.assert_allclose(small.sokolow_lyon_mv, c.sokolow_lyon_mv / 3, rtol=0.05)
    assert not small.sokolow_lyon_lvh and small.cornell_lvh is None  # no sex, no Cornell threshold


def test_lbbb_on_a_broad_notched_qrs():
    broad = measure_criteria(synthetic_ecg(R, S, qrs_ms=160.0, lbbb=True), FS)
    assert broad.qrs_ms >= 120 and broad.r_peak_time_ms > 60 and broad.lbbb
    # the same broad QRS without LBBB morphology (an R in V1 as tall as its S) is not LBBB
    rbbb_like = measure_criteria(synthetic_ecg({**R, V1: 2.0}, S, qrs_ms=160.0, lbbb=True), FS)
    assert rbbb_like.qrs_ms >= 120 and not rbbb_like.lbbb
    # a narrow QRS is never LBBB
    assert not measure_criteria(synthetic_ecg(R, S, qrs_ms=80.0, lbbb=True), FS).lbbb


def test_flat_record_and_missing_lead():
    flat = measure_criteria(np.zeros((12, 5000)), FS)
    assert flat.n_beats == 0 and np.isnan(flat.sokolow_lyon_mv) and not flat.lbbb
    sig = synthetic_ecg(R, S)
    sig[V1] = np.nan
    c = measure_criteria(sig, FS)
    assert np.isnan(c.s_mv[V1]) and np.isnan(c.sokolow_lyon_mv) and np.isfinite(c.cornell_mv)
    with pytest.raises(ValueError, match=r"\(12, T\)"):
        measure_criteria(np.zeros((8, 5000)), FS)


def test_labelled_path_scores_the_voltage_rules_like_sklearn(tmp_path):
    """score_labelled with a stand-in searcher: the criteria's AUROC on the LVH labels is
    roc_auc_score of the voltages measured on the same records."""
    import wfdb
    from sklearn.metrics import roc_auc_score

    from e2r.datasets.ecg_labels import LabelledECG, LabelSet
    from queries.eval.labelled import render_labelled_markdown, score_labelled

    rng = np.random.default_rng(0)
    items, names = [], ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    for i in range(12):
        lvh = int(i % 3 == 0)
        gain = float(rng.uniform(0.5, 1.0) + 0.4 * lvh)
        sig = synthetic_ecg({k: v * gain for k, v in R.items()}, {k: v * gain for k, v in S.items()})
        sig += 0.01 * rng.standard_normal(sig.shape)
        wfdb.wrsamp(f"r{i}", fs=FS, units=["mV"] * 12, sig_name=names, p_signal=sig.T, fmt=["16"] * 12,
                    write_dir=str(tmp_path))
        items.append(LabelledECG(str(tmp_path / f"r{i}"), f"r{i}", lvh))
    labels = LabelSet(str(tmp_path / "labels.csv"), "csv", tuple(items))

    class Searcher:  # the kNN vote stands in: a constant-free score per path
        collection, model_hash = "c", "h"

        def search_many(self, paths, top_k, k):
            for j, p in enumerate(paths):
                yield p, SimpleNamespace(estimate={"p_lvh": float(j) / len(paths)}), None

    res = score_labelled(Searcher(), labels, k=5, n_boot=200, progress=False)
    crit = res["targets"]["lvh"]["criteria"]
    y = [it.lvh for it in items]
    want = {name: [] for name in ("sokolow_lyon", "cornell")}
    for it in items:
        c = measure_criteria(wfdb.rdrecord(it.path).p_signal.T, FS)
        want["sokolow_lyon"].append(c.sokolow_lyon_mv)
        want["cornell"].append(c.cornell_mv)
    assert crit["unmeasured"] == 0
    for name, score in want.items():
        assert crit[name]["auroc"] == pytest.approx(roc_auc_score(y, score))
        assert crit[name]["positives"] == 4 and crit[name]["ci_low"] <= crit[name]["auroc"] <= crit[name]["ci_high"]
    md = render_labelled_markdown(res)
    assert "| Sokolow-Lyon voltage | " in md and "| Cornell voltage | " in md


@pytest.mark.skipif(not (PTBXL / "ptbxl_database.csv").is_file(), reason="../shared/data/ecg/ptbxl absent")
def test_ptbxl_voltage_separates_lvh():
    """Sixty real PTB-XL records (every LVH one among them): voltage is higher with LVH, and the
    CLBBB records are called LBBB. Validation only: nothing is fitted."""
    from e2r.ecg import read_ecg
    from e2r.ecg.criteria import record_criteria

    with (PTBXL / "ptbxl_database.csv").open(newline="") as fh:
        rows = [(r["filename_hr"], set(ast.literal_eval(r["scp_codes"]))) for r in csv.DictReader(fh)]
    chosen = [r for r in rows if "LVH" in r[1] or "CLBBB" in r[1]] + [r for r in rows if "NORM" in r[1]][:20]
    got = [(record_criteria(read_ecg(PTBXL / f)), codes) for f, codes in chosen]
    lvh = [c.sokolow_lyon_mv for c, codes in got if "LVH" in codes]
    norm = [c.sokolow_lyon_mv for c, codes in got if "NORM" in codes]
    assert np.median(lvh) > np.median(norm) + 0.8
    lbbb = [c.lbbb for c, codes in got if "CLBBB" in codes]
    assert np.mean(lbbb) >= 0.5 and not any(c.lbbb for c, codes in got if "NORM" in codes)


def test_beats_are_found_at_1000_hz_where_xqrs_alone_finds_none():
    """XQRS found no beat in about a quarter of the phantom's 1000 Hz records; detection runs on a
    500 Hz copy and the indices come back at the record's rate."""
    from e2r.ecg.beats import DETECT_MAX_FS, detect_beats, median_beat
    from e2r.phantom.ecg_synth import synth_ecg
    from e2r.phantom.latent import draw_baseline_exam

    found = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        sig, truth = synth_ecg(draw_baseline_exam(rng), rng, fs=1000.0)
        peaks = detect_beats(sig, 1000.0)
        _, n_beats = median_beat(sig, 1000.0)
        found.append((len(peaks), n_beats))
        # indices at 1000 Hz: beats about one RR apart (0.3-2 s), inside the 10 s record
        assert len(peaks) >= 4 and 300 < np.median(np.diff(peaks)) < 2000 and peaks.max() < sig.shape[1]
    assert all(n > 0 for _, n in found) and DETECT_MAX_FS == 500.0

"""The per-view probe table (trainer.view_probe, `e2r synth-report --tower`): structure, the ridge
probe against a plain numpy reference, and the expectations against the published ordering."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from e2r.cli import app
from e2r.phantom.cohort import write_cohort
from e2r.presets import get_preset, with_overrides
from trainer.view_probe import (CLIP, RIDGE_ALPHAS, STUDY, ViewProbe, fit_ridge, probe_cell, probe_table,
                                study_means, view_expectations)

SMALL = {"size": 48, "frames": 8, "workers": 1}


def _ridge_reference(x, y, alpha):
    """Closed-form ridge with an unpenalised intercept on standardised features."""
    mean, sd = x.mean(axis=0), x.std(axis=0)
    xs = (x - mean) / sd
    w = np.linalg.solve(xs.T @ xs + alpha * np.eye(x.shape[1]), xs.T @ (y - y.mean()))
    return lambda q: ((q - mean) / sd) @ w + y.mean()


def _loo_error(x, y, alpha):
    """Leave-one-out squared error by refitting n times (what RidgeCV computes in closed form)."""
    mean, sd = x.mean(axis=0), x.std(axis=0)
    xs = (x - mean) / sd
    err = 0.0
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        xk, yk = xs[keep], y[keep]
        xm, ym = xk.mean(axis=0), yk.mean()
        w = np.linalg.solve((xk - xm).T @ (xk - xm) + alpha * np.eye(x.shape[1]), (xk - xm).T @ (yk - ym))
        err += float((xs[i] - xm) @ w + ym - y[i]) ** 2
    return err


def test_ridge_probe_matches_a_brute_force_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 6)) * [1, 2, 3, 0.5, 1, 4] + 3
    y = x @ rng.normal(size=6) + rng.normal(scale=2.0, size=30)
    fit = fit_ridge(x, y)
    q = rng.normal(size=(7, 6))
    np.testing.assert_allclose(fit.predict(q), _ridge_reference(x, y, fit.alpha)(q), rtol=1e-6, atol=1e-8)
    errors = [_loo_error(x, y, a) for a in RIDGE_ALPHAS]
    assert fit.alpha == pytest.approx(RIDGE_ALPHAS[int(np.argmin(errors))])


def test_probe_cell_scores_on_val_and_skips_missing_targets():
    rng = np.random.default_rng(1)
    x_tr, x_va = rng.normal(size=(40, 4)), rng.normal(size=(20, 4))
    w = np.array([1.0, -1.0, 0.5, 0.0])
    y_tr, y_va = x_tr @ w + 0.1 * rng.normal(size=40), x_va @ w + 0.1 * rng.normal(size=20)
    y_tr[:3] = np.nan
    y_va[:2] = np.nan
    r, r2 = probe_cell(x_tr, y_tr, x_va, y_va)
    pred = _ridge_reference(x_tr[3:], y_tr[3:], fit_ridge(x_tr[3:], y_tr[3:]).alpha)(x_va[2:])
    truth = y_va[2:]
    assert r == pytest.approx(np.corrcoef(pred, truth)[0, 1])
    assert r2 == pytest.approx(1 - ((truth - pred) ** 2).sum() / ((truth - truth.mean()) ** 2).sum())
    assert all(np.isnan(probe_cell(x_tr[:4], y_tr[:4], x_va, y_va)))  # too few clips: no cell


def _clips(rng, n_studies, views=("A4C", "A2C", "PSAX", "PLAX")):
    """Per-clip features that carry the study's value only in A4C and A2C."""
    value = rng.normal(size=(n_studies, 2))
    feats, targets, vs, study = [], [], [], []
    for k in range(n_studies):
        for v in views:
            signal = value[k] if v in ("A4C", "A2C") else np.zeros(2)
            feats.append(np.concatenate([signal, rng.normal(size=3)]))
            targets.append(value[k])
            vs.append(v)
            study.append(k)
    return np.array(feats), np.array(targets), vs, np.array(study)


def test_probe_table_rows_counts_and_study_means():
    rng = np.random.default_rng(2)
    f_tr, y_tr, v_tr, s_tr = _clips(rng, 40)
    f_va, y_va, v_va, s_va = _clips(rng, 15)
    table = probe_table(f_tr, y_tr, v_tr, s_tr, f_va, y_va, v_va, s_va, ("lvef", "lvedv"))
    assert table.rows == ("A4C", "A2C", "PSAX", "PLAX", CLIP, STUDY)
    assert table.n_val == {"A4C": 15, "A2C": 15, "PSAX": 15, "PLAX": 15, CLIP: 60, STUDY: 15}
    assert table.n_train[STUDY] == 40 and table.n_train[CLIP] == 160
    assert table.r["A4C"]["lvef"] > 0.9 and abs(table.r["PLAX"]["lvef"]) < 0.6
    xs_tr, ys_tr = study_means(f_tr, y_tr, s_tr)
    np.testing.assert_allclose(xs_tr[3], f_tr[s_tr == 3].mean(axis=0))
    xs_va, ys_va = study_means(f_va, y_va, s_va)
    assert table.r[STUDY]["lvedv"] == pytest.approx(probe_cell(xs_tr, ys_tr[:, 1], xs_va, ys_va[:, 1])[0])
    json.dumps(table.as_dict())


def _table(r: dict[str, dict[str, float]], clip_r2: float, study_r2: float) -> ViewProbe:
    fields = tuple(next(iter(r.values())))
    return ViewProbe(fields, (*r, CLIP, STUDY), r, {CLIP: {"lvef": clip_r2}, STUDY: {"lvef": study_r2}}, {}, {})


def test_expectations_pass_on_the_published_ordering_and_fail_on_v1_like_tables():
    published = {  # EchoPrime's MIL weights, read as r
        "A4C": {"lvef": 0.65, "ivsd": 0.5, "la_volume": 1.0, "rv_diameter": 0.71},
        "A2C": {"lvef": 1.0, "ivsd": 0.5, "la_volume": 0.67, "rv_diameter": 0.09},
        "PSAX": {"lvef": 0.6, "ivsd": 0.7, "la_volume": 0.21, "rv_diameter": 0.37},
        "PLAX": {"lvef": 0.49, "ivsd": 0.8, "la_volume": 0.01, "rv_diameter": 0.33},
    }
    figures = view_expectations(_table(published, 0.56, 0.675))
    assert [f.name.split(":")[0] for f in figures] == ["views lvef", "views ivsd", "views la_volume",
                                                        "views rv_diameter", "study over one clip"]
    assert all(f.passed for f in figures), figures
    flat = {v: dict.fromkeys(published["A4C"], 0.93) for v in published}  # every view carries everything
    figures = view_expectations(_table(flat, 0.9, 0.91))
    assert not any(f.passed for f in figures)
    missing = {v: row for v, row in published.items() if v != "PSAX"}  # a view without clips fails
    assert not view_expectations(_table(missing, 0.56, 0.675))[0].passed


@pytest.fixture(scope="module")
def v2_cohort_and_tower(tmp_path_factory):
    from trainer.config import make_train_config
    from trainer.echo_pretrain import ECHO_DEFAULTS, train_echo_tower

    root = tmp_path_factory.mktemp("v2")
    write_cohort(root / "c", 24, seed=2, version=2, progress=False, **SMALL)
    preset = with_overrides(get_preset("tiny"), echo__size=(32, 32), echo__n_frames=8, echo__width=4)
    cfg = make_train_config(root / "c", root / "tower", defaults=ECHO_DEFAULTS, cache_dir=str(root / "cache"),
                            epochs=1, batch_size=8, progress=False, seed=0, warmup_epochs=0)
    train_echo_tower(cfg, preset.echo, min_studies=4)
    return root / "c", root / "tower", root / "cache"


def test_synth_report_with_a_tower_prints_the_view_table(v2_cohort_and_tower):
    cohort, tower, cache = v2_cohort_and_tower
    res = CliRunner().invoke(app, ["synth-report", str(cohort), "--tower", str(tower), "--cache-dir", str(cache),
                                   "--json"])
    assert res.exit_code in (0, 2), res.output  # 2: a tiny cohort misses bars; quality is not tested here
    views = json.loads(res.stdout)["views"]
    assert views["fields"][-1] == "wmsi" and views["rows"][-2:] == [CLIP, STUDY]
    assert {"A4C", "A2C"} <= set(views["rows"]) and set(views["r"]) == set(views["rows"])
    assert [e["name"].split(":")[0] for e in views["expectations"]][-1] == "study over one clip"
    res = CliRunner().invoke(app, ["synth-report", str(cohort), "--tower", str(tower), "--cache-dir", str(cache)])
    assert "What each view carries" in res.output and "Against the published ordering" in res.output


def test_synth_report_still_reads_a_v1_cohort(tmp_path):
    write_cohort(tmp_path / "v1", 6, seed=1, progress=False, **SMALL)
    res = CliRunner().invoke(app, ["synth-report", str(tmp_path / "v1"), "--json"])
    assert res.exit_code in (0, 2), res.output
    doc = json.loads(res.stdout)
    assert doc["figures"] and "views" not in doc

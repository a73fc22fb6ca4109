"""The one training loop, driven by the alignment task on a tiny cohort: bundle, log, selection,
resume, NaN handling."""

from __future__ import annotations

import json

import pytest
import torch

import trainer.loop as loop
from trainer.align import AlignTask, train
from e2r.errors import ConfigError
from e2r.presets import get_preset, with_overrides
from trainer.config import make_train_config
from trainer.paired_data import load_paired_data


@pytest.fixture(scope="module")
def cohort(tiny_cohort):
    return tiny_cohort


# The tiny preset made smaller still, so each test trains in a second or two.
PRESET = with_overrides(get_preset("tiny"), echo__size=(32, 32), echo__n_frames=8, echo__width=4,
                        ecg__depth=1)


@pytest.fixture(scope="module")
def data(cohort, tmp_path_factory):
    cfg = make_train_config(cohort, tmp_path_factory.mktemp("o"), min_pairs=4, progress=False,
                            cache_dir=str(tmp_path_factory.mktemp("cache")))
    return load_paired_data(cfg, PRESET)


def _cfg(cohort, out, **kw):
    kw = {"epochs": 2, "batch_size": 4, "min_pairs": 4, "progress": False, "seed": 3,
          "warmup_epochs": 1, **kw}
    return make_train_config(cohort, out, cache_dir=str(out.parent / "cache"), **kw)


def test_train_two_epochs_writes_loadable_bundle(cohort, tmp_path):
    from e2r.bundle import load_model

    out = tmp_path / "model"
    result = train(_cfg(cohort, out), preset=PRESET)
    assert result.epochs == 2 and result.start_epoch == 0 and 1 <= result.best_epoch <= 2
    assert result.data_summary["train_pairs"] == 9 and result.data_summary["val_pairs"] == 3
    for key in ("val_recall@1", "val_recall@10", "val_chance_recall@1", "val_mean_rank", "val_loss",
                "val_pheno_map", "val_knn_le45_auroc"):
        assert key in result.best_metrics
    lines = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert all(r["items_per_s"] > 0 and r["train_loss"] > 0 for r in lines)
    # the best epoch is the best by validation phenotype-aware mAP, not by the loss
    assert result.select_metric == "val_pheno_map"
    assert result.best_epoch == 1 + max(range(2), key=lambda i: (lines[i]["val_pheno_map"], -i))
    loaded = load_model(out)
    assert loaded.hash == result.bundle_hash
    best = torch.load(out / "checkpoints" / "best.pt", weights_only=False)["model"]
    for k, v in loaded.model.state_dict().items():
        torch.testing.assert_close(v, best[k])
    assert loaded.meta["data_summary"]["train_pairs"] == 9
    assert loaded.meta["train_config"]["epochs"] == 2


def _interrupt_after(monkeypatch, n_calls, exc):
    real = AlignTask.step
    calls = {"n": 0}

    def step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > n_calls:
            if exc == "nan":
                out = real(self, *args, **kwargs)
                return {**out, "loss": out["loss"] * float("nan")}
            raise exc
        return real(self, *args, **kwargs)

    monkeypatch.setattr(AlignTask, "step", step)


def test_resume_after_interruption_matches_uninterrupted_run(cohort, data, tmp_path, monkeypatch):
    full = train(_cfg(cohort, tmp_path / "full"), data=data, preset=PRESET)
    # 9 train pairs, batch 4 -> 2 steps per epoch; die in the middle of epoch 2.
    _interrupt_after(monkeypatch, 3, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(cohort, tmp_path / "cut"), data=data, preset=PRESET)
    ckpt = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["epoch"] == 1 and ckpt["step"] == 2
    assert not (tmp_path / "cut" / "bundle.json").exists()
    monkeypatch.undo()
    resumed = train(_cfg(cohort, tmp_path / "cut", resume=True), data=data, preset=PRESET)
    assert resumed.start_epoch == 1 and resumed.epochs == 2
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    for a, b in zip(full.history, resumed.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)
    last = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=False)
    ref = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=False)
    assert last["step"] == ref["step"] == 4
    for k, v in ref["model"].items():
        torch.testing.assert_close(last["model"][k], v, atol=1e-5, rtol=1e-4)
    # The optimiser state continued: Adam's step counters count both epochs.
    steps = [s["step"] for s in last["optimizer"]["state"].values()]
    assert all(float(s) == 4 for s in steps)
    log_lines = (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in log_lines] == [1, 2]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(cohort, data, tmp_path, monkeypatch):
    _interrupt_after(monkeypatch, 2, "nan")
    out = tmp_path / "nan"
    with pytest.raises(loop.TrainingDivergedError, match=r"epoch 2 \(loss is nan\).*epoch 1.*last.pt"):
        train(_cfg(cohort, out), data=data, preset=PRESET)
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["epoch"] == 1
    assert not (out / "bundle.json").exists()


def test_resume_without_checkpoint_is_a_clear_error(cohort, data, tmp_path):
    with pytest.raises(ConfigError, match="--resume: no checkpoint"):
        train(_cfg(cohort, tmp_path / "none", resume=True), data=data, preset=PRESET)


def test_resume_with_other_preset_settings_refused(cohort, data, tmp_path, monkeypatch):
    _interrupt_after(monkeypatch, 2, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(cohort, tmp_path / "m"), data=data, preset=PRESET)
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="--aggregation"):
        train(_cfg(cohort, tmp_path / "m", resume=True, aggregation="mean"), data=data, preset=PRESET)


def test_lr_schedule_warms_up_then_decays():
    f = loop.lr_lambda(4, 20)
    vals = [f(s) for s in range(20)]
    assert vals[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(vals[3:], vals[4:])) and vals[-1] < 0.02

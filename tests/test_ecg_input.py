"""The ECG input a bundle records (ECGPreprocessConfig.normalise and the amplitude checks) through
the bundle, `e2r index` (refusal, --stats), `e2r search` (refusal), `e2r embed` (a refused record
skipped and counted), and a bundle written before the amplitude settings existed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from e2r.bundle import load_model, save_untrained_bundle
from e2r.cli import app
from e2r.errors import BundleError, StoreError
from e2r.presets import get_preset, with_overrides
from test_indexer import _write_archive, _write_phenotypes

runner = CliRunner()
pytestmark = pytest.mark.xdist_group("indexer")
NEW_FIELDS = ("amplitude_unit_mv", "amplitude_bound_mv", "scale_ref_mv", "scale_power", "scale_max_ratio",
              "max_qrs_mv", "min_peak_to_peak_mv")


@pytest.fixture(scope="module")
def two_inputs(tmp_path_factory):
    """An archive and two untrained bundles with the same weights (seed 0) and different ECG input."""
    root = tmp_path_factory.mktemp("ecg_input")
    uids = _write_archive(root / "archive", n_studies=3)
    _write_phenotypes(root / "phenotypes.csv", uids + ["unused"])
    save_untrained_bundle(_paper_tiny(), 0, root / "paper")
    save_untrained_bundle("tiny", 0, root / "mv")  # e2r's default input
    return root


def _paper_tiny():
    """The tiny preset with the Echo2ECG paper's ECG input (the per-group z-score)."""
    return with_overrides(get_preset("tiny"), ecg_preprocess__normalise="lead_groups")


def test_the_presets_default_to_the_voltage_keeping_input_and_the_paper_s_stays_a_setting():
    from e2r.ecg.preprocess import ECGPreprocessConfig

    assert get_preset("tiny").ecg_preprocess.normalise == get_preset("base").ecg_preprocess.normalise == "mv_softclip"
    assert ECGPreprocessConfig().normalise == "lead_groups"  # a bundle that does not say reads as the paper's


def _index(root: Path, model: Path, home: Path, *extra: str):
    return runner.invoke(app, ["index", str(root / "archive"), "--model", str(model), "--data-dir", str(home),
                               "--workers", "0", "--json", *extra])


def test_the_bundle_records_the_choice_and_its_hash_depends_on_it(two_inputs):
    paper, mv = load_model(two_inputs / "paper"), load_model(two_inputs / "mv")
    assert paper.meta["preprocessing"]["ecg"]["normalise"] == "lead_groups"
    assert mv.meta["preprocessing"]["ecg"]["normalise"] == mv.preset.ecg_preprocess.normalise == "mv_softclip"
    assert mv.hash != paper.hash  # same weights: the input alone tells them apart


def test_index_and_search_refuse_a_model_of_another_ecg_input(two_inputs, tmp_path):
    from e2r.phantom.pulse_ecg import write_pulse_ecg
    from e2r.store import open_store
    from indexer.pipeline import ensure_collection
    from queries.search import Searcher

    home = tmp_path / "home"
    assert _index(two_inputs, two_inputs / "paper", home).exit_code == 0
    refused = _index(two_inputs, two_inputs / "mv", home)
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    line = refused.stderr.strip()
    assert len(line.splitlines()) == 1 and "was built with model" in line
    assert "normalise lead_groups" in line and "normalise mv_softclip" in line
    stats = json.loads(_index(two_inputs, two_inputs / "paper", home, "--stats").stdout)["collections"][0]
    assert stats["ecg_preprocess"] == "100 Hz x 10 s, clip quantile, baseline als, normalise lead_groups"
    table = runner.invoke(app, ["index", "--stats", "--data-dir", str(home)])
    assert "ecg_preprocess" in table.stdout and "normalise lead_groups" in table.stdout
    with open_store(home) as store:
        with pytest.raises(StoreError, match="mv_softclip"):
            ensure_collection(store, "echo_studies", load_model(two_inputs / "mv"))
        with pytest.raises(BundleError, match="ECG input .*lead_groups.*mv_softclip"):
            Searcher(store, "echo_studies", model=load_model(two_inputs / "mv"))
    # the bundle the collection names is replaced by one of another input: `e2r search` refuses
    swapped = tmp_path / "swapped"
    shutil.copytree(two_inputs / "paper", swapped)
    home2 = tmp_path / "home2"
    assert _index(two_inputs, swapped, home2).exit_code == 0
    shutil.rmtree(swapped)
    shutil.copytree(two_inputs / "mv", swapped)
    ecg = write_pulse_ecg(tmp_path / "ecgs", "r0", seed=1)
    result = runner.invoke(app, ["search", str(ecg), "--data-dir", str(home2)])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "was built with" in result.stderr and "mv_softclip" in result.stderr


def _as_written_before_amplitude_settings(bundle: Path) -> None:
    """Rewrite bundle.json as e2r wrote it before the amplitude settings: without their fields
    (and so with the hash of that description) and without an ONNX graph."""
    import torch

    from e2r.bundle import content_hash

    meta = json.loads((bundle / "bundle.json").read_text())
    for section in (meta["preset"]["ecg_preprocess"], meta["preprocessing"]["ecg"]):
        for name in NEW_FIELDS:
            section.pop(name)
    meta["hash"] = content_hash(meta["preset"], torch.load(bundle / "weights.pt", weights_only=True))
    for key in ("ecg_graph",):
        meta.pop(key, None)
        meta.get("files", {}).pop(key, None)
    (bundle / "bundle.json").write_text(json.dumps(meta, indent=2))


def test_a_bundle_of_the_old_preprocessing_keeps_working_and_says_its_input(tiny_cohort, tmp_path):
    from e2r.store import open_store
    from indexer.stats import bundle_ecg_input, collection_stats

    old = tmp_path / "old"
    save_untrained_bundle(_paper_tiny(), 0, old)  # before the amplitude settings, the input was the paper's
    _as_written_before_amplitude_settings(old)
    loaded = load_model(old)
    assert loaded.preset.ecg_preprocess == _paper_tiny().ecg_preprocess
    assert "max_qrs_mv" not in loaded.meta["preset"]["ecg_preprocess"]
    want = "100 Hz x 10 s, clip quantile, baseline als, normalise lead_groups"
    assert bundle_ecg_input(str(old)) == want and bundle_ecg_input(str(tmp_path / "gone")) is None
    home = tmp_path / "home"
    result = runner.invoke(app, ["index", str(tiny_cohort / "echo"), "--model", str(old), "--data-dir", str(home),
                                 "--workers", "0", "--json"])
    assert result.exit_code == 0, result.output
    search = runner.invoke(app, ["search", str(tiny_cohort / "ecg" / "p0000.hea"), "--data-dir", str(home), "--json"])
    assert search.exit_code == 0, search.output
    assert json.loads(search.stdout)["model_hash"] == loaded.hash
    with open_store(home) as store:  # a collection made before its metadata recorded the input
        meta = {k: v for k, v in store.get_metadata("echo_studies").items() if k != "ecg_preprocess"}
        stats = collection_stats(_MetaOnly(store, meta), "echo_studies")
    assert stats["ecg_preprocess"] == want


class _MetaOnly:
    """A store whose collection metadata is replaced (as an older e2r wrote it)."""

    def __init__(self, store, meta):
        self.store, self.meta = store, meta

    def get_metadata(self, name):
        return self.meta

    def iterate(self, name):
        return self.store.iterate(name)


def test_embed_skips_and_counts_a_record_of_implausible_amplitude(tiny_bundle, tiny_cohort, tmp_path):
    import wfdb

    from e2r.embed import sidecar_paths

    folder = tmp_path / "ecgs"
    folder.mkdir()
    for ext in (".hea", ".dat"):
        shutil.copy2(tiny_cohort / "ecg" / f"p0000{ext}", folder / f"p0000{ext}")
    rec = wfdb.rdrecord(str(tiny_cohort / "ecg" / "p0001"))
    # microvolts written with a header that says mV: every lead 1000x too large
    wfdb.wrsamp("uv_as_mv", fs=rec.fs, units=["mV"] * 12, sig_name=rec.sig_name, p_signal=rec.p_signal * 1000,
                fmt=["32"] * 12, adc_gain=[1.0] * 12, baseline=[0] * 12, write_dir=str(folder))
    out = tmp_path / "emb.npz"
    result = runner.invoke(app, ["embed", str(folder), "--model", str(tiny_bundle), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["rows"] == 1 and doc["skipped"] == 1
    reason = (sidecar_paths(out)["errors"]).read_text().splitlines()[1]
    assert "uv_as_mv" in reason and "beyond the +/-10 mV" in reason and "lead " in reason
    assert np.isfinite(np.load(out)["embedding"]).all()

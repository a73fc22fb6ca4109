"""The real-data on-ramp end to end, from MIMIC-layout files alone (synthetic phantom):
synth --layout mimic -> pair mimic -> phenotypes import mimic-iv-echo -> train-echo -> train ->
index -> eval --model --pairs. Tiny settings so it stays short on two cores."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from e2r.cli import app

runner = CliRunner()


def _ok(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (args[:3], result.output[-3000:])
    return result


def _split_one_folder_uid(echo_root):
    """Give one video of a multi-video study folder its own StudyInstanceUID (seen in real archives)."""
    import pydicom

    for folder in sorted(p for p in echo_root.rglob("s*") if p.is_dir()):
        files = sorted(folder.glob("*.dcm"))
        if len(files) >= 2:
            ds = pydicom.dcmread(files[-1])
            ds.StudyInstanceUID = pydicom.uid.generate_uid()
            ds.save_as(files[-1])
            return folder.name
    raise AssertionError("no study folder with two videos")


def _folder_of_uid(echo_root):
    """{StudyInstanceUID of a folder's first video: folder name}, the keys `--group-by folder` builds."""
    import pydicom

    out = {}
    for folder in sorted(p for p in echo_root.rglob("s*") if p.is_dir()):
        files = sorted(folder.glob("*.dcm"))
        if files:
            out[str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)] = folder.name
    return out


@pytest.mark.slow
@pytest.mark.parametrize("group_by", ["uid", "folder"])
def test_mimic_layout_pair_import_train_index_eval(tmp_path, monkeypatch, group_by):
    monkeypatch.setenv("E2R_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("E2R_CACHE", str(tmp_path / "cache"))
    c = tmp_path / "c"
    ecg, echo = c / "mimic-iv-ecg", c / "mimic-iv-echo"
    _ok(["synth", str(c), "--layout", "mimic", "-n", "36", "--size", "32", "--frames", "8", "--workers", "2", "--json"])
    assert not (c / "pairs.csv").exists() and not (c / "phenotypes.csv").exists()  # only the MIMIC layout

    split_folder = _split_one_folder_uid(echo) if group_by == "folder" else None
    grouping = ["--group-by", group_by]

    pairs, phen = c / "pairs.csv", c / "phenotypes.csv"
    doc = json.loads(_ok(["pair", "mimic", "--ecg-root", str(ecg), "--echo-root", str(echo), "--out", str(pairs),
                          "--json"]).stdout)
    assert doc["group_by"] == group_by and doc["pairs"] > 20 and doc["archive_rows"] > 0
    # the pairing recovers the generator's pairs (the nearest ECG is the phantom's own)
    with (c / "phantom_truth" / "pairs.csv").open() as fh:
        truth = {r["study_uid"]: r for r in csv.DictReader(fh)}
    with pairs.open() as fh:
        got = {r["study_uid"]: r for r in csv.DictReader(fh)}
    key_of = _folder_of_uid(echo) if split_folder else {u: u for u in truth}  # truth UID -> expected study key
    truth = {key_of[u]: r for u, r in truth.items()}
    if split_folder:
        assert split_folder in got
    assert set(got) == set(truth)
    assert all(bool(got[u]["ecg_path"]) == bool(truth[u]["ecg_path"]) for u in got)

    imp = json.loads(_ok(["phenotypes", "import", "mimic-iv-echo", "--measurements", str(echo), "--studies", str(echo),
                          "--ecg-root", str(ecg), "--out", str(phen), "--json"]).stdout)
    assert imp["studies"] == len(truth) and imp["values"]["lvef"] == imp["studies"]
    from e2r.phenotypes import read_phenotypes

    rows, _ = read_phenotypes(phen)
    true_rows, _ = read_phenotypes(c / "phantom_truth" / "phenotypes.csv")
    uid_of = {k: u for u, k in key_of.items()}
    for key, r in rows.items():
        t = true_rows[uid_of[key]]
        assert abs(r["ivsd"] - t["ivsd"]) < 0.6 and abs(r["lv_mass"] - t["lv_mass"]) < 3
        if r["rhythm"] is not None:
            assert r["rhythm"] == t["rhythm"]

    _ok(["train-echo", "--data", str(pairs), "--archive", str(echo), "--out", str(tmp_path / "tower"),
         "--epochs", "1", "--min-studies", "5", "--workers", "0", "--quiet", *grouping])
    _ok(["train", "--data", str(pairs), "--archive", str(echo), "--out", str(tmp_path / "model"),
         "--echo-encoder", str(tmp_path / "tower"), "--epochs", "1", "--quiet", *grouping])
    idx = json.loads(_ok(["index", str(echo), "--model", str(tmp_path / "model"), "--phenotypes", str(phen),
                          "--workers", "0", "--json", *grouping]).stdout)
    assert idx["indexed"] == len(truth) and idx["with_phenotypes"] == len(truth)
    ev = json.loads(_ok(["eval", "--model", str(tmp_path / "model"), "--pairs", str(pairs), "--archive", str(echo),
                         "--phenotypes", str(phen), "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "res"),
                         "--json", *grouping]).stdout)
    assert ev["complete"] and set(ev["arms"]) == {"chance", "model"}
    assert (tmp_path / "res" / "results.json").is_file()

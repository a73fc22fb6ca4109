"""`e2r index`: studies in, points out — idempotent, resumable, PHI-free, model-checked."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers.dicom import write_other_dicom, write_us_dicom
from e2r.cli import app
from e2r.errors import StoreError
from e2r.bundle import save_untrained_bundle

runner = CliRunner()
pytestmark = pytest.mark.xdist_group("indexer")


def _video(seed: int, n: int = 8, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, size=(n, size, size), dtype=np.uint8)


def _write_archive(root: Path, n_studies: int = 4, videos_per_study: int = 2) -> list[str]:
    from pydicom.uid import generate_uid

    uids = []
    for s in range(n_studies):
        uid = generate_uid(entropy_srcs=["e2r-test-study", str(s)])
        uids.append(uid)
        for v in range(videos_per_study):
            write_us_dicom(
                root / f"p{s:02d}" / f"s{s}" / f"v{v}.dcm", _video(10 * s + v),
                study_uid=uid, patient_id=f"MRN{s:04d}", series_description=("A4C", "PLAX", "A2C")[v % 3],
                sop_uid=generate_uid(entropy_srcs=["e2r-test-video", str(s), str(v)]),
            )
    (root / "junk.dcm").write_text("not dicom")
    write_other_dicom(root / "ct.dcm", "ct")
    return uids


def _write_phenotypes(path: Path, uids: list[str]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["study_uid", "patient_id", "study_date", "lvef", "ivsd", "lvpwd", "wmsi", "territory"])
        w.writerow([uids[0], "MRN0000", "20240102", "35", "14", "10", "1.6", "lad"])
        w.writerow([uids[1], "MRN0001", "20240102", "not-a-number", "9", "9", "", ""])  # bad row: still indexed
        w.writerow([uids[2], "MRN0002", "20240102", "62", "9", "9", "", ""])
        # uids[3] has no phenotypes at all


@pytest.fixture(scope="module")
def bundle(tiny_bundle) -> Path:
    return tiny_bundle


@pytest.fixture()
def archive(tmp_path) -> tuple[Path, list[str]]:
    root = tmp_path / "archive"
    uids = _write_archive(root)
    _write_phenotypes(tmp_path / "phenotypes.csv", uids)
    return root, uids


def _index(archive: Path, bundle: Path, home: Path, *extra: str):
    return runner.invoke(app, ["index", str(archive), "--model", str(bundle), "--data-dir", str(home),
                               "--workers", "0", "--json", *extra])


def test_index_then_reindex_is_idempotent_and_payload_has_no_phi(archive, bundle, tmp_path):
    root, uids = archive
    home = tmp_path / "home"
    result = _index(root, bundle, home)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["indexed"] == 4 and summary["failed"] == 0 and summary["total_in_collection"] == 4
    assert summary["skipped_files"] == {"not_dicom": 1, "other_modality": 1}
    assert summary["with_phenotypes"] == 2  # the bad row is reported, its study indexed without labels
    assert len(summary["phenotype_errors"]) == 1 and ":3:" in summary["phenotype_errors"][0]

    again = json.loads(_index(root, bundle, home).stdout)
    assert again["indexed"] == 0 and again["unchanged"] == 4 and again["total_in_collection"] == 4

    from e2r.store import open_store, point_id_for

    with open_store(home) as store:
        records = {r.payload["study_uid"]: r.payload for r in store.iterate("echo_studies")}
    assert set(records) == set(uids)
    dumped = json.dumps(records)
    assert "MRN000" not in dumped, "patient IDs must only enter the index hashed"
    first = records[uids[0]]
    assert first["lvef_class"] == "reduced" and first["lvh"] == 1 and first["views"] == ["A4C", "PLAX"]
    assert first["n_videos"] == 2 and first["study_date"] == 20240102
    assert "lvef" not in records[uids[3]]
    # The optional wall-motion columns reach the payload (a user filters on them), empty cells do not.
    assert first["wmsi"] == 1.6 and first["territory"] == "LAD"
    assert "territory" not in records[uids[2]] and "wmsi" not in records[uids[2]]
    assert point_id_for(uids[0])  # deterministic ids are what makes re-runs idempotent


def test_changed_study_is_replaced_and_new_study_added(archive, bundle, tmp_path):
    from pydicom.uid import generate_uid

    root, uids = archive
    home = tmp_path / "home"
    assert _index(root, bundle, home).exit_code == 0
    write_us_dicom(root / "p00" / "s0" / "v9.dcm", _video(99), study_uid=uids[0], series_description="PSAX")
    write_us_dicom(root / "new" / "v.dcm", _video(7), study_uid=generate_uid(entropy_srcs=["new"]))
    summary = json.loads(_index(root, bundle, home).stdout)
    assert (summary["indexed"], summary["replaced"], summary["unchanged"]) == (1, 1, 3)
    assert summary["total_in_collection"] == 5


def test_other_model_is_refused(archive, bundle, tmp_path):
    root, _ = archive
    home = tmp_path / "home"
    assert _index(root, bundle, home).exit_code == 0
    other = tmp_path / "other_model"
    save_untrained_bundle("tiny", 1, other)
    result = _index(root, other, home)
    assert result.exit_code == 1
    assert "was built with model" in result.stderr and "Traceback" not in result.output


def test_corrupt_video_mid_archive_is_counted_and_named(archive, bundle, tmp_path):
    root, uids = archive
    bad = root / "p01" / "s1" / "v1.dcm"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) - 2000])  # truncated pixel data
    summary = json.loads(_index(root, bundle, tmp_path / "home").stdout)
    assert summary["total_in_collection"] == 4  # study 1 keeps its good video
    assert summary["skipped_files"].get("corrupt", 0) + summary["videos_failed"] == 1


def test_shards_partition_the_archive(archive, bundle, tmp_path):
    root, uids = archive
    home = tmp_path / "home"
    counts = [json.loads(_index(root, bundle, home, "--shard", f"{i}/3").stdout)["studies_in_shard"] for i in range(3)]
    assert sum(counts) == len(uids)
    result = _index(root, bundle, home, "--stats")
    assert result.exit_code == 0
    stats = json.loads(result.stdout)["collections"][0]
    assert stats["points"] == len(uids) and stats["with_phenotypes"] == 2


def test_bad_inputs_one_line_each(archive, bundle, tmp_path):
    root, _ = archive
    for args, needle in [
        (["index", str(root), "--model", str(tmp_path / "missing"), "--data-dir", str(tmp_path / "h")], "missing"),
        (["index", str(tmp_path / "nowhere"), "--model", str(bundle), "--data-dir", str(tmp_path / "h")], "not a folder"),
        (["index", str(root), "--model", str(bundle), "--shard", "3/3", "--data-dir", str(tmp_path / "h")], "--shard"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("Error:") and needle in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_index_into_a_collection_of_another_model_raises(archive, bundle, tmp_path):
    from e2r.bundle import load_model
    from e2r.store import open_store
    from indexer.pipeline import ensure_collection

    with open_store(tmp_path / "h") as store:
        ensure_collection(store, "c", load_model(bundle))
        other = tmp_path / "other"
        save_untrained_bundle("tiny", 2, other)
        with pytest.raises(StoreError, match="was built with model"):
            ensure_collection(store, "c", load_model(other))


def test_decode_workers_give_in_process_results_in_order_and_a_dead_worker_is_named(tmp_path, monkeypatch):
    from e2r.echo import scan_archive
    from e2r.errors import DataError
    from e2r.presets import get_preset
    from indexer import pipeline
    from indexer.decode import DecodeJob

    _write_archive(tmp_path, n_studies=5, videos_per_study=1)
    studies = scan_archive(tmp_path).studies
    jobs = [DecodeJob.for_study(i, s, get_preset("tiny").echo) for i, s in enumerate(studies)]
    inline = list(pipeline._decoded_stream(jobs, 0))
    pooled = list(pipeline._decoded_stream(jobs, 2))
    assert [d.job_index for d in pooled] == list(range(5))
    assert all(np.array_equal(a.frames[0], b.frames[0]) for a, b in zip(inline, pooled))

    # A worker that dies (killed for memory, say) ends the run with one named line, not a hang.
    broken = [DecodeJob(0, ("x.dcm",), {}, ())] * 2 + jobs
    monkeypatch.setattr(pipeline, "decode_worker", _die_on_receipt)
    with pytest.raises(DataError, match=r"decode worker ended \(exit code 3\) while decoding x.dcm"):
        list(pipeline._decoded_stream(broken, 2))


def _die_on_receipt(conn) -> None:
    conn.recv()
    os._exit(3)


# What a killed run's leftovers (orphaned decode workers, multiprocessing's resource tracker) used
# to print into the terminal, and what must never show after a kill or in the re-run.
_KILL_NOISE = re.compile(r"Traceback|BrokenPipeError|leaked semaphore|resource_tracker")


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_sigkill_midway_then_rerun_loses_and_duplicates_nothing(bundle, tmp_path, workers):
    root = tmp_path / "archive"
    uids = _write_archive(root, n_studies=24, videos_per_study=1)
    home = tmp_path / "home"
    cmd = [sys.executable, "-m", "e2r", "index", str(root), "--model", str(bundle), "--data-dir", str(home),
           "--workers", str(workers), "--batch-size", "1"]
    # stderr on a pseudo-terminal: bars are drawn only on a terminal (e2r/progress.py)
    terminal, stderr = pty.openpty()
    fcntl.ioctl(stderr, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(cmd, stderr=stderr, env={**os.environ, "TQDM_MININTERVAL": "0"})
    os.close(stderr)
    progressed = threading.Event()
    written: list[str] = []  # everything written to the terminal

    def watch() -> None:
        while True:
            try:
                chunk = os.read(terminal, 1024)
            except OSError:  # EIO once every process holding the terminal is gone
                return
            if not chunk:
                return
            written.append(chunk.decode(errors="replace"))
            if re.search(r"indexing:[^\r\n]*\| [3-9]/", "".join(written)):  # not the scanning bar
                progressed.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    progressed.wait(timeout=120)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = len(written)
    # The killed run's decode workers notice it is gone and end quietly, so the terminal closes.
    watcher.join(timeout=30)
    os.close(terminal)
    assert progressed.is_set(), "indexer never showed progress"
    assert not watcher.is_alive(), "a process of the killed run (a decode worker?) outlived it by 30 s"
    after_kill = "".join(written[at_kill:])
    assert not _KILL_NOISE.search(after_kill), after_kill

    rerun = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert not _KILL_NOISE.search(rerun.stderr), rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["unchanged"] >= 1, "work done before the kill should be kept"
    assert summary["total_in_collection"] == len(uids)
    from e2r.store import open_store

    with open_store(home) as store:
        seen = [r.payload["study_uid"] for r in store.iterate("echo_studies")]
    assert sorted(seen) == sorted(uids)


def test_no_paths_keeps_folder_names_out_of_the_index(archive, bundle, tmp_path):
    from e2r.store import open_store

    root, _ = archive
    home = tmp_path / "home"
    assert _index(root, bundle, home, "--no-paths").exit_code == 0
    with open_store(home) as store:
        payloads = [r.payload for r in store.iterate("echo_studies")]
    assert payloads and all("source_paths" not in p for p in payloads)
    assert "p00" not in json.dumps(payloads)

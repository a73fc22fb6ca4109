"""Fuzz suite: hostile ECG and echo inputs through e2r's public readers.

The cases come from the seeded generator in tests/helpers/fuzz.py (>= 1,000 per seed: WFDB
records, DICOM ECGs, DICOM echo videos, each a good seed with mutations). Every case must end in
success or a named e2r error (a subclass of `e2r.errors.E2RError`), never another exception:

  ECG   `e2r.ecg.read_ecg(path)` then `e2r.ecg.preprocess_ecg(record, tiny preset's ecg_preprocess)`.
        On success: sampling rate finite and within 50-20,000 Hz; record (12, T) with no +/-inf and
        not all NaN (NaN marks missing values, as `ECGRecord` documents); model input finite and of
        the preset's shape.
  Echo  `e2r.echo.read_video_header(path)` then `e2r.echo.decode_video(path, n_frames=16,
        size=(64, 64), fps=16.0, color="grey")`, and again with color="rgb". On success: uint8
        (16, 64, 64) and (16, 64, 64, 3); header with rows, columns >= 1, >= 2 frames, an fps in
        `e2r.echo.header.FPS_RANGE` or None, StudyDate "" or a real calendar date, the region
        inside the image.
  Named errors must have a one-line, non-empty message (the `E2RError` contract); a
  DicomReadError's reason must be one of the documented keys.
  Cases whose mutation makes the input unusable for certain (`CaseSpec.expect == "error"`, e.g.
  a sampling rate of -500 or NaN, a 2-sample record, a blank unit) must raise a named error:
  success there is a silent misread.
  Archive  `e2r.echo.scan_archive` over a folder of all echo cases plus ECG junk never raises and
        counts every skipped file by a documented reason.
  CLI   `e2r inspect --json FILE` (typer's CliRunner) on a fixed sample: exit 0 or 1, no
        traceback, no uncaught exception, and on exit 0 stdout parses as strict JSON (no NaN or
        Infinity); a DICOM ECG that read_ecg reads is shown as an ECG.

Bounds, per case: CASE_SECONDS = 5 s of wall time (a hard stop at HARD_STOP_SECONDS = 30 s turns
a hang into a failure rather than a stalled run); while a case runs, the address space is capped at
the process's current size + MEMORY_BYTES = 2 GiB (RLIMIT_AS, Linux), so a header asking for a huge
allocation fails that case with MemoryError instead of exhausting the machine; resident-set
growth (ru_maxrss) must stay under 2 GiB per case and over the whole module.

No property-based layer: hypothesis is not installed in .venv (checked with pip list), so nothing
was added to install it; the seeded generator alone drives the cases. The seed is 0, or
E2R_FUZZ_SEED from the environment.

Tests that use ../shared/data seeds are simply absent when that folder is absent (the plan then
holds only the seeds written here and pydicom's examples, still >= 1,000 cases).

Run as a script for a grouped report of outcomes (what the final report of a fuzz run shows):
    .venv/bin/python tests/test_fuzz.py [--seed N] [--case CASE_ID] [--cli]
"""

from __future__ import annotations

import datetime
import json
import math
import os
import resource
import signal
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pytest

if __package__ in (None, "") and str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import fuzz  # noqa: E402

CASE_SECONDS = 5.0
HARD_STOP_SECONDS = 30.0
MEMORY_BYTES = 2 * 1024 ** 3
FS_RANGE = (50.0, 20_000.0)
N_FRAMES, SIZE, FPS = 16, (64, 64), 16.0
DICOM_REASONS = {"not_dicom", "empty_file", "corrupt", "not_video", "single_frame", "structured_report",
                 "other_modality", "decode_failed", "unreadable"}
SCAN_REASONS = DICOM_REASONS | {"missing_uid", "duplicate"}
CLI_SAMPLE_PER_KIND = 40

FUZZ_SEED = int(os.environ.get("E2R_FUZZ_SEED", "0"))
PLAN = fuzz.plan_cases(FUZZ_SEED)
ECG_SPECS = [s for s in PLAN if s.kind in ("wfdb", "dicom_ecg")]
ECHO_SPECS = [s for s in PLAN if s.kind == "echo"]


def _cli_sample() -> list[fuzz.CaseSpec]:
    rng = np.random.default_rng([FUZZ_SEED, 7])
    picked = []
    for kind in fuzz.KINDS:
        specs = [s for s in PLAN if s.kind == kind]
        idx = sorted(rng.choice(len(specs), size=min(CLI_SAMPLE_PER_KIND, len(specs)), replace=False))
        picked += [specs[int(i)] for i in idx]
    picked += [s for s in PLAN if s.mutation.startswith(("name:", "latin1", "top:Modality+SOPClassUID"))
               and s not in picked]
    return picked


CLI_SPECS = _cli_sample()


# --------------------------------------------------------------------------------------------
# Running one case under bounds, and classifying what happened


class CaseTimeout(BaseException):
    """Raised by the hard-stop timer (a BaseException, so `except Exception` in a reader cannot
    turn it into a named error)."""


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def _vm_bytes() -> Optional[int]:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@contextmanager
def _bounded(stats: dict):
    """Hard-stop timer and address-space cap around one case; fills stats (elapsed, rss_growth)."""
    main = threading.current_thread() is threading.main_thread()
    old_handler = None
    if main:
        def _stop(signum, frame):
            raise CaseTimeout(f"case ran past the {HARD_STOP_SECONDS:.0f} s hard stop")

        old_handler = signal.signal(signal.SIGALRM, _stop)
        signal.setitimer(signal.ITIMER_REAL, HARD_STOP_SECONDS)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    vm = _vm_bytes()
    capped = False
    if vm is not None:
        cap = vm + MEMORY_BYTES
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        if soft == resource.RLIM_INFINITY or cap < soft:
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
            capped = True
    rss0, t0 = _maxrss_bytes(), time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        stats["elapsed"] = time.perf_counter() - t0
        if main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_handler)
        if capped:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        stats["rss_growth"] = _maxrss_bytes() - rss0


def _short(filename: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1]
    try:
        return str(Path(filename).resolve().relative_to(fuzz.REPO))
    except ValueError:
        return "stdlib:" + Path(filename).name


def raising_sites(exc: BaseException) -> tuple[str, str]:
    """(deepest frame in e2r or a third-party library, deepest frame in e2r) as file:line."""
    frames = traceback.extract_tb(exc.__traceback__)
    lib = [f for f in frames if not _short(f.filename).startswith(("stdlib:", "tests/"))]
    deep = lib[-1] if lib else (frames[-1] if frames else None)
    own = [f for f in frames if _short(f.filename).startswith("e2r/")]
    fmt = (lambda f: f"{_short(f.filename)}:{f.lineno}" if f is not None else "?")
    return fmt(deep), fmt(own[-1] if own else None)


@dataclass
class Outcome:
    status: str                          # "success" | "named_error" | "other_exception"
    value: Any = None
    exc: Optional[BaseException] = None
    elapsed: float = 0.0
    rss_growth: int = 0
    problems: list[str] = field(default_factory=list)   # contract violations (empty = pass)

    @property
    def exc_type(self) -> str:
        return type(self.exc).__name__ if self.exc is not None else ""

    def sites(self) -> tuple[str, str]:
        return raising_sites(self.exc) if self.exc is not None else ("", "")


def run_bounded(work: Callable[[], Any]) -> Outcome:
    """Run `work` under the bounds; classify its ending; check time, memory, error messages."""
    from e2r.errors import DicomReadError, E2RError

    stats: dict = {}
    try:
        with _bounded(stats):
            value = work()
        out = Outcome("success", value=value)
    except E2RError as err:
        out = Outcome("named_error", exc=err)
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # noqa: BLE001 - anything else is what the suite looks for
        out = Outcome("other_exception", exc=err)
    out.elapsed, out.rss_growth = stats.get("elapsed", 0.0), stats.get("rss_growth", 0)
    if out.status == "other_exception":
        deep, own = out.sites()
        out.problems.append(f"{out.exc_type} at {deep} (e2r frame {own}): {str(out.exc)[:200]!r}")
    elif out.status == "named_error":
        msg = str(out.exc)
        if not msg.strip() or "\n" in msg:
            out.problems.append(f"{out.exc_type} message is not one non-empty line: {msg[:200]!r}")
        if isinstance(out.exc, DicomReadError) and out.exc.reason not in DICOM_REASONS:
            out.problems.append(f"DicomReadError reason {out.exc.reason!r} is not a documented key")
    if out.elapsed > CASE_SECONDS:
        out.problems.append(f"took {out.elapsed:.1f} s (bound {CASE_SECONDS:.0f} s)")
    if out.rss_growth > MEMORY_BYTES:
        out.problems.append(f"max RSS grew by {out.rss_growth / 2**30:.2f} GiB (bound 2 GiB)")
    return out


def _ecg_cfg():
    from e2r.presets import get_preset

    return get_preset("tiny").ecg_preprocess


def ecg_problems(record: Any, pre: Any) -> list[str]:
    cfg = _ecg_cfg()
    bad = []
    fs = float(record.fs)
    if not math.isfinite(fs) or not FS_RANGE[0] <= fs <= FS_RANGE[1]:
        bad.append(f"sampling rate {fs!r} Hz outside {FS_RANGE[0]:.0f}-{FS_RANGE[1]:.0f} Hz")
    sig = np.asarray(record.signal)
    if sig.ndim != 2 or sig.shape[0] != 12 or sig.shape[1] < 1:
        bad.append(f"record signal has shape {sig.shape}, not (12, T)")
    elif np.isinf(sig).any():
        bad.append("record signal holds +/-inf")
    elif np.isnan(sig).all():
        bad.append("record signal is all NaN")
    x = np.asarray(pre.signal)
    if x.shape != (12, cfg.n_samples):
        bad.append(f"model input has shape {x.shape}, not (12, {cfg.n_samples})")
    if not np.isfinite(x).all():
        bad.append("model input holds NaN or inf")
    return bad


def _valid_date(s: str) -> bool:
    try:
        datetime.datetime.strptime(s, "%Y%m%d")
        return True
    except ValueError:
        return False


def header_problems(info: Any) -> list[str]:
    bad = []
    if not (isinstance(info.rows, int) and isinstance(info.cols, int) and info.rows >= 1 and info.cols >= 1):
        bad.append(f"header size {info.rows!r}x{info.cols!r}")
    if not (isinstance(info.n_frames, int) and info.n_frames >= 2):
        bad.append(f"header says {info.n_frames!r} frames (a video has >= 2)")
    fps = info.fps
    from e2r.echo.header import FPS_RANGE

    if fps is not None and not (math.isfinite(fps) and FPS_RANGE[0] <= fps <= FPS_RANGE[1]):
        bad.append(f"fps {fps!r} outside {FPS_RANGE[0]:g}-{FPS_RANGE[1]:g} (an implausible timing tag believed)")
    if info.study_date and not _valid_date(info.study_date):
        bad.append(f"study_date {info.study_date!r} is not a calendar date")
    if info.region is not None:
        x0, y0, x1, y1 = info.region
        if not (0 <= x0 <= x1 < info.cols and 0 <= y0 <= y1 < info.rows):
            bad.append(f"region {info.region} outside the {info.rows}x{info.cols} image")
    return bad


def check_ecg(path: Path, expect: str = "any") -> Outcome:
    from e2r.ecg import preprocess_ecg, read_ecg

    cfg = _ecg_cfg()
    out = run_bounded(lambda: (lambda rec: (rec, preprocess_ecg(rec, cfg)))(read_ecg(path)))
    if out.status == "success":
        rec, pre = out.value
        out.problems += ecg_problems(rec, pre)
        if expect == "error":
            out.problems.append(f"silent misread: accepted (fs={rec.fs!r}, T={rec.signal.shape[1]}) "
                                "although the mutation makes the record unusable")
    return out


def check_echo(path: Path, expect: str = "any") -> Outcome:
    from e2r.echo import decode_video, read_video_header

    def work():
        info = read_video_header(path)
        return info, decode_video(path, n_frames=N_FRAMES, size=SIZE, fps=FPS, color="grey"), \
            decode_video(info, n_frames=N_FRAMES, size=SIZE, fps=FPS, color="rgb")

    out = run_bounded(work)
    if out.status == "success":
        info, frames, rgb = out.value
        out.problems += header_problems(info)
        for got, shape in ((frames, (N_FRAMES, *SIZE)), (rgb, (N_FRAMES, *SIZE, 3))):
            if not (isinstance(got, np.ndarray) and got.dtype == np.uint8 and got.shape == shape):
                out.problems.append(f"decoded {type(got).__name__} {getattr(got, 'dtype', '')} "
                                    f"{getattr(got, 'shape', '')}, not uint8 {shape}")
        if expect == "error":
            out.problems.append(f"silent misread: accepted ({info.rows}x{info.cols}, {info.n_frames} frames) "
                                "although the mutation makes the video unusable")
    return out


def check_case(spec: fuzz.CaseSpec, path: Path) -> Outcome:
    return (check_echo if spec.kind == "echo" else check_ecg)(path, spec.expect)


def _strict_json(text: str) -> Any:
    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def check_cli(path: Path, kind: str = "") -> Outcome:
    """`e2r inspect --json` on one case; for a DICOM ECG it must also agree with read_ecg (an ECG
    the reader reads is shown as one, whatever its Modality and SOP class tags say or lack)."""
    from typer.testing import CliRunner

    from e2r.cli import app

    out = run_bounded(lambda: CliRunner().invoke(app, ["inspect", "--json", str(path)]))
    if kind == "dicom_ecg" and out.status == "success" and check_ecg(path).status == "success":
        if out.value.exit_code != 0 or '"kind": "ecg"' not in out.value.stdout:
            out.problems.append(f"read_ecg reads it but inspect does not show an ECG: {out.value.output[:200]!r}")
    if out.status != "success":
        return out
    res = out.value
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        err = res.exception
        out.status, out.exc = "other_exception", err
        deep, own = raising_sites(err)
        out.problems.append(f"uncaught {type(err).__name__} at {deep} (e2r frame {own}): {str(err)[:200]!r}")
    if res.exit_code not in (0, 1):
        out.problems.append(f"exit code {res.exit_code}")
    if "Traceback" in res.output:
        out.problems.append("traceback in output")
    if res.exit_code == 0:
        try:
            _strict_json(res.stdout)
        except ValueError as err:
            out.problems.append(f"stdout is not strict JSON ({err}): {res.stdout[:200]!r}")
    elif res.exit_code == 1 and out.status == "success" and "Error:" not in res.output:
        out.problems.append(f"exit 1 without an 'Error:' line: {res.output[:200]!r}")
    return out


def _report(spec: fuzz.CaseSpec, path: Path, out: Outcome) -> str:
    return (f"{spec.case_id}\n  mutation: {spec.mutation}\n  expect: {spec.expect}; outcome: {out.status}"
            f" {out.exc_type}\n  path: {path!r}\n  " + "\n  ".join(out.problems)
            + f"\n  reproduce: .venv/bin/python tests/test_fuzz.py --case {spec.case_id}")


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module", autouse=True)
def _module_memory_bound():
    start = _maxrss_bytes()
    yield
    growth = _maxrss_bytes() - start
    assert growth < MEMORY_BYTES, f"max RSS grew by {growth / 2**30:.2f} GiB over the fuzz module"


# --------------------------------------------------------------------------------------------
# The generator itself, and the harness: without these the sweep could pass vacuously


def test_plan_is_large_unique_and_deterministic():
    assert len(PLAN) >= 1000
    assert len({s.case_id for s in PLAN}) == len(PLAN)
    assert all(s.case_id.isascii() for s in PLAN)
    assert fuzz.plan_cases(FUZZ_SEED) == PLAN
    assert {s.kind for s in PLAN} == set(fuzz.KINDS)
    assert fuzz.plan_cases(FUZZ_SEED + 1) != PLAN  # the seed drives the compound cases


def _tree_bytes(root: Path) -> dict[bytes, bytes]:
    out = {}
    broot = os.fsencode(root)
    for dirpath, _, files in os.walk(broot):
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, broot)] = fh.read()
    return out


def test_materialize_is_deterministic(tmp_path):
    rng = np.random.default_rng(3)
    sample = [PLAN[int(i)] for i in rng.choice(len(PLAN), 30, replace=False)]
    sample += [s for s in PLAN if s.mutation in ("latin1", "name:latin1")][:2]
    for spec in sample:
        a = fuzz.materialize(spec, tmp_path / "a")
        b = fuzz.materialize(spec, tmp_path / "b")
        assert os.path.relpath(a, tmp_path / "a") == os.path.relpath(b, tmp_path / "b")
        assert _tree_bytes(tmp_path / "a" / spec.case_id) == _tree_bytes(tmp_path / "b" / spec.case_id), spec.case_id


def test_generate_cases_yields_triples(tmp_path):
    import itertools

    got = list(itertools.islice(fuzz.generate_cases(tmp_path, FUZZ_SEED), 5))
    assert [c[0] for c in got] == [s.case_id for s in PLAN[:5]]
    for case_id, path, kind in got:
        assert kind in fuzz.KINDS and os.path.lexists(path)
        assert str(tmp_path) in str(path)


def test_harness_tells_outcomes_apart():
    from e2r.errors import DicomReadError, ECGReadError

    assert run_bounded(lambda: 1).status == "success"
    named = run_bounded(lambda: (_ for _ in ()).throw(ECGReadError("x.hea: bad; fix it")))
    assert named.status == "named_error" and not named.problems
    other = run_bounded(lambda: int(None))  # TypeError
    assert other.status == "other_exception" and other.problems
    two_lines = run_bounded(lambda: (_ for _ in ()).throw(DicomReadError("a\nb", reason="nope")))
    assert len(two_lines.problems) == 2
    with pytest.raises(ValueError):
        _strict_json('{"a": NaN}')


@pytest.mark.parametrize("seed", [s for s in fuzz.seeds()], ids=lambda s: s.name)
def test_good_seed_reads_cleanly(seed, fuzz_dir):
    """The fail-able sanity check: every unmutated seed succeeds and meets every invariant."""
    folder = fuzz.write_seed(seed, fuzz_dir)
    out = (check_echo if seed.kind == "echo" else check_ecg)(folder / seed.main)
    assert out.status == "success" and not out.problems, (out.status, out.exc, out.problems)


# --------------------------------------------------------------------------------------------
# The sweep


@pytest.mark.parametrize("spec", ECG_SPECS, ids=lambda s: s.case_id)
def test_ecg_case(spec, fuzz_dir):
    path = fuzz.materialize(spec, fuzz_dir)
    out = check_case(spec, path)
    assert not out.problems, _report(spec, path, out)


@pytest.mark.parametrize("spec", ECHO_SPECS, ids=lambda s: s.case_id)
def test_echo_case(spec, fuzz_dir):
    path = fuzz.materialize(spec, fuzz_dir)
    out = check_case(spec, path)
    assert not out.problems, _report(spec, path, out)


@pytest.mark.parametrize("spec", CLI_SPECS, ids=lambda s: s.case_id)
def test_cli_inspect_json(spec, fuzz_dir):
    path = fuzz.materialize(spec, fuzz_dir / "cli")
    out = check_cli(path, spec.kind)
    assert not out.problems, _report(spec, path, out)


def _walk_files(root: Path) -> int:
    n = 0
    for _, dirs, files in os.walk(os.fsencode(root)):
        dirs[:] = [d for d in dirs if not d.startswith(b".")]
        n += sum(1 for f in files if not f.startswith(b"."))
    return n


def test_scan_archive_survives_every_case(tmp_path):
    """All echo cases plus ECG junk (and the good seeds, under _seeds/) in one folder tree."""
    from e2r.echo import scan_archive

    root = tmp_path / "archive"
    rng = np.random.default_rng([FUZZ_SEED, 11])
    junk = [s for s in PLAN if s.kind != "echo"]
    junk = [junk[int(i)] for i in rng.choice(len(junk), min(40, len(junk)), replace=False)]
    for spec in ECHO_SPECS + junk:
        fuzz.materialize(spec, root)
    for s in fuzz.seeds():
        fuzz.write_seed(s, root)
    n_files = _walk_files(root)
    stats: dict = {}
    with _bounded(stats):
        scan = scan_archive(root)
    assert scan.n_files == n_files
    assert scan.n_videos + len(scan.skipped_files) == n_files
    assert sum(scan.skipped.values()) == len(scan.skipped_files)
    assert dict(Counter(r for _, r, _ in scan.skipped_files)) == scan.skipped
    assert set(scan.skipped) <= SCAN_REASONS, set(scan.skipped) - SCAN_REASONS
    bad_msgs = [(p, m) for p, _, m in scan.skipped_files if not m.strip() or "\n" in m]
    assert not bad_msgs, bad_msgs[:5]
    good = {str(root / "_seeds" / s.name / s.main) for s in fuzz.seeds() if s.kind == "echo"}
    videos = {v.path: v for st in scan.studies for v in st.videos}
    assert good <= set(videos), good - set(videos)
    for v in videos.values():
        assert not header_problems(v), (v.path, header_problems(v))
    assert stats["rss_growth"] < MEMORY_BYTES


# --------------------------------------------------------------------------------------------
# Script mode: a grouped report of one full run


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=FUZZ_SEED)
    ap.add_argument("--case", help="run one case and print its traceback")
    ap.add_argument("--cli", action="store_true", help="also run the CLI sample")
    args = ap.parse_args(argv)
    plan = fuzz.plan_cases(args.seed)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="e2r-fuzz-") as tmp:
        if args.case:
            spec = next(s for s in plan if s.case_id == args.case)
            path = fuzz.materialize(spec, Path(tmp))
            out = check_case(spec, path)
            print(_report(spec, path, out) if out.problems else f"{spec.case_id}: ok ({out.status})")
            if out.exc is not None:
                traceback.print_exception(out.exc)
            return 1 if out.problems else 0
        rows = []
        for spec in plan:
            path = fuzz.materialize(spec, Path(tmp))
            rows.append((spec, check_case(spec, path), "reader"))
        if args.cli:
            sample = CLI_SPECS if args.seed == FUZZ_SEED else []
            for spec in sample:
                rows.append((spec, check_cli(fuzz.materialize(spec, Path(tmp) / "cli"), spec.kind), "cli"))
    wall = time.perf_counter() - t0
    print(f"seed {args.seed}: {len(plan)} cases, wall {wall:.1f} s")
    for kind in fuzz.KINDS + ("cli",):
        sel = [(s, o) for s, o, where in rows if (where == "cli") == (kind == "cli") and (kind == "cli" or s.kind == kind)]
        if not sel:
            continue
        c = Counter(o.status for _, o in sel)
        misread = sum(any(p.startswith("silent misread") for p in o.problems) for _, o in sel)
        invariant = sum(o.status == "success" and any(not p.startswith("silent misread") for p in o.problems)
                        for _, o in sel)
        other_named = sum(o.status == "named_error" and bool(o.problems) for _, o in sel)
        print(f"{kind:10s} n={len(sel):4d} success={c['success']:4d} named_error={c['named_error']:4d} "
              f"other_exception={c['other_exception']:4d} | misread={misread} success_invariant={invariant} "
              f"named_error_contract={other_named}")
    groups: dict[tuple, list] = {}
    for spec, out, where in rows:
        if out.status == "other_exception":
            deep, own = out.sites()
            groups.setdefault((where, out.exc_type, deep, own), []).append((spec, out))
    print("other exceptions (count, where, type, raising frame, e2r frame, example):")
    for (where, typ, deep, own), items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        spec, out = items[0]
        print(f"  {len(items):4d} {where} {typ} at {deep} [e2r {own}] e.g. {spec.case_id} ({spec.mutation[:70]})")
    bad = [(s, o) for s, o, _ in rows if o.status != "other_exception" and o.problems]
    print("other contract failures (misreads, invariants, messages, time):")
    agg: dict[tuple, list] = {}
    for spec, out in bad:
        key = (spec.kind, out.problems[0].split(":")[0][:60], spec.mutation.split(":")[0])
        agg.setdefault(key, []).append(spec)
    for key, specs in sorted(agg.items(), key=lambda kv: -len(kv[1])):
        print(f"  {len(specs):4d} {key[0]} {key[1]} [op {key[2]}] e.g. {specs[0].case_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

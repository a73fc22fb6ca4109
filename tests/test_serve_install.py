"""The serving install (pyproject's serve-onnx dependency group + e2r without its dependencies): no
torch, and still `e2r search` on a bundle that carries its ECG graph."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# pip's words when the package index cannot be reached (the install test then skips, saying so).
OFFLINE = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable",
           "Max retries exceeded")


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower()


def test_serve_group_is_the_dependencies_without_torch_and_onnx():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    full = project["project"]["dependencies"]
    serve = project["dependency-groups"]["serve-onnx"]
    assert sorted(serve) == sorted(r for r in full if _name(r) not in ("torch", "onnx"))


def _pip(venv: Path, *args: str) -> None:
    # This environment's pip (>= 25.1, which reads dependency groups) installs into the clean venv.
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                           *args], capture_output=True, text=True, timeout=900)
    if proc.returncode and any(word in proc.stderr for word in OFFLINE):
        pytest.skip(f"the package index cannot be reached: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_serving_install_searches_without_torch(tiny_bundle, tmp_path):
    from importlib.metadata import version

    from packaging.version import Version

    if Version(version("pip")) < Version("25.1"):
        pytest.skip(f"pip {version('pip')} cannot install dependency groups (pip >= 25.1 can; `make setup` "
                    "upgrades it)")
    from e2r.bundle import load_model
    from e2r.phantom.pulse_ecg import write_pulse_ecg
    from e2r.store import open_store
    from test_ecg_graph import _fill

    venv = tmp_path / "serve-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    _pip(venv, "--group", f"{ROOT / 'pyproject.toml'}:serve-onnx")
    _pip(venv, "--no-deps", str(ROOT))
    python, e2r = venv / "bin" / "python", venv / "bin" / "e2r"
    no_torch = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True)
    assert no_torch.returncode == 1 and "No module named 'torch'" in no_torch.stderr

    with open_store(tmp_path / "home") as store:  # built here, where torch is, as a training site would
        _fill(store, load_model(tiny_bundle), 50)
    ecg = write_pulse_ecg(tmp_path / "ecg", "q", seed=3)
    found = subprocess.run([e2r, "search", str(ecg), "--data-dir", str(tmp_path / "home"), "--top-k", "5", "--json"],
                           capture_output=True, text=True, timeout=300)
    assert found.returncode == 0, found.stderr
    assert len(json.loads(found.stdout)["neighbours"]) == 5 and "torch" not in found.stderr
    needs = subprocess.run([e2r, "export-onnx", str(tiny_bundle)], capture_output=True, text=True, timeout=300)
    assert needs.returncode == 1 and needs.stderr.count("\n") == 1
    assert needs.stderr.startswith("Error: this command needs torch"), needs.stderr

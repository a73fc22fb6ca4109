"""DDP on CPU (gloo): two processes on halves of a batch give one process's loss and gradients."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from e2r.presets import get_preset, with_overrides

PRESET = with_overrides(get_preset("tiny"), echo__size=(32, 32), echo__n_frames=8, echo__width=4,
                        ecg__depth=1)


def _batch(lo: int, hi: int) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(0)
    ecg = rng.standard_normal((8, 12, 1000)).astype(np.float32)
    videos = rng.integers(0, 255, (8, 2, 8, 32, 32), dtype=np.uint8)
    mask = np.ones((8, 2), dtype=bool)
    mask[[1, 4, 6], 1] = False  # studies with one video
    return {"ecg": torch.from_numpy(ecg[lo:hi]), "videos": torch.from_numpy(videos[lo:hi]),
            "mask": torch.from_numpy(mask[lo:hi])}


def _model():
    from e2r.models import Echo2ECG

    torch.manual_seed(0)
    return Echo2ECG(PRESET)


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    from trainer.loss import ClipLoss
    from trainer.step import clip_step

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model = _model()
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        half = 8 // world
        out = clip_step(ddp, _batch(rank * half, (rank + 1) * half), ClipLoss(gather=True))
        out["loss"].backward()
        torch.save({"loss": float(out["loss"]), "grads": _grads(model)},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one_process(tmp_path):
    from trainer.loss import ClipLoss
    from trainer.step import clip_step

    model = _model()
    ref = clip_step(model, _batch(0, 8), ClipLoss(gather=True))
    ref["loss"].backward()
    ref_grads = _grads(model)

    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    for res in results:
        assert res["loss"] == pytest.approx(float(ref["loss"].detach()), abs=1e-5)
        assert set(res["grads"]) == set(ref_grads)
        for name, g in ref_grads.items():
            torch.testing.assert_close(res["grads"][name], g, atol=1e-5, rtol=1e-4,
                                       msg=lambda m, n=name: f"{n}: {m}")


def test_gather_is_identity_without_process_group():
    from trainer.distributed import current, gather_with_grad

    x = torch.randn(3, 4)
    assert gather_with_grad(x) is x
    assert current().world_size == 1 and current().is_main


@pytest.mark.slow
def test_torchrun_two_processes_train_end_to_end(tmp_path):
    """`e2r train` under torchrun with 2 CPU processes (gloo) writes one bundle from rank 0."""
    import json
    import subprocess
    import sys

    from helpers.cohort import write_tiny_cohort

    write_tiny_cohort(tmp_path / "cohort", patients=10, seed=5, max_views=2)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(_free_port()), "-m", "e2r", "train", "--data", str(tmp_path / "cohort"),
           "--out", str(tmp_path / "model"), "--cache-dir", str(tmp_path / "cache"), "--epochs", "1",
           "--batch-size", "4", "--min-pairs", "4", "--quiet", "--json"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(res.stdout[res.stdout.index("{"):])
    assert doc["world_size"] == 2 and doc["epochs"] == 1
    assert json.loads((tmp_path / "model" / "bundle.json").read_text())["hash"] == doc["hash"]

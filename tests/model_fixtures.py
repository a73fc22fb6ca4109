"""A tiny, untrained but fixed-seed model bundle for tests of the indexer and search."""

from __future__ import annotations

from pathlib import Path


def write_tiny_bundle(out_dir: Path, seed: int = 0) -> str:
    """Save a seeded, untrained tiny Echo2ECG as a bundle; returns its hash."""
    import torch

    from e2r.bundle import save_bundle
    from e2r.models import Echo2ECG
    from e2r.presets import get_preset

    torch.manual_seed(seed)
    model = Echo2ECG(get_preset("tiny")).eval()
    return save_bundle(model, out_dir, train_config={"note": "untrained test bundle"}, data_summary={})

"""Training checkpoints: atomic writes, and everything needed to continue a run exactly.

A checkpoint is a torch.save'd dict: model, optimizer, scheduler, epoch (completed epochs),
step, best_val_loss, best_epoch, history, config, and the RNG states (torch, CUDA, numpy,
python). It is written through e2r.util.atomic_write (temporary file, fsync, os.replace),
so a kill during the write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from e2r.errors import ConfigError
from e2r.util import atomic_write

LAST = "last.pt"
BEST = "best.pt"


def rng_state() -> dict[str, Any]:
    """The random states a resumed run must restore to continue the same sequence."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what rng_state() returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` to `path` atomically (temp file, fsync, os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(state, f))
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint; ConfigError with what to do when it is missing or unreadable."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"--resume: no checkpoint at {path}; run without --resume to start afresh")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a truncated or foreign file
        raise ConfigError(f"--resume: checkpoint {path} is unreadable ({type(err).__name__}); "
                          "delete it and run without --resume") from None

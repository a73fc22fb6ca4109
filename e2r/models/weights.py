"""Reading external weight files (OTiS, EchoPrime) that users bring: one place for the checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from e2r.errors import ConfigError


def read_state_dict_file(path: str | Path, what: str, hint: str) -> dict[str, Any]:
    """A state_dict from a torch file: bare, or wrapped in a "model" / "state_dict" entry.

    `what` names the weights in messages ("OTiS", "EchoPrime"); `hint` says what to pass instead.
    Raises ConfigError (one line naming the file) when it is missing, unreadable or not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} weight file not found; {hint}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ConfigError(f"{path}: cannot read {what} weights ({exc.__class__.__name__}); {hint}") from exc
    if isinstance(ckpt, dict):
        for wrapper in ("model", "state_dict"):
            if isinstance(ckpt.get(wrapper), dict):
                ckpt = ckpt[wrapper]
                break
    if not isinstance(ckpt, dict):
        raise ConfigError(f"{path}: {what} weights are not a state_dict; {hint}")
    return ckpt

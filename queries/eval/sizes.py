"""How big a phantom benchmark run is: the `--quick` and default sizes of `e2r eval --benchmark`.

Kept free of heavy imports: the CLI reads these for its help text.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunSize:
    """How big a benchmark run is (the --quick and default presets of `e2r eval --benchmark`)."""

    patients: int
    epochs: int        # alignment and supervised-ceiling epochs
    tower_epochs: int  # echo-tower pretraining epochs
    seeds: int
    video_size: int  # phantom cine loop rows = columns (the model decodes to its own size anyway)


QUICK = RunSize(patients=120, epochs=2, tower_epochs=3, seeds=1, video_size=64)
DEFAULT = RunSize(patients=1000, epochs=30, tower_epochs=15, seeds=3, video_size=128)
COHORT_SEED = 0

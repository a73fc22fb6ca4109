"""Model sizes and CPU cost of one training step (forward + backward + AdamW) per preset.

    python bench/bench_models.py [--preset tiny] [--pairs 64] [--videos 3] [--steps 3]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--pairs", type=int, default=64, help="ECG-study pairs per batch")
    ap.add_argument("--videos", type=int, default=3, help="videos per study")
    ap.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up step)")
    args = ap.parse_args()

    from e2r.models import Echo2ECG
    from e2r.models.ecg_vit import count_params
    from e2r.presets import get_preset

    preset = get_preset(args.preset)
    torch.manual_seed(0)
    model = Echo2ECG(preset, load_weights=False).train()
    parts = {k: count_params(getattr(model, k)) for k in ("ecg_encoder", "video_encoder", "aggregator")}
    print(f"{preset.name}: params {parts}, total {count_params(model):,}")
    B, V, e = args.pairs, args.videos, preset.echo
    ecg = torch.randn(B, 12, preset.ecg_samples)
    videos = torch.randn(B, V, e.n_frames, e.channels, *e.size)
    mask = torch.ones(B, V, dtype=torch.bool)
    opt = torch.optim.AdamW(model.param_groups(1e-4, 1e-7))
    labels = torch.arange(B)

    def step() -> None:
        a, b = model(ecg, videos, mask)
        logits = model.logit_scale.exp() * a @ b.T
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    dt = (time.perf_counter() - t0) / args.steps
    print(f"{preset.name}: {dt:.3f} s/step for {B} pairs x {V} videos ({B / dt:.0f} pairs/s), "
          f"{torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()

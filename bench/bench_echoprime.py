"""EchoPrime encoder throughput on CPU: videos/s for 16 x 224 x 224 RGB clips (needs torchvision).

Uses EchoPrime's architecture (MViT-v2-S, 512-d head) with random weights unless --weights names
echo_prime_encoder.pt; speed does not depend on the weight values.

    python bench/bench_echoprime.py [--videos 4] [--batch 2] [--threads N] [--weights FILE]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=4, help="videos to time (after one warm-up batch)")
    ap.add_argument("--batch", type=int, default=2, help="videos per forward pass")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--weights", default=None, help="EchoPrime echo_prime_encoder.pt (optional)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from e2r import encode
    from e2r.models import Echo2ECG
    from e2r.presets import get_preset, with_overrides

    preset = get_preset("base-echoprime")
    if args.weights:
        preset = with_overrides(preset, echo__weights=args.weights)
    torch.manual_seed(0)
    model = Echo2ECG(preset, load_weights=bool(args.weights)).eval()
    rng = np.random.default_rng(0)
    videos = [rng.integers(0, 255, (16, 224, 224, 3), dtype=np.uint8) for _ in range(args.batch)]
    encode.embed_videos(model, videos, batch_size=args.batch)  # warm-up
    done, t0 = 0, time.perf_counter()
    while done < args.videos:
        encode.embed_videos(model, videos, batch_size=args.batch)
        done += len(videos)
    dt = time.perf_counter() - t0
    print(f"EchoPrime (MViT-v2-S) on CPU: {done / dt:.2f} videos/s ({dt / done:.2f} s/video), "
          f"batch {args.batch}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}")


if __name__ == "__main__":
    main()

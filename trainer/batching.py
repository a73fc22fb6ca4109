"""torch Dataset over PairedData and the collate function that pads studies to a batch.

Randomness (augmentations, which videos of a large study, the one view of single-view training)
comes from a numpy Generator seeded by (seed, epoch, item), so an epoch is the same whether it
runs in the main process, in DataLoader workers, or again after `--resume`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from trainer.augment import AugmentConfig, augment_ecg
from trainer.paired_data import Pair, PairedData


class PairDataset(Dataset):
    """Items are dicts: ecg float32 (12, N), videos uint8 (V, ...) or view_emb float32 (V, E)."""

    def __init__(self, data: PairedData, pairs: Sequence[Pair], train: bool, augment: AugmentConfig,
                 seed: int, max_videos: int, single_view: bool = False):
        self.data, self.pairs, self.train = data, tuple(pairs), train
        self.augment, self.seed, self.max_videos = augment, seed, max_videos
        # Single-view training uses one random view per study; picking it here avoids decoding
        # and embedding videos the aggregator would throw away.
        self.single_view = single_view and train
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the randomness of `epoch` (call before iterating)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        pair = self.pairs[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        ecg = np.asarray(self.data.ecg[pair.ecg_row], dtype=np.float32)
        rows = np.asarray(pair.video_rows)
        if self.train:
            ecg = augment_ecg(ecg, self.augment, rng)
            k = 1 if self.single_view else min(len(rows), self.max_videos)
            if k < len(rows):
                rows = np.sort(rng.choice(rows, size=k, replace=False))
        else:
            rows = rows[: self.max_videos]
        item: dict[str, Any] = {"ecg": ecg, "index": i}
        # Sorted rows read the memory map in file order.
        if self.data.view_emb is not None:
            item["view_emb"] = np.asarray(self.data.view_emb[rows], dtype=np.float32)
        else:
            item["videos"] = np.asarray(self.data.videos[rows])
        return item


def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack ECGs; pad each study's videos (or view embeddings) to the batch's largest study."""
    key = "view_emb" if "view_emb" in items[0] else "videos"
    v_max = max(len(it[key]) for it in items)
    first = items[0][key]
    padded = np.zeros((len(items), v_max, *first.shape[1:]), dtype=first.dtype)  # (B, V, ...)
    mask = np.zeros((len(items), v_max), dtype=bool)  # (B, V)
    for j, it in enumerate(items):
        n = len(it[key])
        padded[j, :n] = it[key]
        mask[j, :n] = True
    return {
        "ecg": torch.from_numpy(np.stack([it["ecg"] for it in items])),  # (B, 12, N)
        key: torch.from_numpy(padded),
        "mask": torch.from_numpy(mask),
        "index": torch.tensor([it["index"] for it in items]),
    }

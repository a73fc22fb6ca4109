"""CLIP loss and retrieval metrics against plain numpy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.loss import ClipLoss
from trainer.validate import clip_loss_numpy_batches


def _normed(rng, n, d):
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def numpy_clip_loss(a, b, scale):
    logits = scale * a @ b.T
    n = len(a)
    row = -_log_softmax(logits)[np.arange(n), np.arange(n)].mean()
    col = -_log_softmax(logits.T)[np.arange(n), np.arange(n)].mean()
    return (row + col) / 2


@pytest.mark.parametrize("temperature", [0.5, 0.07])
def test_clip_loss_matches_numpy(temperature):
    rng = np.random.default_rng(0)
    a, b = _normed(rng, 9, 16), _normed(rng, 9, 16)
    scale = np.log(1 / temperature)
    got = ClipLoss()(torch.from_numpy(a), torch.from_numpy(b), torch.tensor(scale))
    assert float(got) == pytest.approx(numpy_clip_loss(a, b, 1 / temperature), rel=1e-6)


def test_clip_loss_is_symmetric_and_low_for_aligned_pairs():
    rng = np.random.default_rng(1)
    a, b = _normed(rng, 8, 32), _normed(rng, 8, 32)
    loss = ClipLoss()
    s = torch.tensor(np.log(10.0))
    ab = float(loss(torch.from_numpy(a), torch.from_numpy(b), s))
    ba = float(loss(torch.from_numpy(b), torch.from_numpy(a), s))
    assert ab == pytest.approx(ba, rel=1e-6)
    aligned = float(loss(torch.from_numpy(a), torch.from_numpy(a), s))
    assert aligned < ab


def test_clip_loss_gradient_flows_to_logit_scale():
    rng = np.random.default_rng(2)
    a = torch.from_numpy(_normed(rng, 6, 8)).requires_grad_()
    b = torch.from_numpy(_normed(rng, 6, 8))
    s = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    ClipLoss()(a, b, s).backward()
    assert a.grad is not None and s.grad is not None and float(s.grad) != 0.0


def test_validation_retrieval_counts_ties_against_the_target():
    """Identical embeddings tie every study with the paired one: Recall@1 must not be 1."""
    from e2r.metrics.retrieval import retrieval_metrics

    g = np.ones((10, 8)) / np.sqrt(8)
    sim = g @ g.T
    rel = np.eye(10, dtype=bool)
    m = retrieval_metrics(sim, rel, ks=(1, 5, 10))
    assert m.recall_at[1] == 0.0 and m.recall_at[5] == 0.0 and m.recall_at[10] == 1.0
    assert m.median_rank == 10


def test_validation_retrieval_ranks_match_brute_force():
    from e2r.metrics.retrieval import retrieval_metrics

    rng = np.random.default_rng(3)
    q, g = _normed(rng, 20, 8), _normed(rng, 7, 8)
    target = rng.integers(0, 7, 20)
    rel = np.zeros((20, 7), dtype=bool)
    rel[np.arange(20), target] = True
    m = retrieval_metrics(q @ g.T, rel, ks=(1, 5))
    ranks = np.array([sorted(range(7), key=lambda j: -float(q[i] @ g[j])).index(target[i]) + 1 for i in range(20)])
    assert np.array_equal(m.first_relevant_rank, ranks)
    assert m.recall_at[1] == pytest.approx(np.mean(ranks == 1))
    assert m.recall_at[5] == pytest.approx(np.mean(ranks <= 5))


def test_validation_loss_batches_full_chunks():
    rng = np.random.default_rng(5)
    a, b = _normed(rng, 10, 8), _normed(rng, 10, 8)
    got = clip_loss_numpy_batches(a.astype(np.float32), b.astype(np.float32), 4, np.log(2.0))
    want = np.mean([numpy_clip_loss(a[s:s + 4], b[s:s + 4], 2.0) for s in (0, 4)])
    assert got == pytest.approx(want, rel=1e-5)

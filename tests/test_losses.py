"""Parity of the contrastive losses with plain-loop versions of the papers' algorithms.

In float64 (the losses keep float64 inputs in float64), so tolerances follow from double rounding
and hold on any machine; the plain loops sum in a different order than the vectorised losses."""

import math

import pytest
import torch
import torch.nn.functional as F

from rs_ssl.losses import info_nce, info_nce_queue, nt_xent


def _unit(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


def moco_v2_reference(q, k, queue, t):
    """He et al. 2020, Algorithm 1, one query at a time: positive logit q.k, negatives q.queue_j."""
    total = 0.0
    for i in range(q.shape[0]):
        l_pos = float(q[i] @ k[i]) / t
        l_neg = [float(q[i] @ queue[j]) / t for j in range(queue.shape[0])]
        denom = math.exp(l_pos) + sum(math.exp(v) for v in l_neg)
        total += -(l_pos - math.log(denom))
    return total / q.shape[0]


def simclr_reference(z1, z2, t):
    """Chen et al. 2020, Algorithm 1: interleave views as z_{2k-1}, z_{2k}; l(i, j) over k != i; mean of 2N terms."""
    n = z1.shape[0]
    z = []
    for a, b in zip(z1, z2, strict=True):
        z += [a / a.norm(), b / b.norm()]

    def sim(i, j):
        return float((z[i] @ z[j]).detach())

    def ell(i, j):
        denom = sum(math.exp(sim(i, m) / t) for m in range(2 * n) if m != i)
        return -math.log(math.exp(sim(i, j) / t) / denom)

    return sum(ell(2 * k, 2 * k + 1) + ell(2 * k + 1, 2 * k) for k in range(n)) / (2 * n)


def mocov3_reference(q, k, t, rank=0):
    """moco-v3 builder.py `contrastive_loss`: normalise, einsum('nc,mc->nm')/T, labels arange(N) + N * rank, x 2T."""
    q = F.normalize(q, dim=1)
    k = F.normalize(k, dim=1)
    logits = torch.einsum("nc,mc->nm", [q, k]) / t
    n = logits.shape[0]
    labels = torch.arange(n, dtype=torch.long) + n * rank
    return torch.nn.CrossEntropyLoss()(logits, labels) * (2 * t)


@pytest.mark.parametrize("t", [0.07, 0.2])
def test_info_nce_queue_matches_moco_algorithm_1(t):
    q, k, queue = _unit(5, 16, seed=0), _unit(5, 16, seed=1), _unit(23, 16, seed=2)
    assert info_nce_queue(q, k, queue, t).item() == pytest.approx(
        moco_v2_reference(q, k, queue, t), rel=1e-12
    )


@pytest.mark.parametrize("t", [0.1, 0.5])
def test_nt_xent_matches_simclr_algorithm_1(t):
    g = torch.Generator().manual_seed(3)
    z1, z2 = (
        torch.randn(6, 8, generator=g, dtype=torch.float64),
        torch.randn(6, 8, generator=g, dtype=torch.float64),
    )
    # unnormalised inputs: nt_xent normalises (cosine similarity in the paper)
    assert nt_xent(3 * z1, z2, t).item() == pytest.approx(simclr_reference(z1, z2, t), rel=1e-12)


def test_nt_xent_gathered_form_equals_the_global_batch_loss_and_gradient():
    """Two 'ranks' of 3 images: mean over ranks of nt_xent(local, gathered, offset) = loss over all 6,
    with the same gradient when every rank's gradient of the gathered tensor is summed (GatherLayer)."""
    g = torch.Generator().manual_seed(4)
    z1 = torch.randn(6, 8, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(6, 8, generator=g, dtype=torch.float64, requires_grad=True)
    whole = nt_xent(z1, z2, 0.1)
    gw1, gw2 = torch.autograd.grad(whole, [z1, z2])
    parts = [
        nt_xent(z1[r * 3 : (r + 1) * 3], z2[r * 3 : (r + 1) * 3], 0.1, z1, z2, offset=3 * r)
        for r in range(2)
    ]
    split = sum(parts) / 2
    gs1, gs2 = torch.autograd.grad(split, [z1, z2])
    assert split.item() == pytest.approx(whole.item(), rel=1e-10)
    assert whole.item() == pytest.approx(simclr_reference(z1.detach(), z2.detach(), 0.1), rel=1e-12)
    assert gs1.dtype == torch.float64  # float64 stays float64 (half precision is upcast to float32)
    torch.testing.assert_close(gs1, gw1, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(gs2, gw2, rtol=1e-10, atol=1e-13)
    # each rank's positives are at its own offset: a wrong offset changes the loss
    wrong = nt_xent(z1[3:], z2[3:], 0.1, z1, z2, offset=0)
    assert abs(wrong.item() - parts[1].item()) > 1e-3


@pytest.mark.parametrize("t", [0.2, 1.0])
def test_info_nce_matches_mocov3_contrastive_loss(t):
    g = torch.Generator().manual_seed(5)
    q, k = (
        torch.randn(4, 16, generator=g, dtype=torch.float64),
        torch.randn(4, 16, generator=g, dtype=torch.float64),
    )
    assert info_nce(q, k, t).item() == pytest.approx(mocov3_reference(q, k, t).item(), rel=1e-12)
    # rank 1 of 2: keys gathered from both ranks, positives at N * rank + i
    k_all = torch.cat([torch.randn(4, 16, generator=g, dtype=torch.float64), k])
    assert info_nce(q, k_all, t, offset=4).item() == pytest.approx(
        mocov3_reference(q, k_all, t, rank=1).item(), rel=1e-12
    )
    assert info_nce(q, k_all, t, offset=4).item() != pytest.approx(
        info_nce(q, k_all, t, offset=0).item(), rel=1e-3
    )

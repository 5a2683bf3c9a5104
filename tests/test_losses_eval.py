"""cw_margin_loss against the CW margin formula max(z_y - max_{j != y} z_j + kappa, 0) on fixed tensors."""

from __future__ import annotations

import torch

from art_rslad.losses import cw_margin_loss


def test_cw_margin_matches_formula_by_hand() -> None:
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0], [1.0, 1.0, 60.0]])
    labels = torch.tensor([0, 2, 0])
    # z_y - max_{j != y} z_j + kappa, clamped at 0: 3-2+1 = 2; 1-5+1 = -3 -> 0; 1-60+1 = -58 -> 0.
    assert torch.allclose(cw_margin_loss(logits, labels, kappa=1.0), torch.tensor([2.0, 0.0, 0.0]))
    # Default kappa 50: 3-2+50 = 51; 1-5+50 = 46; 1-60+50 = -9 -> 0.
    assert torch.allclose(cw_margin_loss(logits, labels), torch.tensor([51.0, 46.0, 0.0]))


def test_cw_margin_matches_loop_on_random_logits() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 10, generator=generator) * 20
    labels = torch.randint(0, 10, (16,), generator=generator)
    expected = torch.stack([
        torch.clamp(row[label] - max(row[j] for j in range(10) if j != label) + 50.0, min=0.0)
        for row, label in zip(logits, labels, strict=True)
    ])
    assert torch.allclose(cw_margin_loss(logits, labels), expected)


def test_cw_margin_gradient_lowers_true_logit_and_raises_runner_up() -> None:
    logits = torch.tensor([[4.0, 1.0, 3.0]], requires_grad=True)
    cw_margin_loss(logits, torch.tensor([0])).sum().backward()
    assert logits.grad is not None
    assert torch.equal(logits.grad, torch.tensor([[1.0, 0.0, -1.0]]))

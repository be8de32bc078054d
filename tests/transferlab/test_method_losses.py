"""The losses of distill, deep-coral and dan against their papers' formulas, written out in numpy
on fixed tiny batches: a reversed KL, a dropped T², a wrong normalisation or a kernel bandwidth off
by a factor fails here even where training would still look fine."""

import numpy as np
import pytest
import torch

from transferlab.methods.dan import multi_kernel_mmd2
from transferlab.methods.deep_coral import coral_loss
from transferlab.methods.distill import distillation_loss

RNG = np.random.default_rng(0)
A = RNG.normal(size=(6, 3))
B = RNG.normal(1.0, 2.0, size=(5, 3))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.mark.parametrize("t", [1.0, 4.0])
def test_distillation_loss_is_t_squared_times_kl_of_teacher_to_student(t):
    student, teacher = 4 * A[:5], 4 * B  # peaked enough that KL(p‖q) and KL(q‖p) differ at T = 4
    p, q = _softmax(teacher / t), _softmax(student / t)
    reference = t * t * float(np.mean(np.sum(p * np.log(p / q), axis=1)))  # Hinton et al. 2015
    got = distillation_loss(torch.tensor(student), torch.tensor(teacher), t).item()
    assert got == pytest.approx(reference, rel=1e-6)
    reversed_kl = t * t * float(np.mean(np.sum(q * np.log(q / p), axis=1)))
    assert abs(reference - reversed_kl) > 1e-3  # the batch tells the two directions apart


def test_coral_loss_is_the_frobenius_distance_of_covariances_over_4_d_squared():
    d = A.shape[1]
    reference = float(np.sum((np.cov(A, rowvar=False) - np.cov(B, rowvar=False)) ** 2)) / (4 * d * d)  # Sun & Saenko
    assert coral_loss(torch.tensor(A), torch.tensor(B)).item() == pytest.approx(reference, rel=1e-6)


def test_multi_kernel_mmd_uses_the_mean_pairwise_distance_as_bandwidth():
    mults = (0.25, 1.0, 4.0)
    z = np.concatenate([A, B])
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    n = len(z)
    sigma2 = d2.sum() / (n * n - n)
    k = sum(np.exp(-d2 / (sigma2 * m)) for m in mults)
    ns = len(A)
    reference = k[:ns, :ns].mean() + k[ns:, ns:].mean() - 2 * k[:ns, ns:].mean()  # Long et al. 2015, biased
    got = multi_kernel_mmd2(torch.tensor(A), torch.tensor(B), mults).item()
    assert got == pytest.approx(reference, rel=1e-6)

"""The gumbel relaxation's gradient on the logits: carried past BatchNorm, so it does not hang on BN's eps,
has the size of the softmax gradient and, averaged over samples, its direction; one candidate per step.

The straight-through weight must act after ``bn2``: before it, training-mode BN divides the scale away and
the logits' gradient is an eps artefact (about 1e-7, proportional to eps, pointing anywhere).

Directions are compared on a supernet whose weights first fit the fixed batch for a few gumbel steps (as
after the search's warm-up): at random initialisation the one-candidate estimator (GDAS's) measures how
much the loss wants each sampled branch amplified, which on untrained weights tracks the candidates' losses
only for some initialisations.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dilnas.models.mixed import MixedDilatedConv
from dilnas.models.supernet import SuperNet
from dilnas.spec.space import load_space

Batch = tuple[torch.Tensor, torch.Tensor]

FIT_STEPS = 40  # gumbel weight steps before the logits' gradients are compared
SAMPLES = 128  # gumbel samples averaged for the direction and size
EPS_SAMPLES = 16  # the same samples under both eps: the sampling noise cancels, fewer suffice


@pytest.fixture(scope="module")
def batch() -> Batch:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(4, 3, 64, 64, generator=generator)
    labels = torch.randint(0, 3, (4, 64, 64), generator=generator)
    return images, labels


def loss(supernet: SuperNet, batch: Batch) -> torch.Tensor:
    images, labels = batch
    return F.cross_entropy(supernet(images), labels, ignore_index=255)


def copy_of(supernet: SuperNet, relaxation: str) -> SuperNet:
    """A training-mode supernet with ``supernet``'s state; only the logits take gradients (cheaper)."""
    clone = SuperNet(supernet.space, relaxation)
    clone.load_state_dict(supernet.state_dict())
    for weight in clone.weight_parameters():
        weight.requires_grad_(False)  # the logits' gradient is unchanged
    return clone.train()


@pytest.fixture(scope="module")
def fitted(batch: Batch) -> SuperNet:
    """A gumbel supernet whose weights fit ``batch`` for FIT_STEPS steps (the logits stay at zero)."""
    torch.manual_seed(0)
    supernet = SuperNet(load_space("synthetic_tiny"), relaxation="gumbel").train()
    optimizer = torch.optim.SGD(list(supernet.weight_parameters()), lr=0.05, momentum=0.9)
    for step in range(FIT_STEPS):
        supernet.sample_seed = 1000 + step  # apart from the seeds the tests average over
        optimizer.zero_grad(set_to_none=True)
        loss(supernet, batch).backward()
        optimizer.step()
    return supernet


def logit_gradient(supernet: SuperNet, batch: Batch, seeds: range) -> torch.Tensor:
    """The gradient of the loss on every branch's logits (concatenated), averaged over ``seeds``."""
    total = torch.zeros(sum(alpha.numel() for alpha in supernet.alphas))
    for seed in seeds:
        supernet.zero_grad(set_to_none=True)
        supernet.sample_seed = seed
        loss(supernet, batch).backward()
        total += torch.cat([alpha.grad for alpha in supernet.alphas])
    return total / len(seeds)


@pytest.fixture(scope="module")
def gradients(fitted: SuperNet, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(gumbel gradient averaged over SAMPLES samples, softmax gradient) at the same weights and logits."""
    gumbel = logit_gradient(copy_of(fitted, "gumbel"), batch, range(SAMPLES))
    return gumbel, logit_gradient(copy_of(fitted, "softmax"), batch, range(1))


def test_gumbel_gradient_does_not_depend_on_batchnorm_eps(batch):
    # At initialisation: eps matters for a gradient that is an eps artefact whatever the weights. (The
    # network itself moves a little with eps: the softmax gradient changes by about a quarter here.)
    torch.manual_seed(0)
    supernet = copy_of(SuperNet(load_space("synthetic_tiny"), relaxation="gumbel"), "gumbel")
    before = logit_gradient(supernet, batch, range(EPS_SAMPLES))
    for module in supernet.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eps = 1e-3
    after = logit_gradient(supernet, batch, range(EPS_SAMPLES))
    change = ((after - before).norm() / before.norm()).item()
    assert change < 0.1, f"eps 1e-5 -> 1e-3 changes the logits' gradient by {change:.3g} (relative)"


def test_gumbel_gradient_points_like_the_softmax_gradient(gradients):
    gumbel, softmax = gradients
    cosine = F.cosine_similarity(gumbel, softmax, dim=0).item()
    assert cosine > 0.3, f"cosine(gumbel mean over {SAMPLES} samples, softmax) = {cosine:.3f}"


def test_gumbel_gradient_has_the_size_of_the_softmax_gradient(gradients):
    # The same order: about 0.13 here (the one-candidate estimator is smaller), where the weight applied
    # before bn2 gave 3e-5.
    gumbel, softmax = gradients
    ratio = (gumbel.norm() / softmax.norm()).item()
    assert 0.03 < ratio < 30, f"|gumbel mean| / |softmax| = {ratio:.3g}"


@pytest.mark.parametrize("shared_kernel", [True, False])
def test_gumbel_gradient_step_computes_only_the_sampled_candidate(monkeypatch, shared_kernel):
    torch.manual_seed(0)
    supernet = SuperNet(load_space("synthetic_tiny"), relaxation="gumbel", shared_kernel=shared_kernel)
    kernels = {id(weight): mixed for mixed in supernet.mixed for weight in mixed.weights}
    calls: dict[MixedDilatedConv, list[int]] = {mixed: [] for mixed in supernet.mixed}
    conv2d = F.conv2d  # every conv, nn.Conv2d's included, goes through F.conv2d: count the mixed kernels'

    def counting_conv2d(x, weight, *args, **kwargs):
        if id(weight) in kernels:
            dilation = args[3] if len(args) > 3 else kwargs["dilation"]
            calls[kernels[id(weight)]].append(dilation)
        return conv2d(x, weight, *args, **kwargs)

    monkeypatch.setattr(F, "conv2d", counting_conv2d)
    images = torch.randn(2, 3, 64, 64)
    supernet.train()
    supernet.sample_seed = 7
    supernet(images).mean().backward()
    assert all(alpha.grad is not None for alpha in supernet.alphas)
    for mixed in supernet.mixed:
        assert calls[mixed] == [mixed.candidates[mixed.active]], "a gumbel step computes one candidate"
        calls[mixed].clear()
    supernet.eval()  # the expectation: every candidate (so the count above is not vacuous)
    with torch.no_grad():
        supernet(images)
    for mixed in supernet.mixed:
        assert calls[mixed] == list(mixed.candidates)

"""The supernet: one-hot logits give exactly the derived network; gumbel computes one candidate."""

from __future__ import annotations

import datetime

import pytest
import torch

from dilnas import __version__
from dilnas.models.regseg import RegSeg
from dilnas.models.supernet import SuperNet
from dilnas.spec.derivation import branch_scores, derive_arch, derive_rates
from dilnas.spec.space import load_space
from dilnas.utils.provenance import stamp
from tests.helpers.networks import randomise_batchnorm


@pytest.fixture(scope="module")
def space():
    return load_space("synthetic_tiny")


def one_hot(supernet: SuperNet, rates: list[int]) -> None:
    with torch.no_grad():
        for alpha, branch, rate in zip(supernet.alphas, supernet.space.branches, rates, strict=True):
            alpha.fill_(-1e4)
            alpha[branch.candidates.index(rate)] = 0.0


@pytest.mark.parametrize("shared_kernel", [True, False])
@pytest.mark.parametrize("relaxation", ["softmax", "gumbel"])
def test_one_hot_supernet_equals_the_derived_network(space, shared_kernel, relaxation):
    torch.manual_seed(0)
    supernet = SuperNet(space, relaxation, shared_kernel)
    randomise_batchnorm(supernet)
    rates = [2, 5]
    one_hot(supernet, rates)
    derived = supernet.derive_network(space.arch_with(rates), rates)
    x = torch.randn(2, 3, 96, 96)
    supernet.eval(), derived.eval()
    with torch.no_grad():
        difference = (supernet(x) - derived(x)).abs().max().item()
    assert difference <= 1e-5


def test_gumbel_computes_only_the_sampled_candidate_and_trains_the_logits(space):
    torch.manual_seed(0)
    supernet = SuperNet(space, "gumbel", shared_kernel=False)
    supernet.train()
    supernet.sample_seed = 3
    supernet(torch.randn(2, 3, 64, 64)).mean().backward()
    for mixed, alpha in zip(supernet.mixed, supernet.alphas, strict=True):
        assert mixed.active is not None
        used = [w.grad is not None for w in mixed.weights]
        assert used == [index == mixed.active for index in range(len(mixed.candidates))]
        assert alpha.grad is not None and alpha.grad.abs().sum() > 0


def test_gumbel_sample_is_a_function_of_the_seed(space):
    supernet = SuperNet(space, "gumbel")
    supernet.train()
    samples = []
    for seed in (5, 5, 6, 7, 8):
        supernet.sample_seed = seed
        supernet._set_mix()
        samples.append([m.active for m in supernet.mixed])
    assert samples[0] == samples[1]
    assert any(sample != samples[0] for sample in samples[2:])


def test_weights_and_logits_are_kept_apart(space):
    supernet = SuperNet(space)
    arch = {id(p) for p in supernet.arch_parameters()}
    weights = {id(p) for p in supernet.weight_parameters()}
    assert len(arch) == 2 and not arch & weights
    assert arch | weights == {id(p) for p in supernet.parameters()}


def test_derive_rules_on_one_branch():
    rates, probs = [1, 2, 3, 4], [0.1, 0.4, 0.15, 0.35]

    def best(rule: str, k: int = 2) -> int:
        return max(zip(branch_scores(rates, probs, rule, k), rates, strict=True))[1]

    assert best("argmax") == 2
    assert best("expected") == 3  # 2.75 -> 3
    assert best("topk", k=2) == 4  # the larger of the two most probable
    assert best("topk", k=1) == 2
    with pytest.raises(ValueError, match="'best' is not a valid DeriveRule"):
        branch_scores(rates, probs, "best")


def test_optimal_derivation_decides_blocks_jointly():
    space = load_space("regseg_exp48")
    # Every branch prefers its largest candidate, but block 6's 9 needs block 5 at 3: with block 5 forced
    # to 1 the field before block 6 is 63 + 32 = 95 px, bound 5.
    probs = [[0.9, 0.05, 0.05]] + [
        [1.0 / len(b.candidates)] * (len(b.candidates) - 1) + [0.0] for b in space.branches[1:]
    ]
    probs[1] = [0.0] * 8 + [1.0]
    rates = derive_rates(space, probs, "argmax")
    # Jointly: 0.05 x 1.0 for (3, 9) beats 0.9 x 0.0 for (1, anything up to 5); greedy would take 1 first.
    assert rates[:2] == [3, 9]
    arch = space.arch_with(rates)
    assert arch.gaps() == []


def test_derived_architecture_carries_search_and_provenance(space, tmp_path):
    from dilnas.spec.arch import load_arch, save_arch

    probs = [[1.0 / len(b.candidates)] * len(b.candidates) for b in space.branches]
    arch = derive_arch(space, probs, "argmax", provenance=stamp(seed=7))
    assert arch.search["space"] == "synthetic_tiny" and arch.search["space_digest"] == space.digest
    assert set(arch.search["branches"]) == {b.key for b in space.branches}
    assert arch.provenance["seed"] == 7 and arch.provenance["dilnas_version"] == __version__
    assert datetime.datetime.fromisoformat(arch.provenance["time"]).tzinfo is not None
    # The pure layer records what it is given and gathers nothing itself (no clock, no git).
    assert derive_arch(space, probs, "argmax", provenance={"seed": 7}).provenance == {"seed": 7}
    assert load_arch(save_arch(arch, tmp_path / "arch.json")) == arch


def test_batchnorm_recalibration_is_the_plain_average_over_the_batches():
    from torch import nn

    from dilnas.train.selection import recalibrate_batchnorm

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4))
    model[1].running_mean.fill_(7.0)  # stale statistics from elsewhere
    batches = [torch.randn(2, 3, 5, 5) + shift for shift in (0.0, 3.0)]
    recalibrate_batchnorm(model, batches)
    with torch.no_grad():
        means = torch.stack([model[0](b).mean(dim=(0, 2, 3)) for b in batches])
    torch.testing.assert_close(model[1].running_mean, means.mean(0))
    assert not model.training


def test_weight_mapping_reads_the_supernets_own_keys(space):
    from dilnas.models.weights import arch_logits, derived_state_dict

    supernet = SuperNet(space, shared_kernel=False)
    for alpha in supernet.alphas:
        torch.nn.init.normal_(alpha)
    state = supernet.state_dict()
    logits = arch_logits(state, len(space.branches))
    assert all(torch.equal(a, b) for a, b in zip(logits, supernet.alphas, strict=True))
    rates = [b.candidates[-1] for b in space.branches]
    chosen = {(b.block, b.branch): len(b.candidates) - 1 for b in space.branches}
    derived = derived_state_dict(state, chosen)
    assert derived.keys() == RegSeg(space.arch_with(rates)).state_dict().keys()
    for branch, mixed in zip(space.branches, supernet.mixed, strict=True):
        key = f"body.blocks.{branch.block}.conv2.convs.{branch.branch}.weight"
        assert torch.equal(derived[key], mixed.kernel(len(branch.candidates) - 1))
    with pytest.raises(KeyError):  # one kernel per candidate: the choice must be named
        derived_state_dict(state, {})

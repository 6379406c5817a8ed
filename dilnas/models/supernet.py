"""The supernet: RegSeg whose searchable branches are mixed dilation convolutions.

It is a ``RegSeg`` built from the search space's macro-architecture, with every searchable branch's conv
replaced by a ``MixedDilatedConv``; all other keys equal the derived network's, so weights inherit by name.
The architecture logits (``alphas``, one vector per searchable branch) are kept apart from the weights:
``weight_parameters()`` and ``arch_parameters()`` feed two optimizers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dilnas.models.mixed import MixedDilatedConv
from dilnas.models.regseg import RegSeg
from dilnas.spec.arch import ArchSpec
from dilnas.spec.space import SearchSpace

RELAXATIONS = ("softmax", "gumbel")


class SuperNet(RegSeg):
    def __init__(self, space: SearchSpace, relaxation: str = "softmax", shared_kernel: bool = True):
        if relaxation not in RELAXATIONS:
            raise ValueError(f"unknown relaxation {relaxation!r}; allowed: {', '.join(RELAXATIONS)}")
        super().__init__(space.base)
        self.space = space
        self.relaxation = relaxation
        self.temperature = 1.0
        self.sample_seed = 0  # gumbel noise seed; the search loop sets it per step, equal on every rank
        self.mixed: list[MixedDilatedConv] = []
        for branch in space.branches:
            block = space.base.blocks[branch.block]
            mixed = MixedDilatedConv(
                block.branch_channels, branch.candidates, block.group_width, block.stride, shared_kernel
            )
            self.body.blocks[branch.block].conv2.convs[branch.branch] = mixed
            self.mixed.append(mixed)
        self.alphas = nn.ParameterList(nn.Parameter(torch.zeros(len(b.candidates))) for b in space.branches)

    # ---- parameters ------------------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas)

    def weight_parameters(self) -> Iterator[nn.Parameter]:
        arch = {id(p) for p in self.alphas}
        return (p for p in self.parameters() if id(p) not in arch)

    def probabilities(self) -> list[torch.Tensor]:
        """Softmax of each branch's logits at the current temperature (detached)."""
        return [F.softmax(alpha.detach() / self.temperature, dim=0) for alpha in self.alphas]

    # ---- forward ---------------------------------------------------------------------------------
    def _set_mix(self) -> None:
        if self.relaxation == "softmax" or not self.training:
            # Evaluation of a gumbel supernet uses the expectation, like softmax.
            for mixed, alpha in zip(self.mixed, self.alphas, strict=True):
                mixed.mix, mixed.active = F.softmax(alpha / self.temperature, dim=0), None
            return
        generator = torch.Generator(device="cpu").manual_seed(self.sample_seed)
        for mixed, alpha in zip(self.mixed, self.alphas, strict=True):
            uniform = torch.rand(alpha.shape, generator=generator).clamp_(1e-10, 1 - 1e-10).to(alpha.device)
            soft = F.softmax((alpha - torch.log(-torch.log(uniform))) / self.temperature, dim=0)
            index = int(soft.argmax())
            hard = torch.zeros_like(soft)
            hard[index] = 1.0
            mixed.mix, mixed.active = hard - soft.detach() + soft, index  # straight-through

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._set_mix()
        return super().forward(x)

    # ---- derived networks ------------------------------------------------------------------------
    def derived_state_dict(self, rates: Sequence[int]) -> dict[str, torch.Tensor]:
        """Weights of the derived network with ``rates`` (one per searchable branch): inherited by name, the
        searchable branches take the shared kernel (or the chosen candidate's own kernel)."""
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("alphas.")}
        for branch, mixed, rate in zip(self.space.branches, self.mixed, rates, strict=True):
            prefix = f"body.blocks.{branch.block}.conv2.convs.{branch.branch}."
            for key in [k for k in state if k.startswith(prefix)]:
                del state[key]
            state[prefix + "weight"] = mixed.kernel(branch.candidates.index(rate)).detach().clone()
        return state

    def derive_network(self, arch: ArchSpec, rates: Sequence[int]) -> RegSeg:
        model = RegSeg(arch).to(next(self.parameters()).device)
        model.load_state_dict(self.derived_state_dict(rates))
        return model

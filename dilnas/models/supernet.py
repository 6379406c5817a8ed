"""The supernet: RegSeg whose searchable branches are mixed dilation convolutions.

It is a ``RegSeg`` built from the search space's macro-architecture, with every searchable branch's conv
replaced by a ``MixedDilatedConv``; all other keys equal the derived network's, so weights inherit by name.
Blocks with a searchable branch get a ``GatedBatchNorm2d`` as ``bn2`` (same keys as ``nn.BatchNorm2d``): in
gumbel training it applies the sampled candidate's straight-through weight after normalisation, where BN
cannot cancel it.
The architecture logits (``alphas``, one vector per searchable branch) are kept apart from the weights:
``weight_parameters()`` and ``arch_parameters()`` feed two optimizers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dilnas.models.blocks import DBlock, unfolded_norm
from dilnas.models.mixed import GatedBatchNorm2d, MixedDilatedConv
from dilnas.models.regseg import RegSeg
from dilnas.models.weights import derived_state_dict
from dilnas.spec.arch import ArchSpec
from dilnas.spec.options import Relaxation
from dilnas.spec.space import SearchSpace


class SuperNet(RegSeg):
    """RegSeg over a search space: each searchable branch is a ``MixedDilatedConv`` whose rate is a softmax
    (``Relaxation.softmax``: every candidate computed and mixed) or a straight-through gumbel sample
    (``Relaxation.gumbel``: one candidate computed per training step) over its candidates, from the logits ``alphas``
    at ``temperature``. In ``eval()`` both relaxations compute the expectation. With one-hot logits it computes
    the same function as the derived network (``derive_network``), which inherits its weights by name.
    """

    def __init__(
        self, space: SearchSpace, relaxation: Relaxation = Relaxation.softmax, shared_kernel: bool = True
    ):
        relaxation = Relaxation(relaxation)  # a plain string such as "gumbel" is checked here
        super().__init__(space.base)
        self.space = space
        self.relaxation = relaxation
        self.temperature = 1.0
        self.sample_seed = 0  # gumbel noise seed; the search loop sets it per step, equal on every rank
        self.mixed: list[MixedDilatedConv] = []
        gates: dict[int, list[tuple[slice, MixedDilatedConv]]] = {}  # block index -> its searchable branches
        for branch in space.branches:
            block = space.base.blocks[branch.block]
            mixed = MixedDilatedConv(
                block.branch_channels, branch.candidates, block.group_width, block.stride, shared_kernel
            )
            conv2 = self._dblock(branch.block).conv2
            conv2.convs[branch.branch] = mixed
            self.mixed.append(mixed)
            start = branch.branch * conv2.branch_chs  # DilatedConv concatenates its branches in order
            gates.setdefault(branch.block, []).append((slice(start, start + conv2.branch_chs), mixed))
        for index, block_gates in gates.items():
            dblock = self._dblock(index)
            dblock.bn2 = GatedBatchNorm2d(unfolded_norm(dblock.bn2), block_gates)
        self.alphas = nn.ParameterList(nn.Parameter(torch.zeros(len(b.candidates))) for b in space.branches)

    def _dblock(self, index: int) -> DBlock:
        # The body's nn.ModuleList hands out plain nn.Modules; every block RegSeg builds is a DBlock.
        block = self.body.blocks[index]
        if not isinstance(block, DBlock):
            raise TypeError(f"body.blocks[{index}] is a {type(block).__name__}, not a DBlock")
        return block

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
        if self.relaxation is Relaxation.softmax or not self.training:
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
            # Straight-through: the value is exactly one-hot (soft - soft.detach() is exactly 0), the gradient
            # is the soft sample's. GatedBatchNorm2d applies mix[index] after bn2, where BN cannot cancel it.
            mixed.mix, mixed.active = hard + (soft - soft.detach()), index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._set_mix()
        return super().forward(x)

    # ---- derived networks ------------------------------------------------------------------------
    def derived_state_dict(self, rates: Sequence[int]) -> dict[str, torch.Tensor]:
        """Weights of the derived network with ``rates`` (one per searchable branch), by the one mapping
        every loader uses (``dilnas.models.weights.derived_state_dict``); detached copies."""
        chosen = {
            (b.block, b.branch): b.candidates.index(rate)
            for b, rate in zip(self.space.branches, rates, strict=True)
        }
        state = {key: value.detach().clone() for key, value in self.state_dict().items()}
        return derived_state_dict(state, chosen)

    def derive_network(self, arch: ArchSpec, rates: Sequence[int]) -> RegSeg:
        model = RegSeg(arch).to(next(self.parameters()).device)
        model.load_state_dict(self.derived_state_dict(rates))
        return model

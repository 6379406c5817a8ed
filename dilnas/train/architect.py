"""The architecture step of the bilevel search: the logits move on held-out data with their own Adam.

First order (default): the gradient of the held-out loss with respect to the logits at the current
weights. Second order (DARTS): the same gradient at the weights after one virtual step of the weight
optimizer on the training batch, minus the exact (double-backward) Hessian-vector product that accounts for
how those weights follow the logits.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from dilnas.models.supernet import SuperNet
from dilnas.spec.options import SearchConfig, SearchOrder
from dilnas.utils.errors import UserError

Batch = tuple[torch.Tensor, torch.Tensor]


class Architect:
    """Steps the supernet's architecture logits (``supernet.alphas``) with Adam on a held-out batch.

    The gradient it gives the logits (``hypergradient``), plus ``entropy_weight`` times the gradient of the
    mean branch entropy:

    - ``order=first``: dL_val(w, α)/dα at the current weights w.
    - ``order=second`` (DARTS): with w' = w − ξ (μ·buf + dL_train(w, α)/dw + λ·w), the step the weight
      optimizer (SGD) would take next on the training batch, per parameter group (ξ: the group's lr, or
      ``unrolled_lr``; μ: its momentum, buf: its momentum buffer when it has one; λ: its weight decay),

          dL_val(w', α)/dα − ξ · d²L_train(w, α)/(dα dw) · dL_val(w', α)/dw'

      the total derivative of L_val(w'(α), α). Momentum and decay do not depend on α, so only the mixed
      second derivative appears; it is computed exactly by double backward, not by finite differences.

    The step leaves the weights, their momentum buffers and the BatchNorm running statistics as they were
    (the virtual step is undone exactly) and only moves the logits; the first order leaves the held-out
    gradients on the weights' ``.grad`` (the weight step clears them), the second order clears them.
    """

    def __init__(self, model: nn.Module, supernet: SuperNet, criterion: nn.Module, config: SearchConfig):
        if config.order is SearchOrder.second and any(
            isinstance(m, nn.SyncBatchNorm) for m in supernet.modules()
        ):
            # Refused up front rather than at the first architecture step, after the warm-up epochs.
            raise UserError(
                "search.order=second cannot run with trainer.sync_bn=true: SyncBatchNorm has no double "
                "backward (pytorch/pytorch#61222); set trainer.sync_bn=false or search.order=first"
            )
        self.model, self.supernet, self.criterion, self.config = model, supernet, criterion, config
        if len(config.arch_betas) != 2:
            raise UserError(f"search.arch_betas={config.arch_betas}: expected two numbers [beta1, beta2]")
        beta1, beta2 = config.arch_betas
        self.optimizer = torch.optim.Adam(
            supernet.arch_parameters(),
            lr=config.arch_lr,
            betas=(beta1, beta2),
            weight_decay=config.arch_weight_decay,
        )

    def entropy(self) -> torch.Tensor:
        """Mean entropy of the branches' distributions (differentiable)."""
        values = []
        for alpha in self.supernet.alphas:
            log_p = F.log_softmax(alpha / self.supernet.temperature, dim=0)
            values.append(-(log_p.exp() * log_p).sum())
        return torch.stack(values).mean()

    def _loss(self, batch: Batch) -> torch.Tensor:
        images, labels = batch
        return self.criterion(self.model(images), labels)

    def step(
        self, train_batch: Batch, heldout_batch: Batch, weight_optimizer: torch.optim.Optimizer
    ) -> float:
        """One Adam update of the logits; returns the held-out loss. ``weight_optimizer`` is the weights' SGD:
        the second order's virtual step uses its lr, momentum buffers and weight decay."""
        self.optimizer.zero_grad(set_to_none=True)
        gradients, loss = self.hypergradient(train_batch, heldout_batch, weight_optimizer)
        for alpha, gradient in zip(self.supernet.arch_parameters(), gradients, strict=True):
            alpha.grad = gradient
        self.optimizer.step()
        return loss.item()

    def hypergradient(
        self, train_batch: Batch, heldout_batch: Batch, weight_optimizer: torch.optim.Optimizer
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(The gradient for each logit, as in the class docstring; the held-out loss, detached)."""
        alphas = self.supernet.arch_parameters()
        if self.config.order is SearchOrder.second:
            return self._second_order(train_batch, heldout_batch, weight_optimizer)
        self._zero(alphas)
        loss = self._loss(heldout_batch)
        (loss + self.config.entropy_weight * self.entropy()).backward()
        return _gradients(alphas), loss.detach()

    def _step_settings(
        self, weight_optimizer: torch.optim.Optimizer
    ) -> list[tuple[nn.Parameter, float, float, float]]:
        """(weight, ξ, μ, λ) for every weight the optimizer steps: its group's settings."""
        steps = []
        for group in weight_optimizer.param_groups:
            if group.get("nesterov") or group.get("dampening") or group.get("maximize"):
                # The virtual step would no longer be the optimizer's step, nor its α-derivative -ξ·∂g/∂α.
                raise ValueError(
                    "second-order search: the weight optimizer must be SGD without nesterov, "
                    "dampening or maximize"
                )
            lr = self.config.unrolled_lr or group["lr"]
            for weight in group["params"]:
                if weight.requires_grad:
                    steps.append((weight, lr, group.get("momentum", 0.0), group.get("weight_decay", 0.0)))
        return steps

    def _second_order(
        self, train_batch: Batch, heldout_batch: Batch, weight_optimizer: torch.optim.Optimizer
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        alphas = self.supernet.arch_parameters()
        steps = self._step_settings(weight_optimizer)
        weights = [w for w, *_ in steps]
        saved = [w.detach().clone() for w in weights]
        buffers = [b.detach().clone() for b in self.supernet.buffers()]  # BN statistics stay untouched
        try:
            # Virtual step w' = w - ξ (μ buf + dL_train/dw + λ w): what SGD does next (through the wrapped
            # model, so under DDP the gradient is averaged over ranks like the real step's).
            self._zero(weights + alphas)
            self._loss(train_batch).backward()
            with torch.no_grad():
                for w, lr, momentum, decay in steps:
                    if w.grad is None:  # SGD skips a weight without gradient (a candidate no sample used)
                        continue
                    direction = w.grad.clone()
                    direction.add_(w, alpha=decay)
                    buffer = weight_optimizer.state.get(w, {}).get("momentum_buffer")
                    if momentum and buffer is not None:  # SGD's first step has no buffer yet
                        direction.add_(buffer, alpha=momentum)
                    w.sub_(lr * direction)

            # At w': the direct term dL_val/dα, and v = dL_val/dw' (scaled by each group's ξ).
            self._zero(weights + alphas)
            loss = self._loss(heldout_batch)
            (loss + self.config.entropy_weight * self.entropy()).backward()
            direct = _gradients(alphas)
            vector = [None if w.grad is None else lr * w.grad.detach() for w, lr, _, _ in steps]
            self._zero(weights + alphas)
            with torch.no_grad():
                for w, original in zip(weights, saved, strict=True):
                    w.copy_(original)

            # Back at w: d/dα (Σ ξ · dL_train/dw · v) by double backward. On the bare supernet: DDP does not
            # support torch.autograd.grad, so the ranks' products are averaged by hand.
            images, labels = train_batch
            train_loss = self.criterion(self.supernet(images), labels)
            gradients = torch.autograd.grad(train_loss, weights, create_graph=True, allow_unused=True)
            products = [
                (g * v).sum()
                for g, v in zip(gradients, vector, strict=True)
                if g is not None and v is not None
            ]
            dot = torch.stack(products).sum() if products else train_loss.new_zeros(())
            mixed = (
                torch.autograd.grad(dot, alphas, allow_unused=True)
                if dot.requires_grad
                else [None] * len(alphas)
            )
            correction = _average_over_ranks(
                [torch.zeros_like(a) if h is None else h for a, h in zip(alphas, mixed, strict=True)]
            )
        finally:
            # Exactly the weights and statistics from before, whatever happened.
            with torch.no_grad():
                for w, original in zip(weights, saved, strict=True):
                    w.copy_(original)
                for b, original in zip(self.supernet.buffers(), buffers, strict=True):
                    b.copy_(original)
            self._zero(weights + alphas)
        return [d - c for d, c in zip(direct, correction, strict=True)], loss.detach()

    @staticmethod
    def _zero(params: list[nn.Parameter]) -> None:
        for p in params:
            p.grad = None


def _gradients(params: list[nn.Parameter]) -> list[torch.Tensor]:
    """Copies of the parameters' ``.grad`` (zeros where there is none)."""
    return [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]


def _average_over_ranks(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The mean over DDP ranks (what DDP does to gradients); the tensors themselves in a single process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1 or not tensors:
        return tensors
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    return [
        piece.view_as(t) for piece, t in zip(flat.split([t.numel() for t in tensors]), tensors, strict=True)
    ]

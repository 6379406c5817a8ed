"""The architecture step of the bilevel search: the logits move on held-out data with their own Adam.

First order (default): the gradient of the held-out loss with respect to the logits at the current
weights. Second order (DARTS): at the weights after one virtual SGD step on the training batch, minus the
finite-difference Hessian-vector product that accounts for how the weights follow the logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dilnas.models.supernet import SuperNet
from dilnas.spec.options import SearchConfig, SearchOrder

Batch = tuple[torch.Tensor, torch.Tensor]


class Architect:
    def __init__(self, model: nn.Module, supernet: SuperNet, criterion: nn.Module, config: SearchConfig):
        self.model, self.supernet, self.criterion, self.config = model, supernet, criterion, config
        betas = tuple(config.arch_betas)
        self.optimizer = torch.optim.Adam(
            supernet.arch_parameters(), lr=config.arch_lr, betas=betas, weight_decay=config.arch_weight_decay
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

    def step(self, train_batch: Batch, heldout_batch: Batch, weight_lr: float) -> float:
        """One update of the logits; returns the held-out loss."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.config.order is SearchOrder.second:
            loss = self._second_order_backward(
                train_batch, heldout_batch, self.config.unrolled_lr or weight_lr
            )
        else:
            loss = self._loss(heldout_batch)
            (loss + self.config.entropy_weight * self.entropy()).backward()
        self.optimizer.step()
        return loss.item()

    def _weights(self) -> list[nn.Parameter]:
        return [p for p in self.supernet.weight_parameters() if p.requires_grad]

    def _second_order_backward(self, train_batch: Batch, heldout_batch: Batch, lr: float) -> torch.Tensor:
        weights, alphas = self._weights(), self.supernet.arch_parameters()
        saved = [w.detach().clone() for w in weights]
        buffers = [b.detach().clone() for b in self.supernet.buffers()]  # BN statistics stay untouched

        # Virtual step: w' = w - lr * dL_train/dw.
        self._zero(weights + alphas)
        self._loss(train_batch).backward()
        with torch.no_grad():
            for w in weights:
                if w.grad is not None:
                    w.sub_(lr * w.grad)

        # dL_val(w', alpha)/dalpha and dL_val/dw'.
        self._zero(weights + alphas)
        loss = self._loss(heldout_batch)
        (loss + self.config.entropy_weight * self.entropy()).backward()
        direct = [a.grad.detach().clone() for a in alphas]
        vector = [torch.zeros_like(w) if w.grad is None else w.grad.detach().clone() for w in weights]
        epsilon = 0.01 / torch.sqrt(sum((v * v).sum() for v in vector)).clamp_min(1e-12)

        # Finite-difference Hessian-vector product: (dL_train(w+)/dalpha - dL_train(w-)/dalpha) / (2 eps).
        hessian = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for w, original, v in zip(weights, saved, vector, strict=True):
                    w.copy_(original + sign * epsilon * v)
            self._zero(weights + alphas)
            self._loss(train_batch).backward()
            hessian.append([a.grad.detach().clone() for a in alphas])

        with torch.no_grad():
            for w, original in zip(weights, saved, strict=True):
                w.copy_(original)
            for b, original in zip(self.supernet.buffers(), buffers, strict=True):
                b.copy_(original)
        self._zero(weights)
        for a, d, plus, minus in zip(alphas, direct, *hessian, strict=True):
            a.grad = d - lr * (plus - minus) / (2 * epsilon)
        return loss.detach()

    @staticmethod
    def _zero(params: list[nn.Parameter]) -> None:
        for p in params:
            p.grad = None

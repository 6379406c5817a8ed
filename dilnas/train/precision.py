"""Mixed precision: the dtype autocast computes in, and whether the loss is scaled (``trainer.amp``,
``trainer.amp_dtype``).

float16 needs a gradient scaler (its range is narrow); bfloat16 has float32's range and needs none, and it is
what a CPU computes in, so the autocast paths of retraining and of the search run in CI too. The search's
architecture step stays in full precision: its gradients are small, and the second order differentiates twice.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from dilnas.spec.options import AmpDtype
from dilnas.utils.errors import UserError


@dataclass(frozen=True)
class Precision:
    """What one device computes in: ``dtype`` under autocast, or full precision when it is None."""

    device_type: str
    dtype: torch.dtype | None = None

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    @property
    def scaled(self) -> bool:
        """Whether losses need a ``GradScaler`` (float16 only)."""
        return self.dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device_type, enabled=self.scaled)

    def __str__(self) -> str:
        return f"{str(self.dtype).removeprefix('torch.')} autocast" if self.dtype else "full precision"


FULL = Precision("cpu")


def resolve_precision(amp: bool, amp_dtype: AmpDtype, device: torch.device) -> Precision:
    """``trainer.amp`` and ``trainer.amp_dtype`` on ``device``: ``auto`` is float16 on CUDA and full
    precision elsewhere; an explicit dtype applies on any device."""
    if not amp:
        return Precision(device.type)
    if amp_dtype is AmpDtype.auto:
        return Precision(device.type, torch.float16 if device.type == "cuda" else None)
    dtype = torch.float16 if amp_dtype is AmpDtype.float16 else torch.bfloat16
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise UserError(
            f"trainer.amp_dtype=bfloat16: {torch.cuda.get_device_name(device)} has no bfloat16; use float16"
        )
    return Precision(device.type, dtype)

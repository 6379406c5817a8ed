"""Start a RegSeg from saved weights: a released RegSeg checkpoint (public layout) or a dilnas checkpoint.

A classifier whose class count differs is re-initialised, as the paper does when fine-tuning Cityscapes
weights on CamVid; any other mismatch is an error that lists the keys.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import torch

from dilnas.models.official import CheckpointLayoutError, from_official_state_dict
from dilnas.models.regseg import RegSeg
from dilnas.utils.checkpoints import load_checkpoint
from dilnas.utils.errors import UserError

CLASSIFIER_PREFIX = "decoder.classifier."  # the same name in both layouts
_MIXED_KERNEL = re.compile(r"^(body\.blocks\.(\d+)\.conv2\.convs\.(\d+)\.)weights\.(\d+)$")


def initialize_from(model: RegSeg, path: str | os.PathLike) -> list[str]:
    """Load weights into ``model``; returns the keys that were re-initialised (classifier only)."""
    obj = load_checkpoint(path)
    state = obj["model"] if isinstance(obj.get("model"), Mapping) else obj
    state = {key.removeprefix("module."): value for key, value in state.items()}
    if not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise UserError(f"{path}: expected a state dict of tensors (or a checkpoint with a 'model' entry)")
    if any(key.startswith("alphas.") for key in state):
        state = _from_search_state(model, state, str(path))
    reference = model.state_dict()
    reinitialised = [
        key
        for key, tensor in reference.items()
        if key.startswith(CLASSIFIER_PREFIX) and key in state and state[key].shape != tensor.shape
    ]
    for key in reinitialised:
        state[key] = reference[key]
    if not any(key.startswith("body.blocks.") for key in state):
        state = from_official_state_dict(model.spec, state, source=str(path))
    missing = [key for key in reference if key not in state]
    unexpected = [key for key in state if key not in reference]
    mismatched = [
        f"{key} {tuple(state[key].shape)} (expected {tuple(tensor.shape)})"
        for key, tensor in reference.items()
        if key in state and state[key].shape != tensor.shape
    ]
    if missing or unexpected or mismatched:
        raise CheckpointLayoutError(str(path), missing, unexpected, mismatched)
    model.load_state_dict(state)
    return reinitialised


def _from_search_state(model: RegSeg, state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """A supernet's weights for the derived network: each searchable branch takes its shared kernel, or
    (one kernel per candidate) the kernel of the rate the architecture chose."""
    chosen = {}
    for key, branch in ((model.spec.search or {}).get("branches") or {}).items():
        chosen[key] = branch["rates"].index(branch["choice"])
    converted = {}
    for key, tensor in state.items():
        if key.startswith("alphas."):
            continue
        match = _MIXED_KERNEL.match(key)
        if match is None:
            converted[key] = tensor
            continue
        prefix, block, branch, index = match.group(1), match.group(2), match.group(3), int(match.group(4))
        per_candidate = f"{prefix}weights.1" in state
        if per_candidate:
            wanted = chosen.get(f"block{block}.b{branch}")
            if wanted is None:
                raise UserError(
                    f"{source}: a supernet with one kernel per candidate; the architecture needs a 'search' "
                    f"section naming the chosen rate of block{block}.b{branch} (use the arch.json the search wrote)"
                )
            if index != wanted:
                continue
        converted[prefix + "weight"] = tensor
    return converted

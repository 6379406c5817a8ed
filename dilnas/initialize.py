"""Start a RegSeg from saved weights: a released RegSeg checkpoint (public layout) or a dilnas checkpoint.

A classifier whose class count differs is re-initialised, as the paper does when fine-tuning Cityscapes
weights on CamVid; any other mismatch is an error that lists the keys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from dilnas.checkpoint import load_checkpoint
from dilnas.errors import UserError
from dilnas.official import CheckpointLayoutError, from_official_state_dict
from dilnas.regseg import RegSeg

CLASSIFIER_PREFIX = "decoder.classifier."  # the same name in both layouts


def initialize_from(model: RegSeg, path: str | os.PathLike) -> list[str]:
    """Load weights into ``model``; returns the keys that were re-initialised (classifier only)."""
    obj = load_checkpoint(path)
    state = obj["model"] if isinstance(obj.get("model"), Mapping) else obj
    state = {key.removeprefix("module."): value for key, value in state.items()}
    if not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise UserError(f"{path}: expected a state dict of tensors (or a checkpoint with a 'model' entry)")
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

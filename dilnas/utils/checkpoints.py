"""Checkpoints: everything a run needs to continue exactly, written atomically, read with weights_only=True.

A checkpoint is a plain dict of tensors, numbers, strings and lists (no pickled objects), so that
``torch.load(..., weights_only=True)`` can read it: RNG states are stored as tensors and lists.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dilnas.utils.errors import UserError
from dilnas.utils.files import atomic_write


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    return atomic_write(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such checkpoint file") from None
    except Exception as error:  # torch raises several types for corrupt or unsafe files
        raise UserError(f"{path}: cannot load checkpoint: {str(error).splitlines()[0]}") from None
    if not isinstance(state, dict):
        raise UserError(f"{path}: expected a dilnas checkpoint (a dict), got {type(state).__name__}")
    return state


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA RNG states in a weights_only-loadable form."""
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=True)
    # The legacy tuple, unless the global RandomState was given another bit generator than MT19937.
    if not isinstance(numpy_state, tuple):
        raise TypeError(f"NumPy's global RNG is not MT19937 ({numpy_state['bit_generator']}); cannot save it")
    name, keys, pos, has_gauss, cached = numpy_state
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)

"""Checkpoints: everything a run needs to continue exactly, written atomically, read with weights_only=True.

A checkpoint is a plain dict of tensors, numbers, strings and lists (no pickled objects), so that
``torch.load(..., weights_only=True)`` can read it: RNG states are stored as tensors and lists.
"""

from __future__ import annotations

import errno
import os
import pickle
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dilnas.utils.errors import UserError
from dilnas.utils.files import atomic_write


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """``state`` written atomically: on any failure (a full disk included) the previous file stays, no temporary
    file is left, and the error is one line naming the file."""
    return atomic_write(path, lambda handle: _torch_save(state, handle))


def _torch_save(state: dict[str, Any], handle: Any) -> None:
    """``torch.save``, whose zip writer reports a failed write (a full disk) as a RuntimeError, raised while
    closing the archive over the file system's own OSError or instead of it: as an OSError, which the atomic
    writer turns into one line."""
    try:
        torch.save(state, handle)
    except RuntimeError as error:
        if isinstance(error.__context__, OSError):
            raise error.__context__ from None
        message = str(error).strip().splitlines()[0] if str(error).strip() else "torch.save failed"
        if not any(sign in message for sign in ("write failed", "failed writing", "unexpected pos")):
            raise
        raise OSError(errno.EIO, f"the write failed ({message}); is the disk full?") from None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint (a dict) read with ``weights_only=True``; UserError for a missing, corrupt or unsafe file
    and for weights that are not finite (a diverged run, a corrupt file)."""
    try:
        with warnings.catch_warnings():  # torch's warnings about storages and pickles are not the user's
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such checkpoint file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a checkpoint file") from None
    except pickle.UnpicklingError:
        # torch suggests weights_only=False here; dilnas never runs code from a checkpoint.
        raise UserError(
            f"{path}: not a weights-only checkpoint: the file is corrupt or holds pickled Python objects, "
            "which dilnas never loads (save a state dict of tensors)"
        ) from None
    except Exception as error:  # torch raises several types for files that are not checkpoints
        first = (str(error).splitlines() or [""])[0]
        raise UserError(
            f"{path}: cannot load checkpoint (not a PyTorch checkpoint, or corrupt): {type(error).__name__}: {first}"
        ) from None
    if not isinstance(state, dict):
        raise UserError(f"{path}: expected a dilnas checkpoint (a dict), got {type(state).__name__}")
    model = state.get("model")
    check_finite(model if isinstance(model, dict) else state, path)
    return state


def check_finite(tensors: dict[str, Any], path: str | os.PathLike) -> None:
    """UserError naming the first floating-point tensor of ``tensors`` that holds nan or inf."""
    for key, value in tensors.items():
        if (
            isinstance(value, torch.Tensor)
            and value.is_floating_point()
            and not bool(torch.isfinite(value).all())
        ):
            raise UserError(
                f"{path}: tensor {key!r} holds non-finite values (nan or inf): the run that saved it diverged "
                "or the file is corrupt"
            )


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

"""Released RegSeg checkpoints: the public implementation's state-dict layout <-> dilnas' RegSeg.

The public layout groups blocks by output stride (``body.stage4``, ``body.stage8.0``, ``body.stage16.13``;
a stage of one block has no index) and stores a single-branch 3x3 as ``conv2.weight`` rather than
``conv2.convs.0.weight``. Everything else (stem, block internals, decoder) has the same names in both.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import torch

from dilnas.models.regseg import RegSeg
from dilnas.models.weights import check_fits
from dilnas.spec.arch import ArchSpec
from dilnas.utils.checkpoints import load_checkpoint

_BLOCK_KEY = re.compile(r"^body\.blocks\.(\d+)\.(.*)$")


def official_block_prefixes(spec: ArchSpec) -> list[str]:
    """The public layout's prefix of each block, e.g. ``body.stage4.`` or ``body.stage16.13.``."""
    strides = spec.output_strides()
    counts = {stride: strides.count(stride) for stride in strides}
    prefixes: list[str] = []
    seen: dict[int, int] = {}  # output stride -> blocks at that stride so far
    for stride in strides:
        position = seen.get(stride, 0)
        seen[stride] = position + 1
        suffix = f".{position}" if counts[stride] > 1 else ""
        prefixes.append(f"body.stage{stride}{suffix}.")
    return prefixes


def official_key_map(spec: ArchSpec, dilnas_keys: list[str]) -> dict[str, str]:
    """dilnas key -> public-layout key, for every key of a dilnas RegSeg state dict."""
    prefixes = official_block_prefixes(spec)
    mapping = {}
    for key in dilnas_keys:
        match = _BLOCK_KEY.match(key)
        if match is None:
            mapping[key] = key  # stem.* and decoder.* share their names
            continue
        index, rest = int(match.group(1)), match.group(2)
        if len(spec.blocks[index].dilations) == 1:
            rest = rest.replace("conv2.convs.0.", "conv2.", 1)
        mapping[key] = prefixes[index] + rest
    return mapping


def _reference_state(spec: ArchSpec) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return RegSeg(spec).state_dict()


def expected_official_shapes(spec: ArchSpec) -> dict[str, tuple[int, ...]]:
    """Every key of the public layout for ``spec`` with its tensor shape."""
    reference = _reference_state(spec)
    mapping = official_key_map(spec, list(reference))
    return {mapping[key]: tuple(tensor.shape) for key, tensor in reference.items()}


def from_official_state_dict(
    spec: ArchSpec, state: Mapping[str, torch.Tensor], source: str = "state dict"
) -> dict[str, torch.Tensor]:
    """Rename a public-layout state dict to dilnas keys, after checking every key and shape."""
    reference = _reference_state(spec)
    mapping = official_key_map(spec, list(reference))
    official_to_dilnas = {official: key for key, official in mapping.items()}
    expected = {key: tuple(reference[dkey].shape) for key, dkey in official_to_dilnas.items()}
    check_fits(expected, state, source, spec.name)
    return {dkey: state[key] for key, dkey in official_to_dilnas.items()}


def to_official_state_dict(model: RegSeg) -> dict[str, torch.Tensor]:
    """The model's state dict in the public layout (tensors shared, not copied)."""
    state = model.state_dict()
    mapping = official_key_map(model.spec, list(state))
    return {mapping[key]: tensor for key, tensor in state.items()}


def load_official_checkpoint(model: RegSeg, path: str | os.PathLike) -> None:
    """Load a released RegSeg checkpoint (a state dict, or a dict with a ``model`` entry) into ``model``.

    Loads with ``weights_only=True``; a ``module.`` prefix left by DataParallel/DDP is removed.
    """
    obj = load_checkpoint(path)
    if isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    state = {key.removeprefix("module."): value for key, value in obj.items()}
    model.load_state_dict(from_official_state_dict(model.spec, state, source=str(path)))

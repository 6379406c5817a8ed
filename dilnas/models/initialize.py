"""Start a RegSeg from saved weights: a released RegSeg checkpoint (public layout), a dilnas checkpoint, or a
search run's supernet checkpoint (the derived network inherits its weights).

A classifier whose class count differs is re-initialised, as the paper does when fine-tuning Cityscapes
weights on CamVid; any other mismatch is an error that lists the keys.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from dilnas.models.memory import check_memory
from dilnas.models.official import from_official_state_dict
from dilnas.models.regseg import RegSeg
from dilnas.models.weights import check_fits, derived_state_dict, is_supernet_state, shapes
from dilnas.spec.arch import ArchSpec, load_arch
from dilnas.spec.labels import RGB, as_palette, palette_problem
from dilnas.spec.space import branch_key, parse_branch_key
from dilnas.utils.checkpoints import load_checkpoint
from dilnas.utils.errors import UserError

CLASSIFIER_PREFIX = "decoder.classifier."  # the same name in both layouts
ARCH_ENTRY = "arch"  # a retraining checkpoint's architecture (JSON text)
NORMALISATION_ENTRY = "normalisation"  # the mean and std the run's data was normalised with
CLASSES_ENTRY = "class_names"  # the run's class names in id order (predict colours and lists them)
COLOURS_ENTRY = "class_colours"  # the data's own RGB colour per class, where it declares them


def arch_entry(spec: ArchSpec) -> dict[str, str]:
    """The checkpoint entry that records ``spec``, so that the checkpoint alone rebuilds its network."""
    return {ARCH_ENTRY: json.dumps(spec.to_dict(), sort_keys=True)}


def read_state_dict(path: str | os.PathLike, obj: Mapping[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file (a state dict, or a dict with a ``model`` entry), loaded with
    ``weights_only=True`` unless ``obj`` is the file already loaded, without the ``module.`` prefix
    DataParallel/DDP leave."""
    obj = load_checkpoint(path) if obj is None else obj
    state = obj["model"] if isinstance(obj.get("model"), Mapping) else obj
    state = {key.removeprefix("module."): value for key, value in state.items()}
    if not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise UserError(f"{path}: expected a state dict of tensors (or a checkpoint with a 'model' entry)")
    return state


def initialize_from(model: RegSeg, path: str | os.PathLike) -> list[str]:
    """Load weights into ``model``; returns the keys that were re-initialised (classifier only)."""
    return load_state(model, read_state_dict(path), str(path))


def state_num_classes(state: Mapping[str, torch.Tensor]) -> int | None:
    """The class count a state dict's classifier was trained for (None if it has none)."""
    bias = state.get(f"{CLASSIFIER_PREFIX}bias")
    return None if bias is None else bias.numel()


def load_state(model: RegSeg, state: dict[str, torch.Tensor], source: str) -> list[str]:
    """``initialize_from`` for a state dict already read (``source`` names it in errors)."""
    if is_supernet_state(state):
        state = _derived_from_supernet(model, state, source)
    reference = model.state_dict()
    reinitialised = [
        key
        for key, tensor in reference.items()
        if key.startswith(CLASSIFIER_PREFIX) and key in state and state[key].shape != tensor.shape
    ]
    for key in reinitialised:
        state[key] = reference[key]
    if not any(key.startswith("body.blocks.") for key in state):
        state = from_official_state_dict(model.spec, state, source=source)
    check_fits(shapes(reference), state, source, model.spec.name)
    model.load_state_dict(state)
    return reinitialised


def load_model(
    arch: str | os.PathLike | ArchSpec | None,
    checkpoint: str | os.PathLike | None = None,
    allow_gaps: bool = False,
) -> RegSeg:
    """The network of ``arch`` (a shipped name, a path, or an ArchSpec) on the CPU in eval mode, with the
    weights of ``checkpoint`` when given: a dilnas retraining checkpoint, a search's supernet checkpoint (the
    derived network inherits its weights) or a released RegSeg one. The checkpoint's class count wins over
    the architecture file's (retraining builds the classifier for its data's classes). ``arch=None`` takes
    the architecture a dilnas retraining checkpoint records."""
    given = arch if isinstance(arch, ArchSpec) or arch is None else load_arch(arch, allow_gaps=allow_gaps)
    # Read once: the recorded architecture and the weights come from the same file.
    obj = None if checkpoint is None else load_checkpoint(checkpoint)
    spec = given if given is not None else recorded_arch(obj, checkpoint, allow_gaps)
    check_memory(lambda: RegSeg(spec), None, torch.device("cpu"), spec.name)
    model = RegSeg(spec)
    if checkpoint is not None:
        state = read_state_dict(checkpoint, obj)
        num_classes = state_num_classes(state)
        if num_classes is not None and num_classes != spec.num_classes:
            model = RegSeg(spec.with_num_classes(num_classes))
        load_state(model, state, str(checkpoint))
    # What the weights were trained on (a dilnas checkpoint records it): predict and deploy normalise with it.
    model.normalisation = recorded_normalisation(obj)
    model.class_names = recorded_class_names(obj, model.spec.num_classes)
    model.class_colours = recorded_class_colours(obj, model.spec.num_classes)
    return model.eval()


def class_entries(
    class_names: Sequence[str], colours: Sequence[Sequence[int]] | None
) -> dict[str, list[Any]]:
    """The checkpoint entries that name a run's classes (and give their colours, when the data has its own)."""
    entries: dict[str, list[Any]] = {CLASSES_ENTRY: list(class_names)}
    if colours is not None:
        entries[COLOURS_ENTRY] = [list(colour) for colour in colours]
    return entries


def recorded_class_colours(obj: Mapping[str, Any] | None, num_classes: int) -> tuple[RGB, ...] | None:
    """The class colours a dilnas checkpoint records (``num_classes`` RGB triples of 0..255), else None."""
    entry = (obj or {}).get(COLOURS_ENTRY)
    if entry is None or palette_problem(entry, num_classes) is not None:
        return None
    return as_palette(entry)


def recorded_class_names(obj: Mapping[str, Any] | None, num_classes: int) -> tuple[str, ...] | None:
    """The class names a dilnas checkpoint records, if they are ``num_classes`` strings; else None."""
    entry = (obj or {}).get(CLASSES_ENTRY)
    if not isinstance(entry, (list, tuple)) or len(entry) != num_classes:
        return None
    return tuple(entry) if all(isinstance(name, str) for name in entry) else None


def recorded_normalisation(obj: Mapping[str, Any] | None) -> dict[str, list[float]] | None:
    """The ``{"mean": [...], "std": [...]}`` a dilnas checkpoint records, or None (another checkpoint, none)."""
    entry = (obj or {}).get(NORMALISATION_ENTRY)
    if not isinstance(entry, dict):
        return None
    values = [entry.get("mean"), entry.get("std")]
    if not all(
        isinstance(v, list) and len(v) == 3 and all(isinstance(x, int | float) for x in v) for v in values
    ):
        return None
    return {"mean": [float(x) for x in entry["mean"]], "std": [float(x) for x in entry["std"]]}


def recorded_arch(
    obj: Mapping[str, Any] | None, checkpoint: str | os.PathLike | None, allow_gaps: bool = False
) -> ArchSpec:
    """The architecture a dilnas retraining checkpoint records (``obj``, the file ``checkpoint`` loaded: its
    ``arch`` entry, JSON); a one-line error for any other checkpoint, or none."""
    if obj is None:
        raise UserError(
            "no architecture: give arch= (a shipped name or a .json path) or a retraining checkpoint="
        )
    text = obj.get(ARCH_ENTRY)
    if not isinstance(text, str):
        raise UserError(
            f"{checkpoint}: records no architecture (not a dilnas retraining checkpoint); give arch= "
            "(a shipped name or a .json path)"
        )
    source = f"{checkpoint} (its recorded architecture)"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{source}: not JSON: {error}") from None
    return ArchSpec.from_dict(data, source=source, allow_gaps=allow_gaps)


def load_dilnas_weights(model: RegSeg, path: str | os.PathLike) -> None:
    """Load a dilnas checkpoint (``checkpoints/best.pt`` of a retraining) into ``model``, exactly."""
    obj = load_checkpoint(path)
    if not isinstance(obj.get("model"), Mapping):
        raise UserError(f"{path}: not a dilnas retraining checkpoint (no 'model' entry)")
    check_fits(shapes(model.state_dict()), obj["model"], str(path), model.spec.name)
    model.load_state_dict(obj["model"])


def _derived_from_supernet(
    model: RegSeg, state: Mapping[str, torch.Tensor], source: str
) -> dict[str, torch.Tensor]:
    """A supernet's weights for ``model``, the network derived from it. With one kernel per candidate the
    chosen rates come from the architecture's ``search`` section (the arch.json the search wrote)."""
    chosen = {}
    for key, branch in ((model.spec.search or {}).get("branches") or {}).items():
        chosen[parse_branch_key(key)] = branch["rates"].index(branch["choice"])
    try:
        return derived_state_dict(state, chosen)
    except KeyError as error:
        block, number = error.args[0]
        raise UserError(
            f"{source}: a supernet with one kernel per candidate; the architecture needs a 'search' section "
            f"naming the chosen rate of {branch_key(block, number)} (use the arch.json the search wrote)"
        ) from None

"""Seeds: every random stream of a run is derived from the run's one seed, so that the same seed gives the
same run, and resuming at any step gives the same randomness as an uninterrupted run.

``derive_seed(seed, STREAM, ...)`` names the stream it derives: the data order of an epoch, one sample's
augmentation, the held-out split, the gumbel sample of a step. Streams never share a value by accident:
each has its own id (below) and the parts are mixed by a SplitMix-style hash.
"""

from __future__ import annotations

# Stream ids: the first part after the seed says which random stream a derived seed belongs to. Changing one
# changes every run's randomness; add new ones, do not renumber. (Values kept from before they were named,
# so that existing runs reproduce.)
HELDOUT_ORDER = 1  # the search's held-out batches: order and augmentation
BN_CALIBRATION = 2  # the training images that re-estimate BatchNorm statistics in the gap probe
HELDOUT_SPLIT = 0x5EED  # which training samples are held out for the architecture step
RANDOM_ARCHS = 0xA4C5  # which architectures random search draws
CLASS_UNIFORM = 0xC1A5  # an epoch's class-uniform sample list: which images and which class centroids
UNIFORM_ARCHS = 0x0A11  # which architectures search.method=uniform scores at the end


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers, stable across processes, platforms and Python versions."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value ^ (part & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        value ^= value >> 31
    return value & 0x7FFFFFFFFFFFFFFF

"""dilnas: dilation-rate search for real-time semantic segmentation networks (RegSeg)."""

__version__ = "0.1.0"

"""Datasets: synthetic (built in), Cityscapes, CamVid, and their transforms."""

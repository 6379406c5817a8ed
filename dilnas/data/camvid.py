"""CamVid in the widely used 11-class SegNet layout (367 train, 101 val, 233 test images at 360x480).

Layout under ``root``: ``<split>/<name>.png`` with its label ``<split>annot/<name>.png`` (same file name) for
the splits train, val and test. Labels hold the class ids 0..10 and 11 for void, which becomes 255 (ignored).
"""

from __future__ import annotations

from pathlib import Path

from dilnas.data.common import SegmentationDataset, label_lookup_table, list_pairs, require_dir

SPLITS = ("train", "val", "test", "trainval")
CLASS_NAMES = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)
VOID_ID = 11


class CamVidDataset(SegmentationDataset):
    """CamVid, 11 classes; splits ``train``, ``val``, ``test`` and ``trainval`` (train + val, as in RegSeg)."""

    num_classes = len(CLASS_NAMES)
    class_names = CLASS_NAMES
    label_table = label_lookup_table(
        {class_id: class_id for class_id in range(VOID_ID)}, ignored_ids=[VOID_ID]
    )
    label_values_text = f"CamVid class ids 0..{VOID_ID - 1} or {VOID_ID} (void)"
    dataset_name = "CamVid"
    splits = SPLITS

    def layout(self, part: str) -> str:
        return f"{part}/*.png and {part}annot/*.png (same file names) under {self.root}"

    def list_split(self, part: str) -> list[tuple[Path, Path | None]]:
        """(image, label) paths of one split, sorted by file name."""
        layout = self.layout(part)
        image_dir, label_dir = self.root / part, self.root / f"{part}annot"
        require_dir(image_dir, layout)
        require_dir(label_dir, layout)
        return list_pairs(image_dir, "*.png", layout, lambda image: label_dir / image.name)

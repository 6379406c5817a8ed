"""Cityscapes (fine annotations) in its official layout, with the 19 evaluation classes.

Layout under ``root``::

    leftImg8bit/<split>/<city>/<name>_leftImg8bit.png
    gtFine/<split>/<city>/<name>_gtFine_labelIds.png

The labelIds PNGs hold the 34 label ids 0..33; they are mapped to the 19 train ids with the official
cityscapesScripts table, every other id to 255 (ignored). The ``test`` split has no public labels: its samples
come with an all-255 label and ``files`` pairs each image with ``None``.
"""

from __future__ import annotations

from pathlib import Path

from dilnas.data.common import SegmentationDataset, label_lookup_table, list_pairs, require_dir

SPLITS = ("train", "val", "test", "trainval")
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"

CLASS_NAMES = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)
# cityscapesScripts labels.py: label id -> train id for the 19 evaluated classes, in train-id order.
LABEL_ID_TO_TRAIN_ID = {
    label_id: train_id
    for train_id, label_id in enumerate(
        (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
    )
}
NUM_LABEL_IDS = 34  # ids 0..33; the license plate's id -1 is never drawn into labelIds PNGs


class CityscapesDataset(SegmentationDataset):
    """Cityscapes fine annotations; splits ``train``, ``val``, ``test`` (no labels) and ``trainval``."""

    num_classes = len(CLASS_NAMES)
    class_names = CLASS_NAMES
    label_table = label_lookup_table(LABEL_ID_TO_TRAIN_ID, ignored_ids=range(NUM_LABEL_IDS))
    label_values_text = f"Cityscapes label ids 0..{NUM_LABEL_IDS - 1}"
    dataset_name = "Cityscapes"
    splits = SPLITS

    def layout(self, part: str) -> str:
        return (
            f"leftImg8bit/{part}/<city>/*{IMAGE_SUFFIX} and gtFine/{part}/<city>/*{LABEL_SUFFIX} "
            f"under {self.root}"
        )

    def list_split(self, part: str) -> list[tuple[Path, Path | None]]:
        """(image, label) paths of one official split, sorted; the label is None for ``test``."""
        layout = self.layout(part)
        image_dir = self.root / "leftImg8bit" / part
        require_dir(image_dir, layout)
        label_dir = self.root / "gtFine" / part
        has_labels = part != "test"
        if has_labels:
            require_dir(label_dir, layout)

        def label_of(image: Path) -> Path:
            return label_dir / image.parent.name / (image.name[: -len(IMAGE_SUFFIX)] + LABEL_SUFFIX)

        return list_pairs(image_dir, f"*/*{IMAGE_SUFFIX}", layout, label_of if has_labels else None)

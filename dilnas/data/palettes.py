"""Colours of classes: the palettes that colour-code a segmentation mask, and the mask and overlay images.

Cityscapes' 19 train classes get the official colours (cityscapesScripts ``labels.py``), CamVid's 11 classes the
SegNet colours (SegNet-Tutorial ``Scripts/test_segmentation_camvid.py``), both in the class order of
``dilnas.data.cityscapes`` and ``dilnas.data.camvid``; any other class count gets a fixed palette of distinct
colours (matplotlib's ten ``tab10`` colours, then golden-ratio hues), the same on every run. Where the class
names are known (a dilnas checkpoint records them), they decide: a class named after a colour ("red",
"green": the synthetic data's) is drawn in that colour, and a background class ("background", "void",
"unlabeled") is transparent in overlays, so the image shows through (``transparent_classes``). A pixel that is
no class (255, ignored) is black in a mask and left as it is in an overlay. ``legend_image`` draws the colours
with their names.
"""

from __future__ import annotations

import colorsys
from collections.abc import Collection, Sequence

import numpy as np
from PIL import Image, ImageDraw

from dilnas.data import camvid, cityscapes
from dilnas.spec.labels import IGNORE_INDEX
from dilnas.spec.settings import parse_choice
from dilnas.spec.tool_options import PaletteName
from dilnas.utils.errors import UserError

RGB = tuple[int, int, int]
IGNORE_COLOUR: RGB = (0, 0, 0)
MAX_CLASSES = IGNORE_INDEX  # a palette image holds indices 0..254 for classes, 255 for "no class"

CITYSCAPES_COLOURS: dict[str, RGB] = {
    "road": (128, 64, 128),
    "sidewalk": (244, 35, 232),
    "building": (70, 70, 70),
    "wall": (102, 102, 156),
    "fence": (190, 153, 153),
    "pole": (153, 153, 153),
    "traffic light": (250, 170, 30),
    "traffic sign": (220, 220, 0),
    "vegetation": (107, 142, 35),
    "terrain": (152, 251, 152),
    "sky": (70, 130, 180),
    "person": (220, 20, 60),
    "rider": (255, 0, 0),
    "car": (0, 0, 142),
    "truck": (0, 0, 70),
    "bus": (0, 60, 100),
    "train": (0, 80, 100),
    "motorcycle": (0, 0, 230),
    "bicycle": (119, 11, 32),
}
CAMVID_COLOURS: dict[str, RGB] = {
    "Sky": (128, 128, 128),
    "Building": (128, 0, 0),
    "Pole": (192, 192, 128),
    "Road": (128, 64, 128),
    "Pavement": (60, 40, 222),
    "Tree": (128, 128, 0),
    "SignSymbol": (192, 128, 128),
    "Fence": (64, 64, 128),
    "Car": (64, 0, 128),
    "Pedestrian": (64, 64, 0),
    "Bicyclist": (0, 128, 192),
}
# In the data sets' class order, so that class id i has colour i.
CITYSCAPES_PALETTE: tuple[RGB, ...] = tuple(CITYSCAPES_COLOURS[name] for name in cityscapes.CLASS_NAMES)
CAMVID_PALETTE: tuple[RGB, ...] = tuple(CAMVID_COLOURS[name] for name in camvid.CLASS_NAMES)
TAB10: tuple[RGB, ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)


def generic_palette(num_classes: int) -> tuple[RGB, ...]:
    """``num_classes`` distinct colours, none of them black: tab10, then hues spaced by the golden ratio
    (saturation and brightness vary with each turn round the hue circle)."""
    _check_count(num_classes)
    colours = list(TAB10[:num_classes])
    index = 0
    while len(colours) < num_classes:
        hue = (index * 0.618033988749895) % 1.0
        turn = index // 8
        saturation, value = (0.9, 0.65, 0.45)[turn % 3], (0.95, 0.75, 0.55)[(turn // 3) % 3]
        red, green, blue = colorsys.hsv_to_rgb(hue, saturation, value)
        colour = (round(red * 255), round(green * 255), round(blue * 255))
        if colour not in colours:
            colours.append(colour)
        index += 1
    return tuple(colours)


def palette_for(
    num_classes: int,
    palette: PaletteName = PaletteName.auto,
    class_names: Sequence[str] | None = None,
    colours: Sequence[Sequence[int]] | None = None,
) -> np.ndarray:
    """The (num_classes, 3) uint8 colours of a network's classes. ``auto``: by the class names when given
    (Cityscapes' or CamVid's names get their data set's colours, a class named after a colour that colour,
    the rest ``generic`` colours not taken yet), else by the count: Cityscapes' for 19 classes, CamVid's for
    11, else ``generic``; ``cityscapes`` and ``camvid`` must match the class count. The data's own
    ``colours`` (a folder dataset's ``palette:``), when given, win over ``auto``."""
    _check_count(num_classes)
    palette = parse_choice(PaletteName, palette, "palette")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"palette_for: {len(class_names)} class names for {num_classes} classes")
    fixed = {PaletteName.cityscapes: CITYSCAPES_PALETTE, PaletteName.camvid: CAMVID_PALETTE}
    if palette is PaletteName.auto and colours is not None:
        if len(colours) != num_classes:
            raise ValueError(f"palette_for: {len(colours)} colours for {num_classes} classes")
        return np.array(colours, dtype=np.uint8)
    if palette is PaletteName.auto and class_names is not None:
        names = tuple(class_names)
        by_names = {cityscapes.CLASS_NAMES: PaletteName.cityscapes, camvid.CLASS_NAMES: PaletteName.camvid}
        if names not in by_names:
            return np.array(_named_palette(names), dtype=np.uint8)
        palette = by_names[names]
    if palette is PaletteName.auto:
        by_count = {len(CITYSCAPES_PALETTE): PaletteName.cityscapes, len(CAMVID_PALETTE): PaletteName.camvid}
        palette = by_count.get(num_classes, PaletteName.generic)
    if palette is PaletteName.generic:
        return np.array(generic_palette(num_classes), dtype=np.uint8)
    colours, name = fixed[palette], palette.value
    if len(colours) != num_classes:
        raise UserError(
            f"palette={name}: it colours the {len(colours)} classes of {name}, but the network predicts "
            f"{num_classes} classes; use palette=auto or palette=generic"
        )
    return np.array(colours, dtype=np.uint8)


def _named_palette(class_names: Sequence[str]) -> list[RGB]:
    """A class named after a colour (CSS colour names: ``red``, ``dark green``) in that colour, the others in
    the generic colours, in order, that no class took."""
    named = [_colour_of_name(name) for name in class_names]
    spare = (c for c in generic_palette(MAX_CLASSES) if c not in named)
    return [colour if colour is not None else next(spare) for colour in named]


def _colour_of_name(name: str) -> RGB | None:
    from matplotlib.colors import CSS4_COLORS, to_rgb  # here: the commands' start-up does not pay for it

    key = name.lower().replace(" ", "").replace("_", "")
    if key not in CSS4_COLORS or key in {"black"}:  # black is the colour of "no class"
        return None
    red, green, blue = to_rgb(CSS4_COLORS[key])
    return (round(red * 255), round(green * 255), round(blue * 255))


BACKGROUND_NAMES = frozenset({"background", "void", "unlabeled", "unlabelled"})


def transparent_classes(class_names: Sequence[str] | None) -> tuple[int, ...]:
    """The ids of the background classes (``BACKGROUND_NAMES``, any case): left out of overlays, so that the
    image shows through where nothing was found."""
    return tuple(i for i, name in enumerate(class_names or ()) if name.lower() in BACKGROUND_NAMES)


def colourize(mask: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 image of the (H, W) class ids ``mask``: class i in ``palette[i]``, anything that is
    no class (255, ignored) black."""
    table = np.zeros((256, 3), dtype=np.uint8)  # every index without a class stays black
    table[: len(palette)] = palette
    return table[np.clip(mask, 0, 255).astype(np.uint8)]


def mask_image(mask: np.ndarray, palette: np.ndarray) -> Image.Image:
    """A palette ("P" mode) image of the class ids ``mask``: its pixels are the ids, its palette the colours
    (the ids can be read back with ``numpy.array(Image.open(path))``)."""
    if mask.size and int(mask.max()) > 255:
        raise ValueError(f"mask_image: class ids up to 255 fit a palette image, got {int(mask.max())}")
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: len(palette)] = palette
    image = Image.fromarray(mask.astype(np.uint8))  # mode "L"; a palette makes it "P"
    image.putpalette(table.flatten().tolist())
    return image


def overlay(
    image: np.ndarray,
    mask: np.ndarray,
    palette: np.ndarray,
    alpha: float,
    transparent: Collection[int] = (),
) -> np.ndarray:
    """The (H, W, 3) uint8 ``image`` with the colours of ``mask`` blended in at opacity ``alpha``; pixels of
    no class (255) and of the ``transparent`` classes keep the image's colour."""
    if image.shape[:2] != mask.shape:
        raise ValueError(f"overlay: image {image.shape[:2]} and mask {mask.shape} differ in size")
    colours = colourize(mask, palette).astype(np.float32)
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colours
    coloured = mask < len(palette)
    if transparent:
        coloured &= ~np.isin(mask, list(transparent))
    blended = np.where(coloured[..., None], blended, image.astype(np.float32))
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def _check_count(num_classes: int) -> None:
    if not 1 <= num_classes <= MAX_CLASSES:
        raise UserError(
            f"{num_classes} classes: a colour-coded mask holds 1 to {MAX_CLASSES} classes (255 marks no class)"
        )


LEGEND_ROW = 14  # pixels per class in a legend: the swatch and PIL's default font
LEGEND_PAD = 4


def legend_image(
    class_names: Sequence[str],
    palette: np.ndarray,
    transparent: Collection[int] = (),
    width: int | None = None,
) -> np.ndarray:
    """An (H, W, 3) uint8 white image of each class's colour swatch and name, flowing left to right in lines
    at most ``width`` pixels wide (None: one class per line); a ``transparent`` class is listed as such (its
    swatch outlined, not filled)."""
    if len(class_names) != len(palette):
        raise ValueError(f"legend_image: {len(class_names)} names for {len(palette)} colours")
    labels = [f"{name} (transparent)" if i in transparent else name for i, name in enumerate(class_names)]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    entries = [LEGEND_ROW + round(measure.textlength(label)) + 2 * LEGEND_PAD for label in labels]
    places: list[tuple[int, int]] = []
    x, y = LEGEND_PAD, LEGEND_PAD
    for entry in entries:
        if places and (width is None or (x > LEGEND_PAD and x + entry > width)):
            x, y = LEGEND_PAD, y + LEGEND_ROW
        places.append((x, y))
        x += entry
    total_width = max(width or 0, max(px + e for (px, _), e in zip(places, entries, strict=True)))
    image = Image.new("RGB", (total_width, y + LEGEND_ROW + LEGEND_PAD), "white")
    draw = ImageDraw.Draw(image)
    for index, (label, (x, y)) in enumerate(zip(labels, places, strict=True)):
        swatch = (x, y + 1, x + LEGEND_ROW - 4, y + LEGEND_ROW - 3)
        if index in transparent:
            draw.rectangle(swatch, outline=(128, 128, 128))
        else:
            draw.rectangle(swatch, fill=tuple(int(c) for c in palette[index]), outline=(96, 96, 96))
        draw.text((x + LEGEND_ROW, y + 1), label, fill=(0, 0, 0))
    return np.asarray(image)

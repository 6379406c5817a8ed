"""data=folder: your own data with its own classes (classes.yaml), images/ and labels/ per split; clear one-line
errors; and a retraining whose classifier follows the class list."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dilnas.data.common import DataError
from dilnas.data.factory import build_dataset
from dilnas.data.folder import FolderDataset
from dilnas.models.initialize import load_model
from dilnas.spec.options import DataConfig, DataName
from dilnas.utils.checkpoints import load_checkpoint
from tests.helpers import ENV, REPO, TINY
from tests.helpers.fake_data import random_image, write_png

CLASSES = "classes: [road, car, person]\nignore_index: 250\n"


def folder_tree(root: Path, classes: str = CLASSES, train: int = 4, val: int = 2) -> Path:
    (root).mkdir(parents=True, exist_ok=True)
    (root / "classes.yaml").write_text(classes)
    for split, count in (("train", train), ("val", val)):
        for index in range(count):
            write_png(root / "images" / split / f"f{index:03d}.png", random_image(index, 24, 32))
            label = (np.arange(24 * 32).reshape(24, 32) + index) % 3
            label[0, :4] = 250  # ignored
            write_png(root / "labels" / split / f"f{index:03d}.png", label.astype(np.uint8))
    return root


def test_classes_splits_and_the_ignore_value(tmp_path):
    root = folder_tree(tmp_path / "mine")
    dataset = FolderDataset(root, "train")
    assert dataset.class_names == ("road", "car", "person") and dataset.num_classes == 3
    assert len(dataset) == 4 and set(dataset.splits) == {"train", "val", "trainval"}
    assert len(FolderDataset(root, "trainval")) == 6
    image, label = dataset[0]
    assert image.shape == (3, 24, 32) and label.dtype == torch.int64
    assert set(label.unique().tolist()) == {0, 1, 2, 255} and (label[0, :4] == 255).all()


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        ("classes: []\n", "classes: expected a list of class names"),
        ("classes: [a, a]\n", "a name is listed twice"),
        ("classes: [a, b]\nignore_index: 1\n", "ignore_index: 1; expected a label value from 2 to 255"),
        ("classes: [a]\ncolours: x\n", "unknown key(s) colours; expected classes, ignore_index, palette"),
        ("classes: [a, b]\npalette: [[1, 2, 3]]\n", "palette: 1 entries; expected 2 colours"),
        ("classes: [a]\npalette: [[1, 2, 300]]\n", "palette[0]: [1, 2, 300]; expected 1 colours"),
        ("- a\n", "expected a mapping with 'classes:'"),
    ],
)
def test_bad_class_files_are_one_line(tmp_path, classes, message):
    root = folder_tree(tmp_path / "mine", classes)
    with pytest.raises(DataError) as caught:
        FolderDataset(root, "train")
    assert message in str(caught.value) and str(root / "classes.yaml") in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_labels_unknown_values_and_splits_are_named(tmp_path):
    root = folder_tree(tmp_path / "mine")
    (root / "labels" / "train" / "f001.png").unlink()
    with pytest.raises(DataError, match=r"f001.png: no label; expected .*labels/train/f001.png"):
        FolderDataset(root, "train")
    with pytest.raises(DataError, match=r"unknown folder split 'test'; expected one of train, val, trainval"):
        FolderDataset(root, "test")
    bad = folder_tree(tmp_path / "bad")
    write_png(bad / "labels" / "val" / "f000.png", np.full((24, 32), 7, dtype=np.uint8))
    with pytest.raises(
        DataError, match=r"f000.png: unexpected label values 7; expected class ids 0..2 or 250"
    ):
        FolderDataset(bad, "val")[0]
    with pytest.raises(DataError, match=r"classes.yaml: not found"):
        FolderDataset(tmp_path, "train")


def test_a_palette_gives_the_classes_their_colours(tmp_path):
    root = folder_tree(tmp_path / "mine", CLASSES + "palette: [[128, 64, 128], [0, 0, 142], [220, 20, 60]]\n")
    dataset = FolderDataset(root, "train")
    assert dataset.class_colours == ((128, 64, 128), (0, 0, 142), (220, 20, 60))
    assert FolderDataset(folder_tree(tmp_path / "plain"), "train").class_colours is None


def test_a_list_file_names_the_samples_of_a_split(tmp_path):
    root = folder_tree(tmp_path / "mine")
    (root / "test").mkdir()
    write_png(root / "test" / "a.png", random_image(9, 24, 32))
    # Relative and absolute paths, comments and blank lines; the list's order is kept.
    (root / "lists").mkdir()
    (root / "lists" / "picked.txt").write_text(
        "# two of the training images\n"
        f"images/train/f002.png labels/train/f002.png\n\n{root}/images/train/f000.png labels/train/f000.png\n"
    )
    (root / "lists" / "test.txt").write_text("test/a.png\n")  # no labels: prediction only
    (root / "notes.txt").write_text("not a split\n")  # only lists/ holds list files
    picked = FolderDataset(root, "picked")
    assert set(picked.splits) == {"train", "val", "trainval", "picked", "test"}
    assert [image.name for image, _ in picked.files] == ["f002.png", "f000.png"]
    assert torch.equal(picked[1][1], FolderDataset(root, "train")[0][1])
    assert (FolderDataset(root, "test")[0][1] == 255).all()
    for content, message in (
        ("images/train/f002.png labels/train/f002.png extra\n", "picked.txt:1: 3 fields"),
        (
            "images/train/nope.png labels/train/f002.png\n",
            "picked.txt:1: " + str(root / "images/train/nope.png"),
        ),
        (
            "# a comment\nimages/train/f002.png labels/train/f002.png\nimages/train/f000.png\n",
            "picked.txt:3: every line names a label, or none does (line 2 differs)",
        ),
        ("# nothing\n", "picked.txt: no samples"),
    ):
        (root / "lists" / "picked.txt").write_text(content)
        with pytest.raises(DataError) as caught:
            FolderDataset(root, "picked")
        assert message in str(caught.value) and "\n" not in str(caught.value)
    # A split given both ways is ambiguous: refused, naming both.
    (root / "lists" / "train.txt").write_text("images/train/f000.png labels/train/f000.png\n")
    with pytest.raises(DataError, match=r"split train is both images/train/ and lists/train.txt; keep one"):
        FolderDataset(root, "val")


def test_the_data_config_builds_it_with_the_usual_transforms(tmp_path):
    root = folder_tree(tmp_path / "mine")
    config = DataConfig(name=DataName.folder, root=str(root), scale_range=[24, 32], crop_size=[16, 16])
    train = build_dataset(config, "train", train=True)
    image, label = train[0]
    assert image.shape == (3, 16, 16) and label.shape == (16, 16) and train.num_classes == 3


@pytest.mark.slow
def test_a_retraining_on_a_folder_dataset_has_its_classes(tmp_path):
    root = folder_tree(tmp_path / "mine", CLASSES + "palette: [[1, 2, 3], [4, 5, 6], [7, 8, 9]]\n", train=8)
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "dilnas.retrain",
        f"arch={TINY}",
        "data=folder",
        f"data.root={root}",
        "data.scale_range=[24,32]",
        "data.crop_size=[16,16]",
        "data.num_workers=0",
        "trainer.max_steps=2",
        "trainer.batch_size=4",
        "device=cpu",
        f"hydra.run.dir={run_dir}",
    ]
    result = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    state = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert state["model"]["decoder.classifier.bias"].numel() == 3
    # The checkpoint names the classes and their colours: predict colours and lists them.
    model = load_model(None, run_dir / "checkpoints" / "best.pt")
    assert model.class_names == ("road", "car", "person")
    assert model.class_colours == ((1, 2, 3), (4, 5, 6), (7, 8, 9))

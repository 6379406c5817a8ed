"""A failed write costs nothing: a full disk while a checkpoint is saved (torch's zip writer raises a
RuntimeError) or any OSError of the file system becomes one line naming the file, the previous file stays as
it was and no temporary file is left."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from dilnas.utils.checkpoints import load_checkpoint, save_checkpoint
from dilnas.utils.errors import UserError
from dilnas.utils.files import atomic_write_text


def files_in(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_torch_zip_writer_failure_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pt", {"step": 1, "w": torch.ones(3)})
    before = files_in(tmp_path)

    def full_disk(state, handle):
        handle.write(b"PK partial zip")  # torch writes part of the archive, then its writer fails
        raise RuntimeError(
            "[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file data/0: file write failed"
        )

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(UserError) as info:
        save_checkpoint(path, {"step": 2, "w": torch.zeros(3)})
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: cannot write: the write failed (")
    assert "file write failed" in message and "is the disk full?" in message
    assert files_in(tmp_path) == before  # the old checkpoint, byte for byte, and no temporary file
    assert load_checkpoint(path)["step"] == 1


def test_another_runtime_error_of_torch_save_is_not_disguised(tmp_path, monkeypatch):
    monkeypatch.setattr(
        torch, "save", lambda state, handle: (_ for _ in ()).throw(RuntimeError("bad tensor"))
    )
    with pytest.raises(RuntimeError, match="bad tensor"):
        save_checkpoint(tmp_path / "last.pt", {"step": 2})
    assert list(tmp_path.iterdir()) == []


def test_an_os_error_while_writing_is_one_line(tmp_path):
    target = atomic_write_text(tmp_path / "config.yaml", "seed: 0\n")

    class FullDisk:
        def encode(self, encoding):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    from dilnas.utils import files

    with pytest.raises(UserError, match=r"config.yaml: cannot write: No space left on device$"):
        files.atomic_write(target, lambda handle: handle.write(FullDisk().encode("utf-8")))
    assert files_in(tmp_path) == {"config.yaml": b"seed: 0\n"}


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="needs root to mount a tmpfs")
def test_a_really_full_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        path = save_checkpoint(disk / "last.pt", {"step": 1})
        before = files_in(disk)
        with pytest.raises(UserError) as info:
            save_checkpoint(path, {"step": 2, "w": torch.zeros(1_000_000)})  # 4 MB on a 256 kB disk
        assert "\n" not in str(info.value) and str(info.value).startswith(f"{path}: cannot write: ")
        assert files_in(disk) == before
    finally:
        subprocess.run(["umount", str(disk)], check=False)

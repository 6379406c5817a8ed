"""What a measurement ran on: the CPU model, the torch version and the threads torch computes with (ground-truth
tables record it per row, because the same run can give another mIoU on another machine); and the machine's
memory, which memory checks compare with."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux; ``platform.processor()`` elsewhere, or "unknown")."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_record() -> dict[str, str | int]:
    """``cpu_model``, ``torch_version`` and ``threads`` (torch's intra-op threads) of this process."""
    return {"cpu_model": cpu_model(), "torch_version": torch.__version__, "threads": torch.get_num_threads()}


def memory_bytes() -> int:
    """The machine's physical memory in bytes."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")

"""Distributed helpers: one process per device under ``torchrun``; everything degrades to a single process."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from dilnas.spec.options import DeviceChoice
from dilnas.spec.settings import parse_choice
from dilnas.utils.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group that ``torchrun`` (or a submitit job with several tasks) describes in the
    environment (NCCL on CUDA, gloo on CPU)."""
    export_submitit_tasks()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return info


def export_submitit_tasks() -> None:
    """In a submitit job with several tasks (``hydra.launcher.tasks_per_node=N``), one DDP rank per task:
    export the ``torchrun`` variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) from the job."""
    if "WORLD_SIZE" in os.environ or not os.environ.get("SUBMITIT_EXECUTOR"):
        return
    import submitit  # installed: SUBMITIT_EXECUTOR is set only inside a submitit job

    if submitit.JobEnvironment().num_tasks > 1:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def resolve_device(choice: DeviceChoice) -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without it is a user error."""
    choice = parse_choice(DeviceChoice, choice, "device")
    if choice is DeviceChoice.auto:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice is DeviceChoice.cuda and not torch.cuda.is_available():
        raise UserError("device=cuda: CUDA is not available on this machine; use device=cpu or device=auto")
    return torch.device(choice.value)


def run_distributed(device_choice: DeviceChoice, body: Callable[[torch.device, DistInfo], T]) -> T:
    """Run ``body(device, info)`` in this process's place of a ``torchrun`` job (or alone), then leave the
    process group. On CUDA each process takes the GPU of its local rank."""
    device = resolve_device(device_choice)
    info = init_distributed(device.type)
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
    try:
        return body(device, info)
    finally:
        shutdown_distributed()


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics), as DDP does at the start of each forward:
    after a training step each rank's statistics have moved with its own batch."""
    if info.enabled:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)

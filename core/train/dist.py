"""torchrun / DDP plumbing: gloo on CPU, nccl on the GPU of ``--device cuda``; no-op alone."""

import os

import torch
import torch.distributed as dist


def setup() -> tuple[int, int]:
    """(rank, world size); initialises the process group when launched by torchrun."""
    if (
        "WORLD_SIZE" in os.environ
        and int(os.environ["WORLD_SIZE"]) > 1
        and not dist.is_initialized()
    ):
        on_gpu = torch.get_default_device().type == "cuda"
        dist.init_process_group("nccl" if on_gpu else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def wrap(module):
    if dist.is_initialized():
        device = torch.get_default_device()
        ids = [device] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)
    return module


def average_gradients(module):
    """All-reduce a module's gradients to their mean (for modules outside DDP)."""
    if dist.is_initialized():
        world = dist.get_world_size()
        for p in module.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= world


def barrier():
    if dist.is_initialized():
        dist.barrier()


def teardown():
    if dist.is_initialized():
        dist.destroy_process_group()

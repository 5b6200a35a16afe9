"""torch.distributed for `sentvae train` under torchrun: data-parallel (DDP) training.

    torchrun --nproc_per_node N -m sentvae train ...            (one machine)
    torchrun --nnodes M --node_rank R --rdzv-endpoint HOST:PORT --nproc_per_node N -m sentvae train ...

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; without them everything here is a no-op and
training runs in one process. Collectives are few and small: the per-step stop decision,
the figures at log time, and DDP's own gradient all-reduce.
"""

import os

import torch
import torch.distributed as dist

from sentvae.errors import SentvaeError


def launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> torch.device:
    """Join the process group torchrun prepared; -> this rank's device (cuda:LOCAL_RANK on GPUs)."""
    if not launched() or dist.is_initialized():
        return device
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        # every rank of the machine checks, so all of them stop, not only the ones past the end
        wanted, have = max(local + 1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))), torch.cuda.device_count()
        if wanted > have:
            raise SentvaeError(f"--nproc_per_node {wanted}: one process a GPU, and this machine has {have} "
                               "CUDA device(s); start at most that many processes, or train on the CPU "
                               "with --device cpu")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def any_rank(flag: bool, device) -> bool:
    """True on every rank if it is True on any: ranks must stop at the same step."""
    if rank_world()[1] == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def mean_over_ranks(values: dict, device) -> dict:
    """Average a dict of float figures over ranks (the same numbers on every rank)."""
    if rank_world()[1] == 1:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: float(v) / rank_world()[1] for k, v in zip(keys, t.tolist())}


def broadcast_floats(values: list, device) -> list:
    """Rank 0's numbers on every rank (decisions only rank 0 can take: it alone validates)."""
    if rank_world()[1] == 1:
        return values
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return t.tolist()


def broadcast_bytes(data: bytes | None) -> bytes:
    """Rank 0's bytes on every rank (e.g. the tokenizer it trained)."""
    if rank_world()[1] == 1:
        return data
    box = [data]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_module(module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank, in place."""
    if rank_world()[1] == 1:
        return
    for t in module.state_dict().values():
        dist.broadcast(t, src=0)


def barrier() -> None:
    if rank_world()[1] > 1:
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

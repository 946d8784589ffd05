"""Training on several processes at once: PyTorch's DistributedDataParallel (DDP), launched by ``torchrun``.

Data parallelism in one paragraph: every process (a *rank*) holds a full copy of the model and sees its own
share (*shard*) of each global batch; after the backward pass DDP averages the gradients of all ranks, so every
copy takes the same step and the copies stay identical. ``torchrun --nproc_per_node N script.py`` starts the N
processes and tells each, through environment variables, who it is (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``)
and where to meet the others (``MASTER_ADDR``, ``MASTER_PORT``). On GPUs the ranks talk through NCCL, one GPU per
rank; on CPUs through gloo.

The functions here are plain and safe to call in one process: there ``rank()`` is 0, ``world_size()`` is 1,
``all_reduce_sum`` returns its tensor unchanged and ``unwrap`` returns the model itself. :mod:`course_utils.training`
calls them, so ``fit`` works the same alone and under ``torchrun``.

Samplers: :func:`train_sampler` is PyTorch's ``DistributedSampler`` (shuffled with a seed, a new order each epoch
after ``set_epoch``); it pads the split by repeating up to ``world - 1`` images so that every rank gets the same
number of batches, which DDP needs while it trains. For evaluation :class:`ShardSampler` gives image ``i`` to rank
``i % world`` and pads nothing, so that summed metrics count every image exactly once (the ranks may then hold
one image more or less; evaluation needs no gradient averaging, so that is allowed).
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

__all__ = ["COLLECTIVE_TIMEOUT_SECONDS", "TORCHRUN_VARIABLES", "DistributedError", "ShardSampler", "all_reduce_sum",
           "check_on_every_rank", "check_same_on_every_rank", "distributed_loader", "fingerprint", "gather_to_main",
           "free_port", "is_distributed", "is_main_process", "launched_by_torchrun", "per_rank_batch_size", "rank",
           "start", "stop", "train_sampler", "unwrap", "world_size"]

#: What ``torchrun`` sets for every process it starts.
TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")

#: How long a rank waits for the others at a collective operation (an all-reduce, a barrier) before it gives up.
#: Ranks run in step, so a wait is short unless another rank died or hangs: then this many seconds end the job.
COLLECTIVE_TIMEOUT_SECONDS = 300


class DistributedError(RuntimeError):
    """A distributed run cannot start or go on (missing torchrun variables, a batch that does not divide, a rank
    that cannot read the data); the message is one line that says what to do."""


def is_distributed() -> bool:
    """Whether this process is one rank of a started process group (:func:`start`)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's number in the group, 0 to ``world_size() - 1``; 0 when not distributed."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """How many processes train together; 1 when not distributed."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Whether this process prints and writes files: rank 0, or the only process."""
    return rank() == 0


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Replace ``tensor`` by its sum over all ranks (in place) and return it; unchanged when not distributed."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a ``DistributedDataParallel`` wrapper (whose state dict keys start with ``module.``);
    any other model as it is. Save and load checkpoints through it, so they load in a one-process notebook."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def free_port() -> int:
    """A TCP port on this machine that nobody listens on now (the system picks it when we bind to port 0): a
    ``--master_port`` for a ``torchrun`` started on one machine, or ``MASTER_PORT`` for processes spawned here."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (it sets ``RANK`` and ``WORLD_SIZE``)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def _whole_number(name: str) -> int:
    value = os.environ[name]
    if not value.strip().isdigit():
        raise DistributedError(f"The environment variable {name}={value!r} is not a whole number: start the script "
                               "with torchrun, which sets it.")
    return int(value)


def start(backend: str | None = None, *, timeout_seconds: float = COLLECTIVE_TIMEOUT_SECONDS) -> torch.device:
    """Join the process group ``torchrun`` set up; return this rank's device.

    ``backend`` defaults to ``"nccl"`` where CUDA has a GPU for this process's ``LOCAL_RANK`` (each rank then
    uses GPU ``LOCAL_RANK``), else ``"gloo"`` on the CPU. A collective operation that waits longer than
    ``timeout_seconds`` (another rank died) raises instead of hanging. A missing ``torchrun`` variable
    (``MASTER_ADDR``, ...) raises :class:`DistributedError` naming it.
    """
    missing = [name for name in TORCHRUN_VARIABLES if not os.environ.get(name, "").strip()]
    if missing:
        raise DistributedError(f"The environment variable(s) {', '.join(missing)} are not set: start the script "
                               "with `torchrun --nproc_per_node N -m course_tools.train ...`, which sets them.")
    local_rank, world = _whole_number("LOCAL_RANK"), _whole_number("WORLD_SIZE")
    _whole_number("RANK")
    if world < 1:
        raise DistributedError(f"WORLD_SIZE={world}: it must be at least 1.")
    on_gpu = torch.cuda.is_available() and local_rank < torch.cuda.device_count()
    backend = backend or ("nccl" if on_gpu else "gloo")
    device = torch.device("cuda", local_rank) if on_gpu and backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not is_distributed():
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_seconds),
                                **({"device_id": device} if device.type == "cuda" else {}))
    return device


def stop() -> None:
    """Leave the process group (at the end of a run); nothing when not distributed."""
    if is_distributed():
        dist.destroy_process_group()


def per_rank_batch_size(global_batch: int, world: int) -> int:
    """Images per rank and step, so that the ranks together see ``global_batch`` images per step.

    Keeping the global batch (and the learning rate) as in one process keeps the recipe the same. A global
    batch that ``world`` does not divide raises :class:`DistributedError` with the nearest batch sizes that work.
    """
    if world < 1 or global_batch < 1:
        raise DistributedError(f"The batch size ({global_batch}) and the number of processes ({world}) must be "
                               "at least 1.")
    if global_batch % world:
        lower = max(world, global_batch - global_batch % world)
        raise DistributedError(f"The batch size {global_batch} does not divide among {world} processes: choose a "
                               f"multiple of {world} (for example --batch-size {lower} or {lower + world}).")
    return global_batch // world


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, rank + 2 * world, ...`` of a data set, in order, without padding.

    Every index goes to exactly one rank, so metrics summed over the ranks count each image once. Use it for
    validation and test splits; training needs :func:`train_sampler` (equal shard sizes).
    """

    def __init__(self, size: int, *, num_replicas: int | None = None, rank_of_this: int | None = None) -> None:
        self.size = size
        self.num_replicas = world_size() if num_replicas is None else num_replicas
        self.rank = rank() if rank_of_this is None else rank_of_this

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.num_replicas))


def train_sampler(size: int, *, seed: int, num_replicas: int | None = None,
                  rank_of_this: int | None = None) -> DistributedSampler:
    """PyTorch's ``DistributedSampler`` for a training split of ``size`` images: shuffled with ``seed`` (call
    ``set_epoch`` each epoch; :func:`course_utils.training.fit` does), padded to equal shards.

    With one process it shuffles the same way, so a one-process run with the same global batch and seed sees
    the same images in each global step as the ranks together.
    """
    return DistributedSampler(range(size), num_replicas=world_size() if num_replicas is None else num_replicas,
                              rank=rank() if rank_of_this is None else rank_of_this, shuffle=True, seed=seed,
                              drop_last=False)


def distributed_loader(dataset: Dataset, *, global_batch_size: int, train: bool, seed: int = 0,
                       num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """A DataLoader of this rank's shard of ``dataset``, ``global_batch_size / world_size()`` images per batch.

    ``train=True``: :func:`train_sampler` (shuffled with ``seed``, padded), and the last incomplete batch of each
    epoch is left out when the shard holds at least one full batch: a per-rank batch is small (the global batch
    divided by the processes), and a BatchNorm layer in training mode cannot normalise a batch of one image. The
    images left out change every epoch. ``train=False``: :class:`ShardSampler` (in order, each image on exactly
    one rank, every batch kept).
    """
    batch_size = per_rank_batch_size(global_batch_size, world_size())
    sampler: Sampler[int] = train_sampler(len(dataset), seed=seed) if train else ShardSampler(len(dataset))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      pin_memory=pin_memory, persistent_workers=num_workers > 0,
                      drop_last=train and len(sampler) >= batch_size)


def check_on_every_rank(problem: str | None) -> None:
    """Every rank says whether it can go on; when one cannot, every rank raises :class:`DistributedError`.

    ``problem`` is this rank's one-line reason (None: all is well). Without this, a rank that stops alone
    (say, it cannot read the data folder) leaves the others waiting at their next collective until the timeout.
    """
    problems: list[Any] = [problem]
    if is_distributed():
        problems = [None] * world_size()
        dist.all_gather_object(problems, problem)
    for number, reason in enumerate(problems):
        if reason is not None:
            where = f"rank {number}: " if world_size() > 1 else ""
            raise DistributedError(f"{where}{reason}")


def fingerprint(items: Sequence[Any]) -> str:
    """A SHA-256 of ``repr`` of each item, to check that every rank built the same split."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(repr(item).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def check_same_on_every_rank(value: str, what: str) -> None:
    """Raise :class:`DistributedError` on every rank when the ranks hold different ``value`` s (for example
    the :func:`fingerprint` of their splits); ``what`` names the thing in the message."""
    if not is_distributed():
        return
    values: list[Any] = [None] * world_size()
    dist.all_gather_object(values, value)
    differing = [number for number, other in enumerate(values) if other != values[0]]
    if differing:
        raise DistributedError(f"{what} differs between rank 0 and rank(s) {', '.join(map(str, differing))}: every "
                               "process must read the same files (a folder shared by every machine, same seed).")


def gather_to_main(value: Any) -> list[Any] | None:
    """Every rank's ``value``, in rank order, on rank 0 (None on the other ranks); ``[value]`` in one process."""
    if not is_distributed():
        return [value]
    values: list[Any] | None = [None] * world_size() if is_main_process() else None
    dist.gather_object(value, values, dst=0)
    return values

"""Training in more than one process: DistributedDataParallel, launched by torchrun.

``torchrun --nproc-per-node N -m convcalc train SPEC ...`` starts N copies of ``convcalc train``
with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in their
environment; ``convcalc train --nproc N`` runs torchrun's elastic agent in its own process
(``launch``) for one machine. Each copy joins the process group (``init``: nccl when it trains on
CUDA, gloo otherwise) and ``convcalc.train.train`` sees the group and divides the work:

* ``--batch-size`` is the global batch, all processes together: every process draws the same
  permutation of the epoch (seeded by seed and epoch, as in one process) and takes its share of
  each batch (``shard``: positions rank, rank + N, ...), and DDP averages the gradients, so a
  step is the step one process would take on the whole batch (up to the order of float sums
  and BatchNorm's statistics, which stay per process). The position in a run (epoch, batch) is
  therefore the same at any number of processes, and a checkpoint resumes exactly, mid-epoch
  too, at the next global batch, with N processes or one.
* Rank 0 alone writes the checkpoint and reports; every process evaluates its share of the test
  set and the sums are added up.
* Stopping (Ctrl-C, SIGTERM from torchrun's agent) is agreed on: each batch's all-reduce carries
  every process's stop flag, so all stop after the same batch and rank 0 saves.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import uuid
from dataclasses import dataclass

import torch

from convcalc.errors import ConvcalcError


class DistributedError(ConvcalcError):
    """A multi-process run that cannot start (e.g. --nproc with torchrun's variables set)."""


@dataclass(frozen=True)
class World:
    """This process's place among the processes of a run (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # the rank on this machine: the CUDA device index


ONE = World()  # a run in one process


def launched_by_torchrun() -> bool:
    """True in a process that torchrun (or ``launch``) started."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ


def init(device: str) -> World:
    """Join the process group torchrun's environment describes (nccl when ``device`` means CUDA
    and CUDA is there, else gloo), or the single-process ``World`` when not launched by torchrun."""
    import torch.distributed as dist

    if not launched_by_torchrun():
        return ONE
    if not dist.is_initialized():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = device in ("auto", "cuda") and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local_rank)  # before the group: nccl binds each rank to its device
        dist.init_process_group("nccl" if cuda else "gloo")
    return current()


def current() -> World:
    """The ``World`` of the initialised process group, else one process."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return ONE
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def finish() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(total: int, world: World) -> tuple[torch.Tensor, float]:
    """This process's positions in a global batch of ``total`` (``rank, rank + N, ...``) and the
    factor its mean loss is scaled by, ``len(share) * N / total``, so that DDP's average of the N
    gradients is the gradient of the whole batch's mean loss even when ``total`` is not a multiple
    of N. A process left with nothing (``total < N``) takes position 0 with factor 0: it still
    joins DDP's all-reduce."""
    if world.rank >= total:
        return torch.zeros(1, dtype=torch.long), 0.0
    positions = torch.arange(world.rank, total, world.size)
    return positions, len(positions) * world.size / total


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """The sums over all processes of ``values`` (one all-reduce; gloo on CPU, nccl on CUDA)."""
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(nproc: int, args: list[str]) -> int:
    """Run ``python -m convcalc ARGS`` in ``nproc`` processes on this machine through torchrun's
    elastic agent (in this process; rendezvous on 127.0.0.1 at a free port); the exit code: 0 when
    every process succeeded, else 1 (the processes print their own errors)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if launched_by_torchrun():
        raise DistributedError(
            "--nproc inside a torchrun-launched process; drop --nproc (torchrun's --nproc-per-node "
            "already sets the number of processes)"
        )
    # torchrun's own rule for N processes on one machine: one thread each unless told otherwise
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint=f"127.0.0.1:{free_port()}",
        max_restarts=0,  # a failed run is reported, not retried: a user error fails every time
        monitor_interval=0.1,
        local_addr="127.0.0.1",
    )
    # the agent installs SIGINT/SIGTERM handlers that raise its SignalException, and leaves them
    # in place when it returns: a Ctrl-C after the run would be a traceback. Put ours back.
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        elastic_launch(config, sys.executable)("-m", "convcalc", *args)
    except (ChildFailedError, SignalException):  # SignalException: Ctrl-C, forwarded to the processes
        return 1
    finally:
        for number, handler in handlers.items():
            if handler is not None:  # None: set outside Python, which signal.signal cannot restore
                signal.signal(number, handler)
    return 0

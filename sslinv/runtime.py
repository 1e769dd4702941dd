"""The bottom layer of every command: device, precision, decoding workers and loaders.

Nothing here imports from a higher layer of sslinv. Images are decoded in DataLoader
workers (one thread each); the model's device and the autocast precision are chosen
here once, so every command treats ``--device``, ``--precision`` and ``--workers`` the
same way.
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Dataset

from sslinv.distributed import World
from sslinv.errors import DeviceError, UsageError

PRECISIONS = ("fp32", "bf16", "fp16")
START_METHODS = ("fork", "spawn", "forkserver")


def resolve_device(requested: str | None, world: World) -> torch.device:
    """``None``/``auto``: cuda when present, else cpu. Under torchrun: cuda:LOCAL_RANK."""
    if requested in (None, "", "auto"):
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise UsageError(f"Unknown device {requested!r}. Use cpu, cuda or cuda:N.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {requested} asked for CUDA, but no CUDA GPU is available to this "
                "PyTorch build. Use --device cpu, or install a CUDA build of torch."
            )
        if device.index is None:
            device = torch.device("cuda", world.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise UsageError(f"Unsupported device {requested!r}. Use cpu, cuda or cuda:N.")
    return device


def autocast_dtype(precision: str) -> torch.dtype | None:
    if precision not in PRECISIONS:
        raise UsageError(f"Unknown precision {precision!r}. Use one of: {', '.join(PRECISIONS)}.")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def default_workers(device: torch.device) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if device.type == "cuda":
        return max(1, min(8, cpus - 1))
    # On the CPU the model needs the cores: one decoding worker overlaps I/O and PIL work.
    return 1 if cpus > 1 else 0


def init_worker(_: int) -> None:
    # One thread per decoding worker: OpenCV (blur, deform) and torch would otherwise
    # each start a thread per core and fight the model for the CPUs.
    torch.set_num_threads(1)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - cv2 comes with albumentations
        pass


def opencv_fork_safe() -> None:
    """Stop OpenCV's thread pool in this process before workers are forked from it.

    A pool started by earlier OpenCV calls here (painting the demo tasks, a transform
    run with ``--workers 0``) does not survive ``fork``: the child inherits its state
    without its threads, and hangs in its first OpenCV call (``init_worker``). Pure
    OpenCV work in this process runs single-threaded afterwards; the workers do it.
    """
    import sys

    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(1)


def start_method() -> str | None:
    """The start method of loader workers: ``SSLINV_START_METHOD``, else Python's default.

    Every dataset handed to a loader pickles, so ``spawn`` and ``forkserver`` (Python
    3.14's default on Linux) work as well as ``fork``.
    """
    from sslinv import paths

    method = paths.start_method()
    if method is not None and method not in START_METHODS:
        raise UsageError(
            f"{paths.ENV_START_METHOD}={method!r} is not a start method. Use one of: "
            f"{', '.join(START_METHODS)}, or unset it for Python's default."
        )
    return method


def make_loader(dataset: Dataset, workers: int, batch_size: int | None, collate=None) -> DataLoader:
    """An ordered loader over ``dataset``: ``workers`` one-thread decoding processes."""
    context = None
    if workers > 0:
        opencv_fork_safe()
        context = _worker_context(dataset)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available(),
        worker_init_fn=init_worker if workers > 0 else None,
        prefetch_factor=4 if workers > 0 else None,
        multiprocessing_context=context,
    )


def _worker_context(dataset: Dataset):
    """The multiprocessing context of loader workers (None: Python's default).

    Under ``forkserver`` every worker forks from one server process; preloading the
    dataset's module there (torch and sslinv come with it) saves each worker of each
    loader importing them afresh.
    """
    import multiprocessing

    method = start_method()
    context = multiprocessing.get_context(method)
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload([type(dataset).__module__])
    return context if method is not None else None

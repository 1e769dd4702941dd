"""The bottom layer of every command: device, precision, decoding workers and loaders.

Nothing here imports from a higher layer of sslinv. Images are decoded in DataLoader
workers (one thread each); the model's device and the autocast precision are chosen
here once, so every command treats ``--device``, ``--precision`` and ``--workers`` the
same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from sslinv.distributed import World
from sslinv.errors import DeviceError, UsageError

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
START_METHODS = ("fork", "spawn", "forkserver")
#: Finished batches each loader worker keeps in flight (in /dev/shm).
PREFETCH = 4
#: The default ``--batch-size`` of the evaluations per device kind: a GPU needs large
#: batches to be busy (ResNet-50 at 224 px and batch 256 takes a few GiB in inference).
#: The batch size is in no cache key: it changes no number beyond float32 rounding.
DEFAULT_BATCH_SIZE = {"cpu": 64, "cuda": 256}


def resolve_device(requested: str | None, world: World) -> torch.device:
    """``None``/``auto``: cuda when present, else cpu. Under torchrun: cuda:LOCAL_RANK.

    Every rank of a node gets its own GPU, or a ``DeviceError`` (see ``device_for_rank``).
    """
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
        device = device_for_rank(device, world, torch.cuda.device_count())
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise UsageError(f"Unsupported device {requested!r}. Use cpu, cuda or cuda:N.")
    return device


def device_for_rank(device: torch.device, world: World, visible: int) -> torch.device:
    """The GPU of this rank among ``visible`` ones: ``cuda`` means cuda:LOCAL_RANK.

    Two ranks of a node on one GPU fail inside NCCL ("Duplicate GPU detected"), so a
    named GPU with several processes per node, or more processes than GPUs, is a
    ``DeviceError`` naming the fix.
    """
    if device.index is not None:
        if world.is_distributed and world.local_world_size > 1:
            raise DeviceError(
                f"--device {device} names one GPU, but {world.local_world_size} processes run on this node: "
                "pass --device cuda and each process takes the GPU of its local rank "
                "(choose the GPUs with CUDA_VISIBLE_DEVICES)."
            )
        if device.index >= visible:
            raise DeviceError(f"--device {device}: only {visible} GPU(s) are visible (cuda:0 to cuda:{visible - 1}).")
        return device
    if world.is_distributed and max(world.local_world_size, world.local_rank + 1) > visible:
        raise DeviceError(
            f"{max(world.local_world_size, world.local_rank + 1)} processes run on this node but only {visible} "
            f"GPU(s) are visible: pass --nproc-per-node {visible} or less (or make more GPUs visible "
            "with CUDA_VISIBLE_DEVICES)."
        )
    return torch.device("cuda", world.local_rank if world.is_distributed else 0)


def autocast_dtype(precision: str) -> torch.dtype | None:
    if precision not in PRECISIONS:
        raise UsageError(f"Unknown precision {precision!r}. Use one of: {', '.join(PRECISIONS)}.")
    return {"fp32": None, "tf32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def set_precision(precision: str) -> None:
    """Float32 matmuls and convolutions in true fp32 (cuDNN's default is TF32 for
    convolutions), except with ``tf32``, for the whole process (pretraining: every op of
    a step). Under bf16/fp16 autocast the ops autocast keeps in float32 are true fp32
    too. No effect on the CPU. The evaluations keep fp32 here and enable TF32 around the
    model's forward pass only (``tf32_scope``)."""
    autocast_dtype(precision)  # a known name
    _set_tf32(precision == "tf32")


def _tf32_enabled() -> bool:
    if not hasattr(torch.backends.cudnn, "conv"):
        return bool(torch.backends.cuda.matmul.allow_tf32)
    return torch.backends.cuda.matmul.fp32_precision == "tf32"


def _set_tf32(on: bool) -> None:
    if not hasattr(torch.backends.cudnn, "conv"):  # torch < 2.9: only the legacy flags exist
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on
        return
    mode = "tf32" if on else "ieee"
    # The per-backend API of torch >= 2.9; never mixed with the legacy allow_tf32 flags
    # (torch raises when both are used).
    torch.backends.cuda.matmul.fp32_precision = mode
    torch.backends.cudnn.conv.fp32_precision = mode
    torch.backends.cudnn.rnn.fp32_precision = mode


@contextlib.contextmanager
def tf32_scope(precision: str) -> Iterator[None]:
    """TF32 for float32 matmuls and convolutions inside the block when ``precision`` is
    ``tf32`` (the model's forward pass), the previous setting after it; nothing
    otherwise. So with ``--precision tf32`` only the model runs in TF32: the device
    renderer, whitening and the probes stay in true fp32, as on the CPU."""
    if precision != "tf32":
        yield
        return
    before = _tf32_enabled()
    _set_tf32(True)
    try:
        yield
    finally:
        _set_tf32(before)


def compute_mode(device: torch.device, precision: str) -> dict[str, str]:
    """What cached statistics, features and results depend on besides their inputs: the
    device kind and the precision, so CPU and GPU numbers never share a cache key. With
    tf32, where TF32 applies (``tf32_scope``: the model's forward pass only, since this
    key part exists; before, the whole process)."""
    mode = {"device": torch.device(device).type, "precision": precision}
    if precision == "tf32":
        mode["tf32"] = "forward-only"
    return mode


def default_batch_size(device: torch.device) -> int:
    """Images per forward pass when ``--batch-size`` is not given: 256 on a GPU, 64 on the CPU."""
    return DEFAULT_BATCH_SIZE.get(torch.device(device).type, DEFAULT_BATCH_SIZE["cpu"])


def default_workers(device: torch.device) -> int:
    """Decoding worker processes for one rank: the CPUs this process may really use
    (affinity and cgroup quota) divided among the ranks of the node (see
    ``sslinv.cpus``), at most 8; none on the CPU, where the model needs the cores and
    the images are loaded by threads taking turns with it (``ThreadedLoader``)."""
    from sslinv.cpus import loader_workers

    return min(8, loader_workers(torch.device(device).type))


def init_worker(_: int) -> None:
    # One thread per decoding worker: OpenCV (blur, deform) and torch would otherwise
    # each start a thread per core and fight the model for the CPUs. OpenCV is not
    # imported here (about 0.1 s per worker, for nothing in most families): a copy
    # inherited from the parent is told directly, one imported later reads the variable.
    import os
    import sys

    torch.set_num_threads(1)
    os.environ["OPENCV_FOR_THREADS_NUM"] = "1"
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(1)


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


def make_loader(dataset: Dataset, workers: int, batch_size: int | None, collate=None, *,
                device: torch.device | None = None, batch_bytes: int | None = None) -> DataLoader | ThreadedLoader:
    """An ordered loader over ``dataset``: ``workers`` one-thread decoding processes;
    with none and a model on the CPU, threads of this process (``ThreadedLoader``).

    Batches are pinned when the model runs on a GPU (``device``). With ``batch_bytes``
    (one batch's size), a /dev/shm too small for the batches in flight is a
    ``UsageError`` naming ``--workers`` and the container's ``--ipc=host``/``--shm-size``
    instead of a bus error later.
    """
    if workers == 0 and device is not None and torch.device(device).type == "cpu":
        from sslinv.cpus import cpus_per_rank

        return ThreadedLoader(dataset, batch_size, collate, threads=cpus_per_rank())
    context = None
    if workers > 0:
        if batch_bytes is not None:
            from sslinv.cpus import check_shm

            check_shm(workers, PREFETCH, batch_bytes)
        opencv_fork_safe()
        context = _worker_context(dataset)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=device is not None and torch.device(device).type == "cuda",
        worker_init_fn=init_worker if workers > 0 else None,
        prefetch_factor=PREFETCH if workers > 0 else None,
        multiprocessing_context=context,
    )


class ThreadedLoader:
    """The batches of ``dataset``, in order, made in this process by ``threads`` threads:
    ``threads`` batches at a time, one per thread, all finished before any is handed out.

    For a model on the CPU (``make_loader`` with no workers): loading (decoding,
    rendering) and the forward passes then take turns, each on every core. A worker
    process running beside the model instead takes a core from one of its threads, and
    the others wait for that one at the end of each operation: a worker's CPU second
    costs the model about a wall second. Pillow releases the GIL while it decodes and
    resamples, so the threads share the cores.
    """

    pin_memory = False  # the model is on the CPU: nothing to copy to a device

    def __init__(self, dataset: Dataset, batch_size: int | None, collate=None, *, threads: int):
        from torch.utils.data import default_collate
        from torch.utils.data._utils.collate import default_convert

        self.dataset, self.batch_size, self.threads = dataset, batch_size, max(1, threads)
        self.collate = collate or (default_convert if batch_size is None else default_collate)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n if self.batch_size is None else (n + self.batch_size - 1) // self.batch_size

    def _batch(self, b: int):
        if self.batch_size is None:
            return self.collate(self.dataset[b])
        stop = min(len(self.dataset), (b + 1) * self.batch_size)
        return self.collate([self.dataset[i] for i in range(b * self.batch_size, stop)])

    def __iter__(self):
        from concurrent.futures import ThreadPoolExecutor

        n = len(self)
        if self.threads == 1 or n <= 1:
            yield from (self._batch(b) for b in range(n))
            return
        with ThreadPoolExecutor(self.threads, thread_name_prefix="sslinv-load") as pool:
            for start in range(0, n, self.threads):
                futures = [pool.submit(self._batch, b) for b in range(start, min(n, start + self.threads))]
                done = [f.result() for f in futures]  # the whole turn, before the model's
                yield from done


def image_batch_bytes(images: int, size: int) -> int:
    """Bytes of a batch of ``images`` uint8 RGB images of ``size`` x ``size``."""
    return images * 3 * size * size


#: Modules loader workers should start with, besides their dataset's (``preload_for_workers``).
_WORKER_IMPORTS: set[str] = set()


def preload_for_workers(modules: Iterable[str]) -> None:
    """Have loader workers start with ``modules`` imported (a family's torchvision, say:
    a second per process otherwise). They are imported here now, so that workers forked
    from this process share them, and named to the ``forkserver`` server, which imports
    them once when it starts with the first loader: call this before that one."""
    import importlib

    for name in modules:
        importlib.import_module(name)
        _WORKER_IMPORTS.add(name)


def _worker_context(dataset: Dataset):
    """The multiprocessing context of loader workers (None: Python's default).

    Under ``forkserver`` every worker forks from one server process; preloading the
    dataset's module there (torch and sslinv come with it), and what
    ``preload_for_workers`` named, saves each worker of each loader importing them afresh.
    """
    import multiprocessing

    method = start_method()
    context = multiprocessing.get_context(method)
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload([type(dataset).__module__, *sorted(_WORKER_IMPORTS)])
    return context if method is not None else None

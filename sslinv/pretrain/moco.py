"""MoCo v2: query and key encoders with an MLP head, a queue of negatives, shuffled BN.

The method is He et al., "Momentum Contrast for Unsupervised Visual Representation
Learning" (CVPR 2020) with the v2 changes of Chen et al. (arXiv 2003.04297): a 2-layer
MLP head, temperature 0.2, stronger augmentation, cosine schedule. Facts (not code) from
the reference implementation, facebookresearch/moco ``moco/builder.py``:

- the encoders are ResNets whose ``fc`` becomes ``Sequential(Linear(d, d), ReLU,
  Linear(d, dim))`` (state-dict keys ``fc.0.*``, ``fc.2.*``); the key encoder starts as a
  copy of the query encoder and follows it by momentum, ``k = m k + (1 - m) q``, updated
  before the keys of each step are computed;
- ``queue`` is ``dim x K`` (unit columns, random at start), ``queue_ptr`` a 1-element long
  tensor; after each step the keys of *all* processes replace the oldest columns;
- logits ``[q . k+, q . queue] / T``, label 0 (InfoNCE as a (K+1)-way classification);
- shuffled BN: the key batch is gathered from all processes, permuted, split back,
  encoded, then gathered and un-permuted, so a query and its key never share BN
  statistics (otherwise the model can "cheat" through the batch statistics).

What sslinv does differently (numerics identical in intent):

- The shuffle works for any number of processes, one included. On one process the
  batch cannot be spread over devices, so BN is *split*: ``SplitBatchNorm2d`` normalises
  ``bn_splits`` interleaved sub-batches separately (the single-GPU emulation of MoCo's
  CIFAR-10 demo notebook; idea only), and the key batch is permuted before the key
  encoder, so query and key sub-batches hold different images.
- Images arrive as uint8 and are normalised inside the module, so the shuffle gathers
  uint8 images (a quarter of the traffic of float ones).
- The queue takes any global batch (wrap-around indices; the reference asserts that
  the batch divides K). The un-shuffle gather also feeds the queue (one gather fewer).
- The permutation comes from a dedicated CPU ``torch.Generator``, identical on every
  rank (no broadcast needed), whose state is checkpointed.
- Logits, loss and queue are computed in float32 even under autocast.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from sslinv.distributed import World
from sslinv.errors import UsageError
from sslinv.models.preprocess import IMAGENET_MEAN, IMAGENET_STD
from sslinv.models.resnet import ARCHS

__all__ = ["MoCo", "SplitBatchNorm2d", "convert_split_bn", "default_bn_splits", "head_dim"]


class SplitBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that, in training, normalises ``num_splits`` sub-batches separately.

    Sample ``n`` belongs to sub-batch ``n % num_splits``. Running statistics are the mean
    over the sub-batches' updates, and the state-dict keys are BatchNorm2d's, so weights
    load into a plain ResNet. In eval mode it is BatchNorm2d.
    """

    def __init__(self, num_features: int, num_splits: int, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.num_splits = int(num_splits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.num_splits
        if not self.training or g == 1:
            return super().forward(x)
        n, c, h, w = x.shape
        if n % g:
            raise UsageError(
                f"Split batch norm needs a per-process batch divisible by {g} sub-batches, got {n}. "
                "Change --batch-size or --bn-splits."
            )
        mean = self.running_mean.repeat(g)
        var = self.running_var.repeat(g)
        # (n, c, h, w) -> (n/g, g*c, h, w): channel j*c + i of row r is channel i of sample
        # r*g + j, so one batch_norm call normalises every sub-batch on its own.
        out = F.batch_norm(
            x.reshape(n // g, g * c, h, w), mean, var, self.weight.repeat(g), self.bias.repeat(g),
            True, self.momentum if self.momentum is not None else 0.1, self.eps,
        )
        with torch.no_grad():
            self.running_mean.copy_(mean.view(g, c).mean(0))
            self.running_var.copy_(var.view(g, c).mean(0))
            self.num_batches_tracked.add_(1)
        return out.view(n, c, h, w)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_splits={self.num_splits}"


def convert_split_bn(module: nn.Module, num_splits: int) -> nn.Module:
    """Replace every BatchNorm2d in ``module`` by a SplitBatchNorm2d (same parameters)."""
    if num_splits <= 1:
        return module
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, SplitBatchNorm2d):
            new = SplitBatchNorm2d(
                child.num_features, num_splits, eps=child.eps, momentum=child.momentum,
                affine=child.affine, track_running_stats=child.track_running_stats,
            )
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            convert_split_bn(child, num_splits)
    return module


def default_bn_splits(per_process_batch: int, world_size: int) -> int:
    """BN sub-batches per process when not given: 1 when several processes shuffle keys
    across devices; on one process, the reference's 32 images per BN group (8 GPUs x 32 at
    batch 256), at least 2 groups, rounded down to a divisor of the batch."""
    if world_size > 1:
        return 1
    target = max(2, per_process_batch // 32)
    for g in range(min(target, per_process_batch), 0, -1):
        if per_process_batch % g == 0:
            return g
    return 1


def head_dim(arch: str) -> int:
    """The protocol's MLP output dimension: 128, and 384 for ResNet-50w3 (protocols.md 6)."""
    return 384 if arch == "resnet50w3" else 128


def _all_gather(x: torch.Tensor, world: World) -> torch.Tensor:
    import torch.distributed as dist

    parts = [torch.empty_like(x) for _ in range(world.world_size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


class MoCo(nn.Module):
    """MoCo v2 on a registered ResNet ``arch``; ``forward(im_q, im_k)`` -> logits (N x (1+K)).

    ``im_q``/``im_k`` are uint8 image batches (N, 3, H, W), this process's share of the
    global batch. ``world`` is the torchrun world (the key shuffle and the queue span it);
    ``shuffle_seed`` seeds the permutation generator (the same on every rank).
    """

    def __init__(
        self,
        arch: str,
        dim: int = 128,
        K: int = 65536,
        m: float = 0.999,
        T: float = 0.2,
        bn_splits: int = 1,
        world: World | None = None,
        shuffle_seed: int = 0,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.arch, self.dim, self.K, self.m, self.T = arch, dim, K, m, T
        self.bn_splits = bn_splits
        self.world = world or World()
        self.channels_last = channels_last

        encoder = ARCHS.get(arch)()
        d = encoder.fc.in_features
        encoder.fc = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, dim))
        self.encoder_q = convert_split_bn(encoder, bn_splits)
        self.encoder_k = copy.deepcopy(self.encoder_q)
        for p in self.encoder_k.parameters():
            p.requires_grad_(False)

        self.register_buffer("queue", F.normalize(torch.randn(dim, K), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255, persistent=False)
        self.shuffle_generator = torch.Generator().manual_seed(int(shuffle_seed))

    # ---------------------------------------------------------------- pieces

    def _prep(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() - self.mean) / self.std  # ToTensor + Normalize in one step
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    @torch.no_grad()
    def momentum_update(self) -> None:
        """``k = m k + (1 - m) q`` for every parameter, in a few fused kernels."""
        q = [p.detach() for p in self.encoder_q.parameters()]
        k = list(self.encoder_k.parameters())
        torch._foreach_mul_(k, self.m)
        torch._foreach_add_(k, q, alpha=1.0 - self.m)

    @torch.no_grad()
    def keys(self, im_k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys of this process's images (input order) and of the whole global batch
        (global order), computed with the batch shuffled across processes/sub-batches."""
        world = self.world
        x_all = _all_gather(im_k, world) if world.is_distributed else im_k
        total = x_all.shape[0]
        perm = torch.randperm(total, generator=self.shuffle_generator).to(im_k.device, non_blocking=True)
        mine = perm.view(world.world_size, -1)[world.rank] if world.is_distributed else perm
        k = F.normalize(self.encoder_k(self._prep(x_all[mine])).float(), dim=1)
        k_shuffled = _all_gather(k, world) if world.is_distributed else k
        k_all = torch.empty_like(k_shuffled)
        k_all[perm] = k_shuffled  # undo the shuffle: row perm[j] is global sample perm[j]
        k_mine = k_all.view(world.world_size, -1, k_all.shape[1])[world.rank] if world.is_distributed else k_all
        return k_mine, k_all

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Replace the oldest ``len(keys)`` queue columns by ``keys`` (all processes' keys)."""
        n = keys.shape[0]
        ptr = int(self.queue_ptr)
        idx = (ptr + torch.arange(n, device=keys.device)) % self.K
        self.queue[:, idx] = keys.T.to(self.queue.dtype)
        self.queue_ptr[0] = (ptr + n) % self.K

    # ---------------------------------------------------------------- forward

    def forward(self, im_q: torch.Tensor, im_k: torch.Tensor) -> torch.Tensor:
        q = self.encoder_q(self._prep(im_q))
        self.momentum_update()
        k, k_all = self.keys(im_k)
        with torch.autocast(device_type=q.device.type, enabled=False):
            q = F.normalize(q.float(), dim=1)
            l_pos = (q * k).sum(dim=1, keepdim=True)
            # A copy of the queue: it is updated in place below, after autograd saved it.
            l_neg = q @ self.queue.clone()
            logits = torch.cat([l_pos, l_neg], dim=1) / self.T
        self.enqueue(k_all)
        return logits

    # ---------------------------------------------------------------- export

    def moco_state_dict(self) -> dict[str, torch.Tensor]:
        """The MoCo layout: ``module.encoder_q.*``, ``module.encoder_k.*``, ``module.queue``,
        ``module.queue_ptr`` (CPU tensors)."""
        out = {f"module.{k}": v.detach().cpu() for k, v in self.state_dict().items()}
        return out

    def load_moco_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        prefix = "module."
        self.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)

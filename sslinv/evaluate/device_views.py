"""Synthetic views made on the model's device (``sslinv synthetic --render device``).

The PIL path (``features.CleanImages``, ``features.ViewChunks``) renders every view in
the DataLoader workers. Here the workers only decode: ``DecodedImages`` yields each
image whole, as a uint8 (3, H, W) tensor. The main process moves it to the device
(pinned on a GPU, ``non_blocking``) and renders there with
``sslinv.transforms.device``: the clean view (``clean_view``) and a family's k views
(``render_views``, at most ``batch_size`` views per call and its full-size
intermediates bounded by ``chunk_for``), with the same per-view seeds as the PIL path
(``view_seed``). ``rebatch`` packs the views of consecutive images into forward
batches of ``batch_size``, so a two-valued family fills its batches as ``ViewChunks``
does.

The batches have the PIL loaders' shapes, so ``synthetic.py`` consumes both alike:
clean batches ``(idx, views or None, bad)`` as ``features.collate_clean`` makes them,
family batches ``(rows, params, views, same)`` as ``ViewChunks`` yields them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from sslinv.data.folder import load_rgb_or_none
from sslinv.runtime import image_batch_bytes, make_loader

#: The render modes of ``sslinv synthetic --render``; ``pil`` is the paper's.
RENDERS = ("pil", "device")

#: One decoded image in flight, for the /dev/shm check: a large ImageNet image
#: (500 x 500 and below; the loader holds a few per worker).
DECODED_BYTES = image_batch_bytes(1, 512)


def view_seed(seed: int, image_id: int, p: int) -> int:
    """The seed of view ``p`` of pool image ``image_id``: the formula of
    ``features.ViewChunks`` (only ``deform`` uses it), identical for any sharding."""
    return (seed * 1_000_003 + image_id) * 4099 + p


class DecodedImages(Dataset):
    """Item ``j`` is ``(j, uint8 (3, H, W) tensor)`` of the whole decoded ``files[j]``,
    or ``(j, None)`` for an unreadable image when ``skip_bad``."""

    def __init__(self, files: Sequence[Path], skip_bad: bool):
        self.files = list(files)
        self.skip_bad = skip_bad

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, j: int) -> tuple[int, torch.Tensor | None]:
        from sslinv.transforms.device import image_tensor

        img = load_rgb_or_none(self.files[j], self.skip_bad)
        return j, None if img is None else image_tensor(img)


def _as_is(item: Any) -> Any:
    # Items go through one at a time (images differ in size); a top-level function so
    # the loader pickles under spawn and forkserver.
    return item


def rebatch(pieces: Iterable[tuple[torch.Tensor, ...]], size: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """Tuples of equal-length tensors, regrouped into tuples of ``size`` rows (the last
    may be shorter), in order."""
    held: list[tuple[torch.Tensor, ...]] = []
    count = 0
    for piece in pieces:
        if not len(piece[0]):
            continue
        held.append(piece)
        count += len(piece[0])
        while count >= size:
            joined = held[0] if len(held) == 1 else tuple(torch.cat(parts) for parts in zip(*held))
            yield tuple(t[:size] for t in joined)
            count -= size
            held = [tuple(t[size:] for t in joined)] if count else []
    if count:
        yield held[0] if len(held) == 1 else tuple(torch.cat(parts) for parts in zip(*held))


@dataclass(frozen=True)
class DeviceViews:
    """The views of ``sslinv synthetic --render device``: the clean pipeline
    (``resize``, ``crop``), forward batches of ``batch_size``, ``workers`` decoding
    processes, the model's ``device``."""

    resize: int
    crop: int
    batch_size: int
    workers: int
    device: torch.device
    skip_bad: bool = False

    def images(self, files: Sequence[Path]) -> Iterator[tuple[int, torch.Tensor | None]]:
        """``(j, image on the device or None)`` for each of ``files``, in order."""
        loader = make_loader(DecodedImages(files, self.skip_bad), self.workers, None, _as_is, device=self.device,
                             batch_bytes=DECODED_BYTES)
        for j, image in loader:
            yield int(j), None if image is None else image.to(self.device, non_blocking=True)

    def clean_batches(self, files: Sequence[Path]) -> Iterator[tuple[torch.Tensor, torch.Tensor | None, list[int]]]:
        """``(idx, clean uint8 views, bad)`` batches of ``files`` (indices into it), as
        ``features.collate_clean``'s: ``bad`` lists the unreadable images (``skip_bad``)
        met meanwhile; a last ``(empty, None, bad)`` when they come after every view."""
        from sslinv.transforms.device import clean_view

        bad: list[int] = []

        def views():
            for j, image in self.images(files):
                if image is None:
                    bad.append(j)
                else:
                    yield torch.tensor([j]), clean_view(image, self.resize, self.crop).unsqueeze(0)

        for idx, batch in rebatch(views(), self.batch_size):
            yield idx, batch, bad[:]  # with the unreadable images met while filling it
            bad.clear()
        if bad:
            yield torch.empty(0, dtype=torch.long), None, bad

    def family_batches(self, files: Sequence[Path], rows: Sequence[int], image_ids: Sequence[int], family: str,
                       params: Sequence[dict[str, Any]], seed: int, identity: int | None = None,
                       ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``(rows, params, uint8 views, same)`` batches: every parameter of each of
        ``files`` (``rows[i]`` and pool index ``image_ids[i]`` belong to ``files[i]``). An
        unreadable image under ``skip_bad`` is left out. ``same`` flags the view of
        parameter ``identity`` where it equals the clean view byte for byte, as
        ``features.ViewChunks`` does."""
        from sslinv.transforms.device import chunk_for, clean_view, render_views

        k = len(params)

        def pieces():
            for i, image in self.images(files):
                if image is None:
                    continue
                chunk = min(self.batch_size, chunk_for(tuple(image.shape[-2:])))
                for s in range(0, k, self.batch_size):  # device memory independent of k
                    ps = list(range(s, min(s + self.batch_size, k)))
                    views = render_views(family, image, [params[p] for p in ps], self.resize, self.crop,
                                         seed=[view_seed(seed, int(image_ids[i]), p) for p in ps], chunk=chunk)
                    same = torch.zeros(len(ps), dtype=torch.bool)
                    if identity in ps:
                        q = ps.index(identity)
                        same[q] = torch.equal(views[q], clean_view(image, self.resize, self.crop))
                    yield torch.full((len(ps),), int(rows[i]), dtype=torch.long), torch.tensor(ps), views, same

        yield from rebatch(pieces(), self.batch_size)

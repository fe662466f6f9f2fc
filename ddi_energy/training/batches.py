"""The batches a run feeds its network, the same way for data held in memory (`Dataset`) and
data streamed from image folders (`ImageFolderStream`): normalized float input and labels."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import Tensor

from ddi_energy.training.data import Dataset, batch_indices, to_input
from ddi_energy.training.imagenet import ImageFolderStream, stream_batches


def step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of a step's augmentation: a function of (seed, step, rank) alone, so resuming and
    the number of data workers do not change it."""
    return seed * 1_000_003 + step * 97 + rank


def train_batches(ds: Dataset | ImageFolderStream, *, batch: int, seed: int, steps: range,
                  rank: int = 0, world: int = 1, workers: int = 0,
                  device: torch.device | str = "cpu") -> Iterator[tuple[Tensor, Tensor]]:
    """(augmented input, labels) on `device` of every step in `steps`, in order."""
    if isinstance(ds, ImageFolderStream):
        keys = ((tuple(batch_indices(len(ds), batch, s, seed, rank, world).tolist()),
                 step_seed(seed, s, rank)) for s in steps)  # fmt: skip
        for images, labels in stream_batches(ds, keys, workers):
            yield to_input(images.to(device), ds, None), labels.to(device)
        return
    for s in steps:
        idx = batch_indices(len(ds), batch, s, seed, rank, world)
        gen = torch.Generator().manual_seed(step_seed(seed, s, rank))
        yield to_input(ds.images[idx], ds, gen).to(device), ds.labels[idx].to(device)


def eval_batches(ds: Dataset | ImageFolderStream, chunks: Iterable[Tensor], *,
                 workers: int = 0, device: torch.device | str = "cpu"
                 ) -> Iterator[tuple[Tensor, Tensor]]:  # fmt: skip
    """(un-augmented input, labels) on `device` of the samples of each chunk of indices.
    Unreadable streamed files are left out (a warning each); empty batches are not yielded."""
    if isinstance(ds, ImageFolderStream):
        keys = ((tuple(chunk.tolist()), None) for chunk in chunks)
        for images, labels in stream_batches(ds, keys, workers):
            if len(labels):
                yield to_input(images.to(device), ds, None), labels.to(device)
        return
    for chunk in chunks:
        yield to_input(ds.images[chunk], ds, None).to(device), ds.labels[chunk].to(device)

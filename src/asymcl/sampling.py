"""Stage-1 batch composition: random batches (the paper) or class-balanced batches.

Both samplers give an epoch the same shape: ``ceil(n / B)`` batches with the sizes of a
plain split of ``n`` shuffled indices into batches of ``B`` (``B, ..., B, n mod B``), so the
two differ only in *which* images a batch holds, never in how many steps or images an
epoch has.

``random``: one seeded permutation of ``range(n)`` per epoch, cut into batches (every image
exactly once per epoch).

``balanced`` (class-aware sampling): each batch holds the same number of images of every
class present in the training set. A batch of size ``s`` over ``K`` classes takes
``s // K`` images of each class, and the ``s mod K`` leftover places go to the classes
``(b + j) mod K`` for ``j < s mod K`` (``b`` = batch index, so the leftovers rotate over the
classes). Class ``c`` thus needs ``q_c`` images in the epoch; they are the first ``q_c``
entries of ``ceil(q_c / n_c)`` concatenated seeded permutations of that class's ``n_c``
indices. A class with ``n_c >= q_c`` (a majority class) is subsampled without
replacement; a minority class is repeated, every image ``floor(q_c / n_c)`` or
``ceil(q_c / n_c)`` times in the epoch (with replacement across the repeats, but evenly
spread -- lower variance than i.i.d. draws). Within a batch the images are ordered class by
class (the contrastive loss is invariant to the order of its rows).

All randomness comes from the ``torch.Generator`` passed in (consumed in a fixed order:
classes in ascending label order, then permutations), so a seed fixes every batch.
"""

from __future__ import annotations

import math

import torch

SAMPLERS = ("random", "balanced")


def batch_sizes(n: int, batch_size: int) -> list[int]:
    """Sizes of the batches of one epoch: ``[B] * (n // B)`` plus ``n mod B`` when non-zero."""
    if n < 0 or batch_size < 1:
        raise ValueError(f"need n >= 0 and batch_size >= 1, got n={n}, batch_size={batch_size}")
    sizes = [batch_size] * (n // batch_size)
    if n % batch_size:
        sizes.append(n % batch_size)
    return sizes


def random_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One shuffled pass over ``range(n)`` in batches (CPU int64 index tensors)."""
    return list(torch.randperm(n, generator=generator).split(batch_size))


def balanced_per_class(size: int, n_classes: int, batch_index: int) -> list[int]:
    """How many images of each class (in class order) a balanced batch of ``size`` holds."""
    base, extra = divmod(size, n_classes)
    counts = [base] * n_classes
    for j in range(extra):
        counts[(batch_index + j) % n_classes] += 1
    return counts


def balanced_batches(targets: torch.Tensor, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch of class-balanced batches over ``targets`` (``[n]`` class ids, CPU).

    Returns CPU int64 index tensors into ``targets``; see the module docstring for the rule.
    """
    targets = torch.as_tensor(targets).cpu()
    if targets.dim() != 1 or targets.numel() == 0:
        raise ValueError(f"targets must be a non-empty 1-d tensor of class ids, got shape {tuple(targets.shape)}")
    sizes = batch_sizes(targets.numel(), batch_size)
    labels = torch.unique(targets)  # sorted ascending: a fixed consumption order of the generator
    members = [torch.nonzero(targets == c).view(-1) for c in labels.tolist()]
    k = len(members)
    per_batch = [balanced_per_class(s, k, b) for b, s in enumerate(sizes)]
    streams = []
    for c, idx in enumerate(members):
        need = sum(counts[c] for counts in per_batch)
        cycles = math.ceil(need / idx.numel()) if need else 0
        perms = [idx[torch.randperm(idx.numel(), generator=generator)] for _ in range(cycles)]
        streams.append(torch.cat(perms)[:need] if perms else idx[:0])
    offsets = [0] * k
    batches = []
    for counts in per_batch:
        parts = []
        for c, m in enumerate(counts):
            parts.append(streams[c][offsets[c]: offsets[c] + m])
            offsets[c] += m
        batches.append(torch.cat(parts))
    return batches

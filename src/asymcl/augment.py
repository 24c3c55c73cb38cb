"""On-device batch augmentation: random rotation and random horizontal flip.

The paper says only that the images "were augmented using random rotations and random
flips" (Section 5.3); neither the angle range nor the flip axis is given, and the released
code does not include its data pipeline. Our choices (all configurable):

- rotation by an angle drawn uniformly from ``[-max_degrees, +max_degrees]`` per image,
  default 15 degrees, about the image centre, bilinear interpolation, zero fill outside
  the source image (black, as torchvision's ``RandomRotation`` fills by default; the
  augmentation runs on [0, 1] pixels before mean/std normalisation);
- horizontal flip with probability 0.5 per image (a vertical flip would turn a T-shirt
  upside down, which never happens in the data).

Both are applied to a whole batch at once with one ``affine_grid`` + ``grid_sample`` call,
with per-sample matrices, so the work stays on the device (CPU or CUDA) and costs one
kernel pair per batch. Randomness comes only from the ``torch.Generator`` passed in, so
a seed fixes the result.

Sampling maths: ``affine_grid`` maps each output pixel's normalised coordinates
``p = (x, y)`` (in ``[-1, 1]``) to the source location ``theta @ (x, y, 1)``. For a rotation
by ``a`` in pixel space on an ``H x W`` image, with ``S = diag(W/2, H/2)`` taking normalised
to pixel offsets, ``theta[:, :2] = S^-1 R(a) S``:

    [[cos a, -sin a * H / W],
     [sin a * W / H,  cos a]]

and a horizontal flip negates the first column (source ``x -> -x``), which amounts to
rotating first and mirroring the rotated image. Positive angles turn the image
counter-clockwise, as in torchvision's ``rotate`` (the tests compare against it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class BatchAugment:
    """Random rotation (uniform in ``+-max_degrees``) and horizontal flip (prob ``flip_p``)."""

    max_degrees: float = 15.0
    hflip: bool = True
    flip_p: float = 0.5

    def __post_init__(self) -> None:
        if not (0.0 <= self.max_degrees <= 180.0):
            raise ValueError(f"max_degrees must lie in [0, 180], got {self.max_degrees}")
        if not (0.0 <= self.flip_p <= 1.0):
            raise ValueError(f"flip_p must lie in [0, 1], got {self.flip_p}")

    @property
    def active(self) -> bool:
        return self.max_degrees > 0 or (self.hflip and self.flip_p > 0)

    def matrices(self, n: int, height: int, width: int, *, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """The ``[n, 2, 3]`` sampling matrices for one batch (see the module docstring)."""
        # Draw both random streams unconditionally so that the sequence of random numbers
        # (and hence every later batch) does not depend on which options are switched on.
        u = torch.rand(n, generator=generator, device=device)
        f = torch.rand(n, generator=generator, device=device)
        angle = (2.0 * u - 1.0) * math.radians(self.max_degrees)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.zeros(n, 2, 3, device=device)
        theta[:, 0, 0] = cos
        theta[:, 0, 1] = -sin * (height / width)
        theta[:, 1, 0] = sin * (width / height)
        theta[:, 1, 1] = cos
        if self.hflip:
            sign = torch.where(f < self.flip_p, -1.0, 1.0)
            theta[:, :, 0] *= sign[:, None]
        return theta

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a float batch ``[N, C, H, W]``; returns a new tensor of the same shape.

        ``generator`` must live on ``images.device``.
        """
        if images.dim() != 4 or not images.is_floating_point():
            raise ValueError(f"expected a float batch [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        n, c, h, w = images.shape
        theta = self.matrices(n, h, w, generator=generator, device=images.device)
        if not self.active or n == 0:
            return images
        grid = F.affine_grid(theta.to(images.dtype), [n, c, h, w], align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

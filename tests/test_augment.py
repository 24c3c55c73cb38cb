"""asymcl.augment: per-sample rotation/flip checked against torchvision's single-image ops."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from asymcl.augment import BatchAugment


def _angles(n: int, seed: int, max_degrees: float) -> torch.Tensor:
    # BatchAugment draws the angle stream first, then the flip stream.
    u = torch.rand(n, generator=torch.Generator().manual_seed(seed))
    return (2 * u - 1) * max_degrees


def _flips(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    torch.rand(n, generator=g)
    return torch.rand(n, generator=g) < 0.5


def test_rotation_matches_torchvision_rotate_per_sample():
    x = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    out = BatchAugment(max_degrees=60, hflip=False)(x, torch.Generator().manual_seed(3))
    angles = _angles(6, 3, 60)
    assert angles.std() > 10  # the samples really got different angles
    for i in range(6):
        ref = TF.rotate(x[i], float(angles[i]), interpolation=TF.InterpolationMode.BILINEAR)
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)


def test_flip_only_is_an_exact_mirror_of_the_chosen_samples():
    x = torch.rand(64, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = BatchAugment(max_degrees=0, hflip=True)(x, torch.Generator().manual_seed(5))
    flips = _flips(64, 5)
    assert 0 < int(flips.sum()) < 64
    expected = torch.where(flips[:, None, None, None], x.flip(-1), x)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_rotation_and_flip_compose_as_rotate_then_flip():
    x = torch.rand(8, 1, 12, 12, generator=torch.Generator().manual_seed(2))
    out = BatchAugment(max_degrees=30, hflip=True)(x, torch.Generator().manual_seed(7))
    angles, flips = _angles(8, 7, 30), _flips(8, 7)
    for i in range(8):
        ref = TF.rotate(x[i], float(angles[i]), interpolation=TF.InterpolationMode.BILINEAR)
        ref = ref.flip(-1) if flips[i] else ref
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)


def test_flip_probability_is_one_half():
    n = 4000
    flips = _flips(n, 11)
    x = torch.arange(4.0).view(1, 1, 1, 4).expand(n, 1, 1, 4).contiguous()
    out = BatchAugment(max_degrees=0)(x, torch.Generator().manual_seed(11))
    flipped = out[:, 0, 0, 0] > 1.5  # first pixel became the last one
    assert torch.equal(flipped, flips)
    # binomial(4000, 0.5): sd = 31.6; 4 sd
    assert abs(int(flipped.sum()) - n / 2) < 4 * 31.7


def test_deterministic_for_a_seed_and_different_across_seeds():
    x = torch.rand(5, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    aug = BatchAugment()
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    c = aug(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype


def test_disabled_augmentation_is_identity():
    x = torch.rand(3, 1, 7, 7)
    assert torch.equal(BatchAugment(max_degrees=0, hflip=False)(x, torch.Generator()), x)


def test_rejects_bad_settings_and_inputs():
    with pytest.raises(ValueError, match="max_degrees"):
        BatchAugment(max_degrees=-1)
    with pytest.raises(ValueError, match="float batch"):
        BatchAugment()(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.Generator())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_geometry():
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    g = torch.Generator(device="cuda").manual_seed(0)
    out = BatchAugment(max_degrees=45)(x.cuda(), g)
    # CUDA draws its own random stream; check each sample is some rotation/flip of its input
    # by the torchvision reference at the angles the CUDA generator produced.
    g2 = torch.Generator(device="cuda").manual_seed(0)
    u = torch.rand(4, generator=g2, device="cuda").cpu()
    f = torch.rand(4, generator=g2, device="cuda").cpu() < 0.5
    for i in range(4):
        ref = TF.rotate(x[i], float((2 * u[i] - 1) * 45), interpolation=TF.InterpolationMode.BILINEAR)
        ref = ref.flip(-1) if f[i] else ref
        torch.testing.assert_close(out[i].cpu(), ref, atol=1e-4, rtol=0)

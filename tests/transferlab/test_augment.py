"""Batched augmentation: each pixel op agrees with torchvision.transforms.v2.functional image by
image, geometry moves pixels where torchvision moves them, and every sample draws its own parameters."""

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from transferlab.training.augment import (
    AugmentSpec,
    Augmenter,
    affine_matrices,
    autocontrast,
    brightness,
    contrast,
    cutout,
    posterize,
    saturation,
    sharpness,
    solarize,
    warp,
)


def _images(channels: int, n: int = 3, size: int = 12) -> torch.Tensor:
    g = torch.Generator().manual_seed(channels)
    return torch.rand(n, channels, size, size, generator=g) * 0.8 + 0.1


FACTORS = torch.tensor([0.3, 1.0, 1.7])


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("ours, theirs", [
    (brightness, TF.adjust_brightness),
    (contrast, TF.adjust_contrast),
    (sharpness, TF.adjust_sharpness),
])
def test_blend_ops_match_torchvision_per_image(channels, ours, theirs):
    x = _images(channels)
    out = ours(x, FACTORS)
    for i, f in enumerate(FACTORS.tolist()):
        assert torch.allclose(out[i], theirs(x[i], f), atol=1e-5), (ours.__name__, i)


def test_saturation_matches_torchvision_on_rgb_and_leaves_grey_alone():
    x = _images(3)
    out = saturation(x, FACTORS)
    for i, f in enumerate(FACTORS.tolist()):
        assert torch.allclose(out[i], TF.adjust_saturation(x[i], f), atol=1e-5)
    grey = _images(1)
    assert torch.equal(saturation(grey, FACTORS), grey)


@pytest.mark.parametrize("channels", [1, 3])
def test_posterize_solarize_autocontrast_match_torchvision(channels):
    x = _images(channels)
    bits = torch.tensor([4, 6, 8])
    thresholds = torch.tensor([0.2, 0.5, 0.9])
    post, sol, auto = posterize(x, bits), solarize(x, thresholds), autocontrast(x)
    for i in range(len(x)):
        # torchvision posterizes uint8 images; on floats ours keeps the top ``bits`` of the 8-bit value.
        u8 = (x[i] * 255).round().to(torch.uint8)
        assert torch.allclose(posterize((u8.float() / 256)[None], bits[i:i + 1])[0] * 256,
                              TF.posterize(u8, int(bits[i])).float(), atol=1e-3)
        assert torch.allclose(sol[i], TF.solarize(x[i], float(thresholds[i])), atol=1e-6)
        assert torch.allclose(auto[i], TF.autocontrast(x[i]), atol=1e-5)
    assert post.shape == x.shape


def _one_hot_image(size: int = 9, row: int = 4, col: int = 4) -> torch.Tensor:
    x = torch.zeros(1, 1, size, size)
    x[0, 0, row, col] = 1.0
    return x


def test_translation_moves_pixels_by_the_share_of_the_side_as_torchvision_does():
    x = _one_hot_image()
    zero = torch.zeros(1)
    theta = affine_matrices(zero, torch.ones(1), zero, zero, torch.tensor([2 / 9]), torch.tensor([-1 / 9]))
    ours = warp(x, theta)
    theirs = TF.affine(x[0], angle=0.0, translate=[2, -1], scale=1.0, shear=[0.0, 0.0])
    assert torch.allclose(ours[0], theirs, atol=1e-6)
    assert ours[0, 0, 3, 6] == pytest.approx(1.0)  # right by 2, up by 1


def test_rotation_turns_the_way_torchvision_turns():
    x = _one_hot_image(row=1, col=4)
    zero = torch.zeros(1)
    ours = warp(x, affine_matrices(torch.tensor([90.0]), torch.ones(1), zero, zero, zero, zero))
    theirs = TF.rotate(x[0], 90.0)
    assert torch.allclose(ours[0], theirs, atol=1e-5)


def test_cutout_greys_a_square_and_leaves_the_rest():
    torch.manual_seed(0)
    x = torch.zeros(8, 1, 16, 16)
    out = cutout(x, 0.5)
    grey = out == 0.5
    assert grey.any() and ((out == 0) | grey).all()
    assert grey.flatten(1).sum(1).max() <= 8 * 8


def test_each_sample_draws_its_own_parameters_and_a_seed_repeats_them():
    x = _images(1, n=1, size=16).expand(6, -1, -1, -1).contiguous()
    aug = Augmenter()
    for strength in ("weak", "strong"):
        torch.manual_seed(3)
        out = aug(x, strength)
        assert len({tuple(o.flatten().tolist()) for o in out}) == 6, strength  # not one draw for the batch
        torch.manual_seed(3)
        assert torch.equal(aug(x, strength), out)


def test_strong_is_further_from_the_input_than_weak_and_none_is_the_identity():
    torch.manual_seed(0)
    x = _images(1, n=64, size=16)
    aug = Augmenter()
    assert torch.equal(aug(x, "none"), x)
    weak = (aug(x, "weak") - x).abs().mean()
    strong = (aug(x, "strong") - x).abs().mean()
    assert 0 < weak < strong


def test_weak_without_geometry_is_the_identity_for_grey_and_flip_is_opt_in():
    x = _images(1, n=4)
    still = Augmenter(AugmentSpec(translate=0, rotate=0, scale=0))
    assert torch.allclose(still(x, "weak"), x, atol=1e-6)
    torch.manual_seed(1)
    flipped = Augmenter(AugmentSpec(translate=0, rotate=0, scale=0, hflip=True))(x, "weak")
    same = [torch.allclose(f, o, atol=1e-6) for f, o in zip(flipped, x)]
    mirrored = [torch.allclose(f, o.flip(-1), atol=1e-6) for f, o in zip(flipped, x)]
    assert all(s or m for s, m in zip(same, mirrored)) and any(mirrored)


def test_feature_vectors_get_gaussian_noise_scaled_by_each_feature_and_none_without_it():
    torch.manual_seed(0)
    v = torch.randn(4000, 2) * torch.tensor([1.0, 10.0])
    weak, strong = Augmenter()(v, "weak") - v, Augmenter()(v, "strong") - v
    assert weak.std(0) / v.std(0) == pytest.approx(torch.full((2,), 0.1), rel=0.05)
    assert strong.std(0) / v.std(0) == pytest.approx(torch.full((2,), 0.2), rel=0.05)
    assert Augmenter(AugmentSpec(noise=0))(v, "strong") is v

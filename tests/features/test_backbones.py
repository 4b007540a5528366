"""Backbones, weights sources and the multi-level extractor (seed 001's 9984-d VGG16 recipe)."""

from __future__ import annotations

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mimlkit.features.backbones import (  # noqa: E402
    Preprocess,
    WeightsUnavailableError,
    list_backbones,
    load_backbone,
)
from mimlkit.features.multilevel import (  # noqa: E402
    MultiLevelExtractor,
    make_extractor,
    quadrant_max_pool,
)


def _batch(n=2, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g).contiguous(memory_format=torch.channels_last)


def _feats(ext, x):
    with torch.inference_mode():
        return ext(x).numpy()


@pytest.fixture(scope="module")
def vgg16_backbone():
    return load_backbone("vgg16", None, seed=0, image_size=64)


def test_vgg16_multilevel_is_9984_wide(vgg16_backbone):
    ext = MultiLevelExtractor(vgg16_backbone)
    assert ext.levels == ["pool1", "pool2", "pool3", "pool4", "pool5", "fc7"]
    assert [d for _, d in ext.level_dims] == [64 * 4, 128 * 4, 256 * 4, 512 * 4, 512 * 4, 4096]
    assert ext.n_features == 9984
    names = ext.feature_names()
    assert len(names) == 9984 and names[0] == "pool1_c000_q0" and names[-1] == "fc7_4095"
    assert names[256 + 512 + 17 * 4 + 2] == "pool3_c017_q2"
    y = _feats(ext, _batch(2, 64))
    assert y.shape == (2, 9984) and y.dtype == np.float32 and np.isfinite(y).all()
    assert (y[:, -4096:] >= 0).all()  # fc7 post-ReLU by default
    assert (y[:, :5888] >= 0).all()  # pooled ReLU maps
    # pre-ReLU fc7 shares the same modules and differs only where fc7 < 0
    pre = _feats(MultiLevelExtractor(vgg16_backbone, fc="pre_relu"), _batch(2, 64))
    np.testing.assert_allclose(np.maximum(pre[:, -4096:], 0), y[:, -4096:], atol=1e-5)
    assert (pre[:, -4096:] < 0).any()
    np.testing.assert_allclose(pre[:, :5888], y[:, :5888], atol=1e-5)


def test_vgg16_fc7_matches_torchvision_classifier(vgg16_backbone):
    m = vgg16_backbone.model.eval()
    x = _batch(1, 64, seed=3)
    with torch.inference_mode():
        ref = m.classifier[:5](torch.flatten(m.avgpool(m.features(x)), 1)).numpy()
        p1 = m.features[:5](x)
    y = _feats(MultiLevelExtractor(vgg16_backbone), x)
    np.testing.assert_allclose(y[:, -4096:], ref, rtol=1e-4, atol=1e-5)
    q = torch.nn.functional.adaptive_max_pool2d(p1, 2).flatten(1).numpy()
    np.testing.assert_allclose(y[:, :256], q, rtol=1e-5, atol=1e-6)
    head = _feats(MultiLevelExtractor(vgg16_backbone, levels="head"), x)
    np.testing.assert_allclose(head, ref, rtol=1e-4, atol=1e-5)


def test_quadrant_bins_on_odd_maps():
    x = torch.zeros(1, 1, 7, 7)
    x[0, 0, 3, 3] = 5.0  # the centre pixel
    ad = quadrant_max_pool(x, "adaptive").numpy().ravel()
    fl = quadrant_max_pool(x, "floor").numpy().ravel()
    assert ad.tolist() == [5.0, 5.0, 5.0, 5.0]  # bins [0,4) and [3,7) share the centre
    assert fl.tolist() == [0.0, 0.0, 0.0, 5.0]  # bins [0,3) and [3,7)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert quadrant_max_pool(x, "floor").numpy().ravel().tolist() == [5.0, 7.0, 13.0, 15.0]
    with pytest.raises(ValueError, match="quadrant"):
        quadrant_max_pool(x, "ceil")


def test_tiny_and_resnet18_generic_levels():
    tiny = make_extractor("tiny-multilevel")
    assert tiny.n_features == (8 + 16 + 32) * 4 + 64 == 288
    assert tiny.preprocess.size == 64
    assert _feats(tiny, _batch(3, 64)).shape == (3, 288)
    r18 = make_extractor("resnet18-multilevel", image_size=64)
    assert [d for _, d in r18.level_dims] == [256, 512, 1024, 2048, 512]
    assert _feats(r18, _batch(2, 64)).shape == (2, 4352)
    g = make_extractor("resnet18", image_size=64, pool="avg")
    assert g.levels == ["pool"] and _feats(g, _batch(1, 64)).shape == (1, 512)
    avg = make_extractor("resnet18-multilevel", image_size=64, pool="avg")
    assert avg.n_features == 64 + 128 + 256 + 512 + 512
    sub = make_extractor("tiny-multilevel", levels=["pool2"], pool="max")
    assert sub.n_features == 16 and _feats(sub, _batch(1, 64)).shape == (1, 16)
    with pytest.raises(ValueError, match="unknown levels"):
        make_extractor("tiny-multilevel", levels=["pool9"])
    assert {"vgg16", "resnet18", "resnet50", "tiny"} <= set(list_backbones())


def test_random_init_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = make_extractor("tiny-multilevel", seed=5)
    after = torch.rand(1)
    assert torch.equal(before, after)
    b = make_extractor("tiny-multilevel", seed=5)
    c = make_extractor("tiny-multilevel", seed=6)
    x = _batch(2, 64)
    np.testing.assert_array_equal(_feats(a, x), _feats(b, x))
    assert not np.allclose(_feats(a, x), _feats(c, x))
    assert a.config() == b.config() and a.config() != c.config()


def test_weights_file_roundtrip_pth(tmp_path):
    src = load_backbone("resnet18", None, seed=1, image_size=64)
    path = tmp_path / "resnet18_random.pth"
    torch.save(src.model.state_dict(), path)
    loaded = load_backbone("resnet18", str(path), seed=0, image_size=64)
    assert loaded.weights_id.startswith("file:")
    x = _batch(2, 64)
    y_src = _feats(MultiLevelExtractor(src), x)
    y_file = _feats(MultiLevelExtractor(loaded), x)
    np.testing.assert_array_equal(y_src, y_file)
    y_seed0 = _feats(MultiLevelExtractor(load_backbone("resnet18", None, seed=0, image_size=64)),
                     x)
    assert not np.allclose(y_src, y_seed0)
    # a DDP-style wrapped checkpoint loads too
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.model.state_dict().items()}},
               wrapped)
    np.testing.assert_array_equal(
        _feats(MultiLevelExtractor(load_backbone("resnet18", wrapped, image_size=64)), x), y_src)


def test_weights_file_roundtrip_safetensors(tmp_path):
    from safetensors.torch import save_file

    src = load_backbone("tiny", None, seed=9)
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in src.model.state_dict().items()}, str(path))
    ext = make_extractor("tiny-multilevel", str(path))
    x = _batch(2, 64)
    np.testing.assert_array_equal(_feats(ext, x), _feats(MultiLevelExtractor(src), x))


def test_bad_weights_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_backbone("tiny", str(tmp_path / "nope.pth"))
    p = tmp_path / "tiny.pth"
    torch.save(load_backbone("tiny").model.state_dict(), p)
    with pytest.raises(ValueError, match="not a state dict of torchvision 'resnet18'.*missing"):
        load_backbone("resnet18", str(p))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth"):
        load_backbone("tiny", str(junk))
    with pytest.raises(ValueError, match="unknown backbone"):
        load_backbone("alexnet9")
    with pytest.raises(ValueError, match="unknown weights"):
        load_backbone("resnet18", "IMAGENET9K_V9")
    with pytest.raises(ValueError, match="no pretrained weights"):
        load_backbone("tiny", "DEFAULT")


def test_pretrained_request_offline_fails_fast_with_instructions(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    t0 = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as info:
        load_backbone("resnet18", "DEFAULT")
    assert time.perf_counter() - t0 < 10.0
    msg = str(info.value)
    assert "weights='path/to/resnet18.pth'" in msg and "IMAGENET1K_V1" in msg
    assert "checkpoints" in msg


def test_pretrained_name_uses_torch_hub_cache(monkeypatch, tmp_path):
    from torchvision.models import ResNet18_Weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    ckpt = tmp_path / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    src = load_backbone("resnet18", None, seed=4, image_size=64)
    torch.save(src.model.state_dict(), ckpt / ResNet18_Weights.IMAGENET1K_V1.url.split("/")[-1])
    b = load_backbone("resnet18", "IMAGENET1K_V1", image_size=64)
    assert b.weights_id == "torchvision:ResNet18_Weights.IMAGENET1K_V1"
    assert b.preprocess.mean == (0.485, 0.456, 0.406)
    x = _batch(1, 64)
    np.testing.assert_array_equal(_feats(MultiLevelExtractor(b), x),
                                  _feats(MultiLevelExtractor(src), x))
    b2 = load_backbone("resnet18", ResNet18_Weights.IMAGENET1K_V1, image_size=64)
    assert b2.weights_id == b.weights_id


def test_preprocess_policies():
    img = np.zeros((30, 60, 3), np.uint8)
    img[:, :30] = 255  # left half white
    full = Preprocess(size=32)
    assert full.to_uint8(img).shape == (32, 32, 3)
    crop = Preprocess(size=32, resize="shorter+crop", resize_size=36)
    out = crop.to_uint8(img)
    assert out.shape == (32, 32, 3)
    keep = Preprocess(size=32, resize="none")
    assert keep.to_uint8(img).shape == (30, 60, 3)
    x = full([img, img])
    assert x.shape == (2, 3, 32, 32) and x.is_contiguous(memory_format=torch.channels_last)
    # white pixels normalise to (1 - mean) / std
    np.testing.assert_allclose(x[0, :, 5, 2].numpy(),
                               (1 - np.array(full.mean)) / np.array(full.std), rtol=1e-5)
    with pytest.raises(ValueError, match="resize"):
        Preprocess(resize="stretch")
    with pytest.raises(ValueError, match="H x W x 3"):
        full.to_uint8(np.zeros((4, 4, 5), np.uint8))


def test_backbone_trunk_gives_penultimate_features():
    b = load_backbone("tiny", None, seed=0)
    trunk = b.trunk()
    x = _batch(2, 64)
    with torch.inference_mode():
        t = trunk(x)
    assert t.shape == (2, b.feature_dim) == (2, 64)
    np.testing.assert_allclose(t.numpy(), _feats(MultiLevelExtractor(b, levels="head"), x),
                               atol=1e-6)
    r = load_backbone("resnet18", None, image_size=64)
    with torch.inference_mode():
        assert r.trunk()(x).shape == (2, r.feature_dim) == (2, 512)

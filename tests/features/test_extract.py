"""Extraction pipeline: batching, tiles, device, the on-disk cache and resumption."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mimlkit.bags import Bags  # noqa: E402
from mimlkit.datasets.base import ImageSet  # noqa: E402
from mimlkit.datasets.tiling import TileBagger  # noqa: E402
from mimlkit.features.extract import content_hash, extract_features  # noqa: E402
from mimlkit.features.multilevel import make_extractor  # noqa: E402


def _images(n=7, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40 + 5 * i, 48 + 3 * i, 3), dtype=np.uint8) for i in range(n)]


class _Counter:
    """Counts forward calls (and pictures) through a forward hook; can fail on call k."""

    def __init__(self, ext, fail_on: int | None = None):
        self.calls = 0
        self.pictures = 0
        self.fail_on = fail_on
        self.handle = ext.register_forward_hook(self)

    def __call__(self, module, inputs, output):
        self.calls += 1
        self.pictures += int(inputs[0].shape[0])
        if self.fail_on is not None and self.calls == self.fail_on:
            raise KeyboardInterrupt("simulated interruption")


@pytest.fixture()
def tiny():
    return make_extractor("tiny-multilevel", seed=0)


def _direct(ext, images):
    with torch.inference_mode():
        return ext(ext.preprocess(images)).numpy()


def test_whole_images_are_one_instance_bags(tiny):
    imgs = _images(5)
    bags = extract_features(imgs, tiny, batch_size=2, progress=False)
    assert isinstance(bags, Bags) and len(bags) == 5
    assert bags.sizes.tolist() == [1] * 5 and bags.n_features == 288
    assert "coords" not in bags.instance_meta
    np.testing.assert_allclose(bags.instances, _direct(tiny, imgs), rtol=1e-5, atol=1e-6)


def test_cache_hit_does_no_forward_pass(tiny, tmp_path):
    imgs = _images(7)
    count = _Counter(tiny)
    a = extract_features(imgs, tiny, batch_size=3, cache_dir=tmp_path, progress=False)
    assert count.calls == 3 and count.pictures == 7  # 3 + 3 + 1
    files = [p for p in tmp_path.rglob("*.npy")]
    assert len(files) == 7
    b = extract_features(imgs, tiny, batch_size=3, cache_dir=tmp_path, progress=False)
    assert count.calls == 3  # nothing recomputed
    np.testing.assert_array_equal(a.instances, b.instances)
    # a new image: only that one is computed; identical content is found by hash
    c = extract_features([imgs[0], _images(1, seed=5)[0], imgs[0].copy()], tiny, batch_size=3,
                         cache_dir=tmp_path, progress=False)
    assert count.pictures == 8
    np.testing.assert_array_equal(c.instances[0], c.instances[2])
    # another configuration never reads these features
    other = make_extractor("tiny-multilevel", seed=0, image_size=48)
    cnt2 = _Counter(other)
    extract_features(imgs[:2], other, cache_dir=tmp_path, progress=False)
    assert cnt2.pictures == 2
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2


def test_interrupted_run_resumes(tiny, tmp_path):
    imgs = _images(6)
    ref = extract_features(imgs, tiny, batch_size=2, progress=False).instances
    failing = _Counter(tiny, fail_on=2)
    with pytest.raises(KeyboardInterrupt):
        extract_features(imgs, tiny, batch_size=2, cache_dir=tmp_path, progress=False)
    failing.handle.remove()
    assert len(list(tmp_path.rglob("*.npy"))) == 2  # first batch saved before the failure
    assert not list(tmp_path.rglob("*.tmp"))
    count = _Counter(tiny)
    out = extract_features(imgs, tiny, batch_size=2, cache_dir=tmp_path, progress=False)
    assert count.pictures == 4  # only the 4 missing images
    np.testing.assert_array_equal(out.instances, ref)


def test_tiles_are_instances_with_coords(tiny, tmp_path):
    imgs = _images(4)
    tiler = TileBagger(24, stride=16)
    count = _Counter(tiny)
    bags = extract_features(imgs, tiny, tiler=tiler, batch_size=5, cache_dir=tmp_path,
                            progress=False)
    expected = [tiler(im) for im in imgs]
    assert bags.sizes.tolist() == [len(t) for t, _ in expected]
    np.testing.assert_array_equal(bags.instance_meta["coords"],
                                  np.concatenate([c for _, c in expected]))
    assert count.pictures == bags.n_instances
    again = extract_features(imgs, tiny, tiler=tiler, batch_size=5, cache_dir=tmp_path,
                             progress=False)
    assert count.pictures == bags.n_instances  # all from the cache
    for i in (0, 3):
        np.testing.assert_allclose(again[i], _direct(tiny, list(expected[i][0])), rtol=1e-5,
                                   atol=1e-6)
    np.testing.assert_array_equal(again.instance_meta["coords"], bags.instance_meta["coords"])
    # a different tiler is a different cache entry
    n = count.pictures
    extract_features(imgs[:1], tiny, tiler=TileBagger(24), cache_dir=tmp_path, progress=False)
    assert count.pictures == n + len(TileBagger(24)(imgs[0])[0])


def test_batches_respect_batch_size(tiny):
    sizes = []
    tiny.register_forward_hook(lambda m, i, o: sizes.append(i[0].shape[0]))
    extract_features(_images(3), tiny, tiler=TileBagger(16), batch_size=4, progress=False)
    assert max(sizes) == 4 and sum(sizes) == sum(len(TileBagger(16)(im)[0])
                                                 for im in _images(3))


def test_files_workers_and_errors(tiny, tmp_path):
    from PIL import Image

    imgs = _images(4)
    paths = []
    for i, im in enumerate(imgs):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(im).save(p)
        paths.append(p)
    a = extract_features(ImageSet(paths), tiny, batch_size=3, num_workers=0, progress=False)
    b = extract_features(ImageSet(paths), tiny, batch_size=3, num_workers=2, progress=False)
    np.testing.assert_array_equal(a.instances, b.instances)
    np.testing.assert_allclose(a.instances, _direct(tiny, imgs), rtol=1e-5, atol=1e-6)
    assert content_hash(paths[0]) == content_hash(Path(paths[0]))
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match="broken.png"):
        extract_features(ImageSet([paths[0], bad]), tiny, progress=False)
    with pytest.raises(ValueError, match="missing.png"):
        extract_features(ImageSet([tmp_path / "missing.png"]), tiny, cache_dir=tmp_path / "c",
                         progress=False)


def test_extractor_by_name_and_progress_bar(tmp_path):
    bags = extract_features(_images(2), "tiny", batch_size=2, progress=True, device="cpu")
    assert bags.n_features == 64


def test_real_msrc_pngs_as_tile_bags(data_root, tmp_path):
    files = sorted((data_root / "msrc_v2" / "images_png").glob("*.png"))[:3]
    if len(files) < 3:
        pytest.skip("MSRC v2 PNGs not found")
    tiler = TileBagger(64, stride=64)
    bags = extract_features(ImageSet(files), make_extractor("tiny-multilevel"), tiler=tiler,
                            cache_dir=tmp_path, progress=False)
    from PIL import Image

    for i, f in enumerate(files):
        with Image.open(f) as im:
            w, h = im.size
        assert bags.sizes[i] == (h // 64) * (w // 64)
    assert np.isfinite(bags.instances).all()


@pytest.mark.slow
def test_real_msrc_vgg16_multilevel_224(data_root, tmp_path):
    files = sorted((data_root / "msrc_v2" / "images_png").glob("*.png"))[:4]
    ext = make_extractor("vgg16-multilevel")
    bags = extract_features(ImageSet(files), ext, batch_size=4, cache_dir=tmp_path,
                            progress=False)
    assert bags.instances.shape == (4, 9984)
    assert ext.preprocess.size == 224 and (bags.instances >= 0).all()

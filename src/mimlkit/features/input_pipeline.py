"""A model's input pipeline: how raw images became the feature bags it was fitted on.

``mimlkit fit`` stores ``describe_pipeline(dataset)`` in the model's checksummed
``config.json``; ``mimlkit predict`` compares the data it is given with it
(``check_pipeline``: other tiling, other feature extractor or width, other label set ->
one-line refusal) and, for raw images, redoes the same tiling and extraction
(``featurize_images``). The description is plain JSON::

    {"input": "bags", "tiler": {TileBagger.get_config()} | null,
     "features": {"name": "colour-texture" | "cnn", "config": {...},
                  "weights_id": "random:seed=0" | "file:<blake2b>" | ... | null,
                  "weights_path": str | null} | null,
     "n_features": 40, "scaler": null, "label_names": [...]}

``scaler`` is ``None``: feature scaling lives inside the learners (e.g. ``PooledLinear``'s
``standardize``), so it is saved with the estimator itself. numpy only at import; torch is
imported only to rebuild a CNN extractor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mimlkit.bags import Bags

__all__ = ["describe_pipeline", "check_pipeline", "featurize_images", "list_images",
           "HANDCRAFTED_NAME", "IMAGE_SUFFIXES"]

#: name of the hand-crafted tile descriptor (``colour_texture_features``) in the CLI
HANDCRAFTED_NAME = "colour-texture"
_HANDCRAFTED_ALIASES = ("colour-texture", "colour_texture_features", "color-texture",
                        "colour_texture", "handcrafted")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")


def _handcrafted_config() -> dict[str, Any]:
    from mimlkit.features.handcrafted import N_COLOUR_TEXTURE_FEATURES

    return {"function": "mimlkit.features.handcrafted:colour_texture_features",
            "n_features": N_COLOUR_TEXTURE_FEATURES}


def _features_entry(feats: Any, meta: dict[str, Any]) -> dict[str, Any] | None:
    if feats is None:
        return None
    if isinstance(feats, str) and feats.lower() in _HANDCRAFTED_ALIASES:
        return {"name": HANDCRAFTED_NAME, "config": _handcrafted_config(), "weights_id": None,
                "weights_path": None}
    if isinstance(feats, dict):
        if str(feats.get("extractor", "")).lower() in _HANDCRAFTED_ALIASES:
            return {"name": HANDCRAFTED_NAME, "config": _handcrafted_config(),
                    "weights_id": None, "weights_path": None}
        return {"name": "cnn", "config": feats, "weights_id": feats.get("weights"),
                "weights_path": meta.get("weights_path")}
    return {"name": str(feats), "config": None, "weights_id": None, "weights_path": None}


def describe_pipeline(dataset: Any, input_kind: str = "bags") -> dict[str, Any]:
    """JSON description of how ``dataset``'s learner inputs were made (module docstring).

    Reads ``dataset.meta``, ``dataset.bags`` (None or anything with ``n_features``, e.g. a
    lazy bag store) and ``dataset.label_names`` (None: an unlabelled store) only."""
    meta = dataset.meta if isinstance(dataset.meta, dict) else {}
    tiler = meta.get("tiler")
    if tiler is None and meta.get("tile_size") is not None and dataset.bags is not None:
        from mimlkit.datasets.tiling import TileBagger  # built-in synthetic images

        tiler = TileBagger(int(meta["tile_size"])).get_config()
    feats = _features_entry(meta.get("features"), meta) if dataset.bags is not None else None
    return {
        "input": input_kind,
        "tiler": dict(tiler) if isinstance(tiler, dict) else None,
        "features": feats,
        "n_features": int(dataset.bags.n_features) if dataset.bags is not None
        and input_kind == "bags" else None,
        "scaler": None,
        "label_names": None if dataset.label_names is None
        else [str(x) for x in dataset.label_names],
    }


def _diff(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    if a is None or b is None:
        return f"{a} vs {b}"
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return ", ".join(f"{k}={a.get(k)!r} vs {b.get(k)!r}" for k in keys)


def check_pipeline(model: dict[str, Any], data: dict[str, Any], *, model_name: Any = "model",
                   data_name: Any = "data", check_labels: bool = True) -> None:
    """Refuse ``data`` (a ``describe_pipeline``) that does not match the model's: another
    tiling, feature extractor, feature width or label set -> ``ValueError`` naming both."""
    where = f"{data_name} does not match {model_name}"
    if model.get("tiler") != data.get("tiler") and model.get("input", "bags") == "bags":
        raise ValueError(f"{where}: other tiling (model vs data: "
                         f"{_diff(model.get('tiler'), data.get('tiler'))})")
    mf, df = model.get("features"), data.get("features")
    if mf is not None and df is not None and (mf.get("name"), mf.get("config")) != (
            df.get("name"), df.get("config")):
        detail = _diff(mf.get("config"), df.get("config"))
        raise ValueError(f"{where}: other feature extractor (model {mf.get('name')} "
                         f"{mf.get('weights_id') or ''} vs data {df.get('name')} "
                         f"{df.get('weights_id') or ''}: {detail})")
    mn, dn = model.get("n_features"), data.get("n_features")
    if mn is not None and dn is not None and mn != dn:
        raise ValueError(f"{where}: other feature width (model fitted on {mn} features per "
                         f"instance, data has {dn})")
    ml, dl = model.get("label_names"), data.get("label_names")
    if check_labels and ml is not None and dl is not None and list(ml) != list(dl):
        extra, missing = sorted(set(dl) - set(ml)), sorted(set(ml) - set(dl))
        what = "; ".join(x for x in (f"data adds {extra}" if extra else "",
                                     f"data lacks {missing}" if missing else "") if x)
        raise ValueError(f"{where}: other label set ({what or 'same names, other order'}; "
                         f"model labels: {', '.join(ml)})")


def list_images(folder: str | Path):
    """``ImageSet`` of the image files directly inside ``folder`` (sorted by name)."""
    from mimlkit.datasets.base import ImageSet

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: image folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return ImageSet(files)


def make_tiler(config: dict[str, Any] | None):
    """``TileBagger`` from its ``get_config()`` (None -> None)."""
    if config is None:
        return None
    from mimlkit.datasets.tiling import TileBagger

    if isinstance(config.get("foreground"), str):
        raise ValueError(f"the tiling uses a custom foreground function "
                         f"{config['foreground']!r} that cannot be restored from a config")
    keys = ("stride", "border", "foreground", "min_foreground", "fill")
    return TileBagger(int(config["tile_size"]), **{k: config[k] for k in keys if k in config})


def handcrafted_bags(images: Any, tiler: Any) -> Bags:
    """Colour/texture descriptors of every tile (or of each whole image when ``tiler`` is
    None: one instance per image)."""
    from mimlkit.features.handcrafted import colour_texture_features, images_to_bags

    if tiler is not None:
        return images_to_bags(images, tiler, colour_texture_features)
    from mimlkit.datasets.tiling import as_rgb_uint8

    sources = getattr(images, "sources", None)
    feats = [colour_texture_features(as_rgb_uint8(images[i], sources[i] if sources else
                                                  f"image {i}")[None])
             for i in range(len(images))]
    return Bags.from_list(feats, dtype=np.float32)


def rebuild_extractor(features: dict[str, Any], weights: Any = None):
    """The CNN extractor described by ``features`` (``describe_pipeline``), rebuilt and
    checked to give the same ``config()``; ``weights`` overrides the stored file path."""
    from mimlkit.features.multilevel import make_extractor

    cfg = features["config"]
    wid = str(features.get("weights_id") or cfg.get("weights") or "")
    seed = 0
    if wid.startswith("random:seed="):
        seed, w = int(wid.split("=", 1)[1]), None
    elif wid.startswith("file:"):
        w = weights or features.get("weights_path")
        if not w:
            raise ValueError("the model's features come from a weights file; pass --weights "
                             "FILE (the same file)")
        if not Path(w).is_file():
            raise ValueError(f"{w}: weights file not found")
    elif wid.startswith("torchvision:"):
        w = weights or wid.split(".", 1)[1]
    else:
        raise ValueError(f"cannot rebuild the feature extractor (weights {wid!r})")
    pre = cfg.get("preprocess") or {}
    ext = make_extractor(str(cfg["backbone"]), w, seed=seed, image_size=pre.get("size"),
                         resize=pre.get("resize", "full"), pool=cfg.get("pool", "quadrant"),
                         quadrant=cfg.get("quadrant", "adaptive"), fc=cfg.get("fc", "post_relu"),
                         levels=list(cfg["levels"]) if cfg.get("levels") else None)
    got = ext.config()
    if got != cfg:
        import json

        same = json.loads(json.dumps(got, default=str)) == json.loads(json.dumps(cfg,
                                                                                 default=str))
        if not same:
            raise ValueError(f"the rebuilt feature extractor differs from the model's "
                             f"({_diff(cfg, got)}); other weights file?")
    return ext


def featurize_images(images: Any, pipeline: dict[str, Any], *, weights: Any = None,
                     device: str = "auto") -> Bags:
    """Redo the model's tiling + feature extraction on raw images (``ImageSet``)."""
    feats = pipeline.get("features")
    if feats is None:
        raise ValueError("the model was not fitted on features made from images (no feature "
                         "extractor recorded); give --data with its feature bags")
    tiler = make_tiler(pipeline.get("tiler"))
    if feats.get("name") == HANDCRAFTED_NAME:
        bags = handcrafted_bags(images, tiler)
    elif feats.get("name") == "cnn":
        from mimlkit.features.extract import extract_features

        bags = extract_features(images, rebuild_extractor(feats, weights), tiler=tiler,
                                device=device, progress=False)
    else:
        raise ValueError(f"unknown feature extractor {feats.get('name')!r} in the model")
    want = pipeline.get("n_features")
    if want is not None and bags.n_features != want:
        raise ValueError(f"re-extracted features have {bags.n_features} columns, the model "
                         f"was fitted on {want}")
    return bags

"""Instance features: hand-crafted tile descriptors (numpy) and, in submodules loaded on
use, CNN backbones. This ``__init__`` imports nothing heavy (no torch)."""

from mimlkit.features.handcrafted import colour_texture_features, images_to_bags

__all__ = ["colour_texture_features", "images_to_bags"]

# CNN parts (torch) load on first attribute access, never at ``import mimlkit.features``.
_LAZY = {
    "load_backbone": "backbones", "list_backbones": "backbones", "Backbone": "backbones",
    "Preprocess": "backbones", "WeightsUnavailableError": "backbones",
    "MultiLevelExtractor": "multilevel", "make_extractor": "multilevel",
    "list_extractors": "multilevel",
    "extract_features": "extract",
}


def __getattr__(name: str):
    if name in _LAZY:
        from mimlkit._extras import require

        return getattr(require("deep", f"mimlkit.features.{_LAZY[name]}",
                               f"mimlkit.features.{name}"), name)
    raise AttributeError(f"module 'mimlkit.features' has no attribute {name!r}")

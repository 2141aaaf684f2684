"""An image folder's stored image size, read from one file without loading the set: what image_size = 0
means. Its own module because the registry (recipe_input_shape) and the image folder loader both need it."""

from __future__ import annotations

from pathlib import Path

from cplitool.toolchain.recipe.sections import DataSection


def stored_side(cfg: DataSection) -> int:
    """Longer side of the first validation image (what image_size = 0 means), or 0 if there is none."""
    from PIL import Image
    from torchvision.datasets.folder import IMG_EXTENSIONS

    folder = Path(cfg.root) / cfg.val_split
    for cls in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        for f in sorted(cls.iterdir()):
            if f.suffix.lower() in IMG_EXTENSIONS:
                with Image.open(f) as im:
                    return max(im.size)
    return 0

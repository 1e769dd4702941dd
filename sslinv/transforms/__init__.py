"""Synthetic transformation families and their parameter grids (protocols.md section 2).

``FAMILIES`` is the registry of the 18 families in protocol-table order;
``get_family(name)`` looks one up (with a did-you-mean on typos). A family's
``grid(k, resize, crop)`` lists the parameters; ``view(img, param, resize, crop, seed)``
builds one uint8 (3, crop, crop) view; ``clean_view`` is the untransformed one.
Views are not normalised: normalise batches with ``IMAGENET_MEAN``/``IMAGENET_STD``.

Importing this package is cheap: torch, torchvision and OpenCV are imported on first use.
"""

from sslinv.transforms.families import APPEARANCE, FAMILIES, SPATIAL, Family, Grid, get_family
from sslinv.transforms.pipeline import IMAGENET_MEAN, IMAGENET_STD, clean_view

__all__ = [
    "APPEARANCE",
    "FAMILIES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SPATIAL",
    "Family",
    "Grid",
    "clean_view",
    "get_family",
]

"""The ``deform`` family: elastic deformation as the reference computed it.

What the reference did
----------------------
The reference built, for each sigma, albumentations (1.x, 2021)
``ElasticTransform(sigma=sigma, always_apply=True, approximate=True)`` and applied it to
``np.array(full_size_image)``. Every other argument was at its 1.x default:
``alpha=1``, ``alpha_affine=50``, ``interpolation=cv2.INTER_LINEAR``,
``border_mode=cv2.BORDER_REFLECT_101``, ``value=None``. With ``approximate=True`` the
1.x functional ``elastic_transform_approx`` did two things, in this order:

1. **Random affine jitter** (``alpha_affine``). Three points are placed around
   ``c = (H // 2, W // 2)`` at distance ``q = min(H, W) // 3``:
   ``(c0+q, c1+q)``, ``(c0+q, c1-q)``, ``(c0-q, c1-q)`` (note: the (row, col) centre is used
   as an (x, y) point, a quirk we keep); each coordinate of each point is moved by
   ``Uniform(-alpha_affine, alpha_affine)``; the affine map taking the old triangle to the
   new one (``cv2.getAffineTransform``) warps the image (``cv2.warpAffine``, linear,
   reflect-101 border). This is a random shift of up to ~50 px plus random scale/shear of
   up to ~50 / (2q) (about +-20 % on a 375-px-high image), and it dominates the effect.
2. **Elastic field**: ``dx, dy ~ Uniform(-1, 1)`` per pixel (float32), each smoothed by
   ``cv2.GaussianBlur`` with a fixed 17 x 17 kernel and the given ``sigma``, times
   ``alpha``; the image is resampled at ``(x + dx, y + dy)`` with ``cv2.remap`` (linear,
   reflect-101). With ``alpha=1`` and a 17 x 17 kernel (nearly a box filter for
   sigma >= 10) the displacement has a standard deviation of about 0.03 px, so sigma
   barely changes the output: the "sigma" axis of this family is mostly a label and the
   32 repeats per sigma are 32 independent affine jitters.

albumentations 1.4 deprecated ``alpha_affine`` and 2.x removed it (2.x also changed
the noise to Gaussian by default, the blur border to replicate and the blur to act on
both fields stacked), so calling albumentations would not reproduce the reference
with any version installed.

What ``sslinv`` does
--------------------
It implements the two steps above directly with OpenCV primitives (``cv2`` comes with
albumentations in every version, 1.4.x and 2.x alike), so the result does not depend on
the albumentations version, and ``albumentations`` (slow to import, and 1.4.x checks for
updates over the network on import) is not imported at all. Randomness: the reference
drew a seed from Python's global ``random`` per call; ``sslinv`` draws the affine jitter
(first) and the two fields (then) from ``np.random.default_rng([seed, field])``, where
``seed`` is the caller's per-image seed and ``field`` the view's index in the grid, so
every view is reproducible, independent of worker order, and the 32 repeats of a sigma
differ. The exact random numbers of the reference cannot be reproduced (its seeds were
not recorded); the distribution is the same.
"""

from __future__ import annotations

import numpy as np

# albumentations 1.x ElasticTransform defaults, the ones the reference relied on.
ALPHA = 1.0
ALPHA_AFFINE = 50.0
BLUR_KERNEL = (17, 17)  # fixed kernel of the 1.x "approximate" path


def elastic_deform(
    image: np.ndarray,
    sigma: float,
    rng: np.random.Generator,
    alpha: float = ALPHA,
    alpha_affine: float = ALPHA_AFFINE,
) -> np.ndarray:
    """Affine jitter then approximate elastic field, on an (H, W, C) uint8 array.

    Returns a new (H, W, C) uint8 array. See the module docstring for the algorithm.
    """
    import cv2

    height, width = image.shape[:2]
    interp, border = cv2.INTER_LINEAR, cv2.BORDER_REFLECT_101

    # --- 1. random affine jitter of a triangle around the centre
    c0, c1 = np.float32(height // 2), np.float32(width // 2)
    q = np.float32(min(height, width) // 3)
    src = np.array([[c0 + q, c1 + q], [c0 + q, c1 - q], [c0 - q, c1 - q]], dtype=np.float32)
    dst = src + rng.uniform(-alpha_affine, alpha_affine, size=src.shape).astype(np.float32)
    matrix = cv2.getAffineTransform(src, dst)
    warped = cv2.warpAffine(image, matrix, (width, height), flags=interp, borderMode=border)

    # --- 2. smoothed uniform displacement field, scaled by alpha
    def field() -> np.ndarray:
        d = rng.random((height, width), dtype=np.float32)
        d *= 2
        d -= 1
        cv2.GaussianBlur(d, BLUR_KERNEL, float(sigma), dst=d)
        d *= np.float32(alpha)
        return d

    dx = field()
    dy = field()
    dx += np.arange(width, dtype=np.float32)[None, :]
    dy += np.arange(height, dtype=np.float32)[:, None]
    out = cv2.remap(warped, dx, dy, interpolation=interp, borderMode=border)
    return out.reshape(image.shape)

"""A deterministic MNIST-shaped image set made from scikit-learn's 8x8 digits (MNIST itself
cannot be downloaded on every machine).

Each image is one of the 1,797 handwritten 8x8 digits, upsampled to 20x20 (bilinear) and
placed on a 28x28 canvas by a random affine map (rotation up to 15 degrees, scale 0.85-1.15,
shear up to 0.15, shift up to 3 pixels), with strokes randomly thickened or thinned and
Gaussian pixel noise, clipped to [0, 1]: MNIST's shape (1x28x28, 10 classes, 60,000 / 10,000),
not MNIST's images. Train and test images come from *disjoint* source digits (a seeded half
of the 1,797 each), so test accuracy measures generalisation to unseen handwriting, not to
new distortions of seen digits. Generated in seconds and cached as uint8 (``BNN_PPL_CACHE``,
default ``~/.cache/bnn_ppl``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from bnn_ppl.errors import DataError

__all__ = ["synthetic_mnist", "cache_dir"]

_SIZE = 28
_VERSION = 1


def cache_dir() -> Path:
    """Where generated data sets are cached: ``$BNN_PPL_CACHE`` or ``~/.cache/bnn_ppl``."""
    return Path(os.environ.get("BNN_PPL_CACHE", Path.home() / ".cache" / "bnn_ppl"))


def _upsampled_digits() -> tuple[np.ndarray, np.ndarray]:
    from scipy import ndimage
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    images = X.reshape(-1, 8, 8) / 16.0
    big = np.stack([ndimage.zoom(img, 2.5, order=1) for img in images])  # 20x20
    canvas = np.zeros((len(big), _SIZE, _SIZE))
    canvas[:, 4:24, 4:24] = np.clip(big, 0.0, 1.0)
    return canvas, y


def _distort(base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from scipy import ndimage

    angle = np.deg2rad(rng.uniform(-15, 15))
    scale = rng.uniform(0.85, 1.15)
    shear = rng.uniform(-0.15, 0.15)
    c, s = np.cos(angle), np.sin(angle)
    matrix = np.array([[c, -s], [s, c]]) @ np.array([[1.0, shear], [0.0, 1.0]]) / scale
    centre = np.array([_SIZE / 2 - 0.5] * 2)
    offset = centre - matrix @ (centre + rng.uniform(-3, 3, size=2))
    img = ndimage.affine_transform(base, matrix, offset=offset, order=1, mode="constant")
    stroke = rng.integers(3)
    if stroke == 1:
        img = ndimage.grey_dilation(img, size=(2, 2))
    elif stroke == 2:
        img = ndimage.gaussian_filter(img, 0.6) * 1.3
    return img


def _generate(n_train: int, n_test: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    canvas, labels = _upsampled_digits()
    order = rng.permutation(len(canvas))
    pools = {"train": order[: len(order) // 2], "test": order[len(order) // 2:]}
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        picks = rng.choice(pools[split], size=n)
        images = np.stack([_distort(canvas[i], rng) for i in picks])
        images += rng.normal(0.0, 0.08, size=images.shape)
        out[f"X_{split}"] = np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)[:, None]
        out[f"y_{split}"] = labels[picks].astype(np.int64)
    return out


def synthetic_mnist(n_train: int = 60_000, n_test: int = 10_000, random_seed: int = 0, *,
                    cache: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_train, X_test, y_train, y_test)``: float32 images (rows, 1, 28, 28) in [0, 1], labels 0-9.

    Parameters
    ----------
    n_train, n_test : int
        Images per split (MNIST: 60,000 and 10,000).
    random_seed : int
        Seeds the split of source digits and every distortion: the same arguments give the same images.
    cache : bool
        Read from / write to :func:`cache_dir` (atomic write; a damaged cache file is regenerated).

    Examples
    --------
    >>> X_tr, X_te, y_tr, y_te = synthetic_mnist(200, 50, cache=False)
    >>> X_tr.shape, X_te.dtype, sorted(set(y_tr.tolist())) == list(range(10))
    ((200, 1, 28, 28), dtype('float32'), True)
    """
    for field, value in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise DataError(f"The {field!r} parameter of synthetic_mnist must be a positive integer. Got {value!r}.")
    path = cache_dir() / f"synthetic_mnist_v{_VERSION}_{n_train}_{n_test}_{int(random_seed)}.npz"
    data = None
    if cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                data = {key: stored[key] for key in ("X_train", "X_test", "y_train", "y_test")}
        except (OSError, ValueError, KeyError, EOFError):
            data = None  # damaged cache: regenerate
    if data is None:
        data = _generate(int(n_train), int(n_test), int(random_seed))
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.savez(fh, **data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
    scale = np.float32(1.0 / 255.0)
    return (data["X_train"].astype(np.float32) * scale, data["X_test"].astype(np.float32) * scale,
            data["y_train"], data["y_test"])

"""Independent NumPy references for `jbalance.sampling` (and the repeat factors it shares
with `jbalance.resample`), written from the papers' formulas, never from ``_src``.

* `np_class_balanced`: Kang et al. (ICLR 2020) eq. 1.
* `np_rfs`: LVIS repeat-factor sampling, loops over images and their classes.
* `np_dataeval_global`: DataEval's ``ClassBalance("global")`` image weights.
* `np_class_aware`: Shen et al.'s class-aware sampling, class first, then an image.
* `chi_square_ok`: Pearson's goodness-of-fit bound for the statistical checks.
"""

import numpy as np


def np_class_balanced(labels, num_classes, q):
    """Kang et al. eq. 1 in NumPy: p_j = n_j^q / sum_k n_k^q, uniform within the class."""
    labels = np.asarray(labels)
    n = np.bincount(labels, minlength=num_classes).astype(np.float64)
    mass = np.array([c ** q if c > 0 else 0.0 for c in n])
    mass /= mass.sum()
    return np.array([mass[y] / n[y] for y in labels])


def np_rfs(counts, t, sqrt=True):
    """LVIS: r_c = max(1, sqrt(t / f_c)), r_i = max over the classes of image i (else 1)."""
    present = np.asarray(counts) > 0
    f = present.mean(0)
    out = np.ones(present.shape[0])
    for i in range(present.shape[0]):
        for c in np.flatnonzero(present[i]):
            rc = max(1.0, np.sqrt(t / f[c]) if sqrt else t / f[c])
            out[i] = max(out[i], rc)
    return out


def np_dataeval_global(counts, oversample_factor=1.0):
    """DataEval's ``ClassBalance(method="global", aggregation_func="mean")`` image weights,
    written from its documentation: class frequency ``f_c`` = the fraction of images that
    hold class ``c``; class repeat factor ``max(1, (oversample_factor / f_c) ** (1/2))``
    ("probability proportional to inverse square root of class frequencies"); an image's
    weight is the mean of the factors of the classes it holds (each class once). Images
    with no class: ``nan`` here (DataEval leaves them to its ``num_empty`` handling)."""
    present = np.asarray(counts) > 0
    n = present.shape[0]
    freq = {c: present[:, c].sum() / n for c in range(present.shape[1]) if present[:, c].any()}
    factor = {c: max(1.0, (oversample_factor / f) ** 0.5) for c, f in freq.items()}
    out = np.full(n, np.nan)
    for i in range(n):
        classes = sorted(set(np.flatnonzero(present[i]).tolist()))
        if classes:
            out[i] = float(np.mean([factor[c] for c in classes]))
    return out


def np_class_aware(counts):
    """Class-aware sampling (Shen et al., 2016) by its definition: draw a class uniformly
    among the classes present in the data, then uniformly one of the images holding it; the
    probability of image ``i`` sums that path over its classes."""
    present = np.asarray(counts) > 0
    held = [c for c in range(present.shape[1]) if present[:, c].any()]
    p = np.zeros(present.shape[0])
    for c in held:
        images = np.flatnonzero(present[:, c])
        for i in images:
            p[i] += (1 / len(held)) * (1 / len(images))
    return p


def chi_square_ok(counts, expected):
    """Pearson's chi-square within dof + 6 sqrt(2 dof) (a ~4-sigma bound for large dof)."""
    keep = expected > 0
    dof = max(int(keep.sum()) - 1, 1)
    stat = float(((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum())
    return stat < dof + 6 * np.sqrt(2 * dof) + 10, stat

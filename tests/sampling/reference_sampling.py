"""Independent NumPy references for `jbalance.sampling` (and the repeat factors it shares
with `jbalance.resample`), written from the papers' formulas, never from ``_src``.

* `np_class_balanced`: Kang et al. (ICLR 2020) eq. 1.
* `np_rfs`: LVIS repeat-factor sampling, loops over images and their classes.
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


def chi_square_ok(counts, expected):
    """Pearson's chi-square within dof + 6 sqrt(2 dof) (a ~4-sigma bound for large dof)."""
    keep = expected > 0
    dof = max(int(keep.sum()) - 1, 1)
    stat = float(((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum())
    return stat < dof + 6 * np.sqrt(2 * dof) + 10, stat

"""float64 NumPy references for the segmentation losses and the distribution-balanced loss.

Written independently of jbalance/_src:

* Dice, generalized Dice and Tversky: transcriptions of MONAI's ``monai/losses/dice.py``
  (``DiceLoss``, ``GeneralizedDiceLoss``) and ``monai/losses/tversky.py`` (``TverskyLoss``),
  Project-MONAI/MONAI, Apache-2.0. Channels-first inside (as MONAI), one-hot targets, the
  ``reduction="none"`` output with its trailing singleton axes dropped.
* Lovász-softmax: a transcription of the authors' ``pytorch/lovasz_losses.py``
  (``lovasz_grad``, ``lovasz_softmax``, ``lovasz_softmax_flat``, ``flatten_probas``,
  ``mean``), bermanmaxim/LovaszSoftmax, MIT licence, (c) Maxim Berman 2018. Python loops,
  boolean indexing and a real sort, as the authors write it.
* Distribution-balanced loss: from the equations of Wu et al., ECCV 2020 (not from the
  authors' code, whose licence is non-commercial).
* Pixel class weights: from Eigen and Fergus (median frequency) and Paszke et al. (ENet).
"""

import numpy as np


def softmax(z, axis=-1):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def sigmoid(z):
    return 1 / (1 + np.exp(-np.asarray(z, np.float64)))


def _prepare(logits, labels, activation, include_background, keep=None):
    """Channels-first probabilities and one-hot targets [N, C, P]; ``keep`` [N, P] zeroes
    ignored pixels in both (MONAI has no ignore: this is the mask a caller would apply)."""
    z = np.asarray(logits, np.float64)
    n, c = z.shape[0], z.shape[-1]
    z = z.reshape(n, -1, c)
    p = softmax(z) if activation == "softmax" else sigmoid(z)
    labels = np.asarray(labels)
    if np.issubdtype(labels.dtype, np.integer):
        ids = labels.reshape(n, -1)
        g = (ids[..., None] == np.arange(c)).astype(np.float64)
    else:
        g = np.asarray(labels, np.float64).reshape(n, -1, c)
    if keep is not None:
        k = np.asarray(keep, np.float64).reshape(n, -1, 1)
        p, g = p * k, g * k
    p, g = np.moveaxis(p, -1, 1), np.moveaxis(g, -1, 1)
    if not include_background:
        p, g = p[:, 1:], g[:, 1:]
    return p, g


def monai_dice(logits, labels, *, activation="softmax", include_background=True,
               squared=False, smooth_nr=1e-5, smooth_dr=1e-5, batch=False, weight=None,
               keep=None):
    p, g = _prepare(logits, labels, activation, include_background, keep)
    axes = (0, 2) if batch else (2,)
    intersection = np.sum(g * p, axis=axes)
    if squared:
        ground_o, pred_o = np.sum(g ** 2, axis=axes), np.sum(p ** 2, axis=axes)
    else:
        ground_o, pred_o = np.sum(g, axis=axes), np.sum(p, axis=axes)
    f = 1.0 - (2.0 * intersection + smooth_nr) / (ground_o + pred_o + smooth_dr)
    if weight is not None and g.shape[1] != 1:
        f = f * np.asarray(weight, np.float64)
    return f


def monai_generalized_dice(logits, labels, *, activation="softmax", include_background=True,
                           w_type="square", smooth_nr=1e-5, smooth_dr=1e-5, batch=False,
                           keep=None):
    p, g = _prepare(logits, labels, activation, include_background, keep)
    axes = (0, 2) if batch else (2,)
    intersection = np.sum(g * p, axis=axes)
    ground_o, pred_o = np.sum(g, axis=axes), np.sum(p, axis=axes)
    denominator = ground_o + pred_o
    with np.errstate(divide="ignore"):
        if w_type == "simple":
            w = np.reciprocal(ground_o)
        elif w_type == "square":
            w = np.reciprocal(ground_o * ground_o)
        else:
            w = np.ones_like(ground_o)
    infs = np.isinf(w)
    w = np.where(infs, 0.0, w)
    if batch:
        w = w + infs * np.max(w)
    else:
        w = w + infs * np.max(w, axis=1, keepdims=True)
    final = 0 if batch else 1
    numer = 2.0 * np.sum(intersection * w, axis=final) + smooth_nr
    denom = np.sum(denominator * w, axis=final) + smooth_dr
    return 1.0 - numer / denom


def monai_tversky(logits, labels, *, alpha=0.5, beta=0.5, activation="softmax",
                  include_background=True, smooth_nr=1e-5, smooth_dr=1e-5, batch=False,
                  keep=None):
    p0, g0 = _prepare(logits, labels, activation, include_background, keep)
    k = 1.0
    if keep is not None:  # 1 - p and 1 - g must not count ignored pixels either.
        k = np.asarray(keep, np.float64).reshape(p0.shape[0], 1, -1)
    p1, g1 = k - p0, k - g0
    axes = (0, 2) if batch else (2,)
    tp = np.sum(p0 * g0, axis=axes)
    fp = alpha * np.sum(p0 * g1, axis=axes)
    fn = beta * np.sum(p1 * g0, axis=axes)
    return 1.0 - (tp + smooth_nr) / (tp + fp + fn + smooth_dr)


def focal_tversky(logits, labels, *, gamma=0.75, **kw):
    return np.maximum(monai_tversky(logits, labels, **kw), 0.0) ** gamma


# ----------------------------------------------------------------------------------------
# Lovász-softmax, the authors' algorithm.
# ----------------------------------------------------------------------------------------


def lovasz_grad(gt_sorted):
    p = len(gt_sorted)
    gts = gt_sorted.sum()
    intersection = gts - np.cumsum(gt_sorted)
    union = gts + np.cumsum(1.0 - gt_sorted)
    jaccard = 1.0 - intersection / union
    if p > 1:
        jaccard[1:p] = jaccard[1:p] - jaccard[0:-1]
    return jaccard


def _mean(values, empty=0.0):
    values = list(values)
    return float(np.mean(values)) if values else empty


def lovasz_softmax_flat(probas, labels, classes="present"):
    if probas.size == 0:
        return 0.0  # The authors return `probas * 0.` (an empty tensor); see the tests.
    c = probas.shape[1]
    losses = []
    class_to_sum = list(range(c)) if classes in ("all", "present") else classes
    for k in class_to_sum:
        fg = (labels == k).astype(np.float64)
        if classes == "present" and fg.sum() == 0:
            continue
        class_pred = probas[:, k]
        errors = np.abs(fg - class_pred)
        perm = np.argsort(-errors, kind="stable")
        losses.append(float(np.dot(errors[perm], lovasz_grad(fg[perm]))))
    return _mean(losses)


def flatten_probas(probas, labels, ignore=None):
    """Channels-last probabilities [N, *spatial, C] -> [P, C], labels -> [P]."""
    c = probas.shape[-1]
    probas = probas.reshape(-1, c)
    labels = labels.reshape(-1)
    if ignore is None:
        return probas, labels
    valid = labels != ignore
    return probas[valid], labels[valid]


def lovasz_softmax(logits, labels, *, classes="present", per_image=False, ignore=None):
    """The authors' ``lovasz_softmax(softmax(logits), labels, ...)``; with ``per_image`` the
    per-image values (the authors return their mean)."""
    probas = softmax(logits)
    labels = np.asarray(labels)
    if per_image:
        return np.array([lovasz_softmax_flat(*flatten_probas(p[None], lab[None], ignore),
                                             classes=classes)
                         for p, lab in zip(probas, labels)])
    return lovasz_softmax_flat(*flatten_probas(probas, labels, ignore), classes=classes)


# ----------------------------------------------------------------------------------------
# Distribution-balanced loss (Wu et al. 2020, eqs. 3-8) and pixel class weights.
# ----------------------------------------------------------------------------------------


def distribution_balanced(z, y, counts, num_examples, *, alpha=0.1, beta=10.0, mu=0.3,
                          kappa=0.05, lam=5.0, gamma=2.0):
    z = np.asarray(z, np.float64)
    y = np.asarray(y, np.float64)
    n = np.clip(np.asarray(counts, np.float64), 0.5, max(num_examples - 0.5, 0.5))
    pc = (1.0 / n) * np.ones_like(z)  # P^C (the 1/C factor cancels)
    pi = np.sum(y * pc, axis=-1, keepdims=True)  # P^I of the example
    with np.errstate(divide="ignore"):
        r = np.where(pi > 0, pc / np.where(pi > 0, pi, 1.0), np.inf)
    r_hat = alpha + sigmoid(beta * (r - mu))
    p = n / num_examples
    nu = -kappa * np.log(1 / p - 1)
    qp = sigmoid(z - nu)
    qm = sigmoid(lam * (z - nu))
    # Direct formula, in float64 (fine for |z| up to ~30; tests keep the logits there).
    pos = (1 - qp) ** gamma * -np.log(qp)
    neg = (1 / lam) * qm ** gamma * -np.log(1 - qm)
    return r_hat * (y * pos + (1 - y) * neg)


def pixel_class_weights(counts, method="median_frequency", c=1.02):
    m = np.asarray(counts, np.float64)
    if method == "enet":
        p = m.sum(0) / max(m.sum(), 1.0)
        return 1 / np.log(c + p)
    f = np.zeros(m.shape[1])
    for k in range(m.shape[1]):
        images = m[:, k] > 0
        if images.any():
            f[k] = m[images, k].sum() / m[images].sum()
    present = f > 0
    if not present.any():
        return np.zeros_like(f)
    med = np.median(f[present])
    return np.where(present, med / np.where(present, f, 1.0), 0.0)

"""Independent float64 NumPy references for jbalance.losses, written from the formulas.

Each function follows the paper / PyTorch documentation literally (textbook formulas, no
log-space tricks beyond a stable log-softmax), so it is only trusted for moderate logits.
"""

import numpy as np


def class_weights(counts, method="inverse", beta=0.999, normalize="samples", zero_count="max"):
    n = np.asarray(counts, np.float64)
    num_classes = n.size
    seen = n > 0
    if not seen.any():
        return np.ones(num_classes)
    raw = np.zeros(num_classes)
    ns = n[seen]
    if method == "inverse":
        raw[seen] = 1.0 / ns
    elif method == "inverse_sqrt":
        raw[seen] = 1.0 / np.sqrt(ns)
    elif method == "effective_number":  # Cui et al. 2019, eq. (3): E_n = (1 - beta^n)/(1 - beta)
        raw[seen] = (1.0 - beta) / (1.0 - beta ** ns)
    elif method == "balanced":  # scikit-learn: n_samples / (n_classes * bincount)
        raw[seen] = n.sum() / (num_classes * ns)
    else:
        raise ValueError(method)
    if zero_count == "max":
        raw[~seen] = raw[seen].max()
    if normalize == "samples":
        raw = raw * n.sum() / (n * raw).sum()
    elif normalize == "classes":
        raw = raw * num_classes / raw.sum()
    return raw


def log_softmax(z):
    z = np.asarray(z, np.float64)
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def targets(labels, num_classes, label_smoothing=0.0):
    labels = np.asarray(labels)
    if labels.dtype.kind in "iu":
        y = np.zeros(labels.shape + (num_classes,))
        for idx in np.ndindex(labels.shape):
            if 0 <= labels[idx] < num_classes:
                y[idx + (labels[idx],)] = 1.0
    else:
        y = labels.astype(np.float64)
    return (1.0 - label_smoothing) * y + label_smoothing / num_classes


def softmax_cross_entropy(logits, labels, class_weights=None, label_smoothing=0.0):
    z = np.asarray(logits, np.float64)
    c = z.shape[-1]
    q = targets(labels, c, label_smoothing)
    w = np.ones(c) if class_weights is None else np.asarray(class_weights, np.float64)
    return -(w * q * log_softmax(z)).sum(-1)


def softmax_focal(logits, labels, gamma=2.0, class_weights=None, label_smoothing=0.0):
    z = np.asarray(logits, np.float64)
    c = z.shape[-1]
    q = targets(labels, c, label_smoothing)
    w = np.ones(c) if class_weights is None else np.asarray(class_weights, np.float64)
    log_p = log_softmax(z)
    p = np.exp(log_p)
    return -(w * q * (1.0 - p) ** gamma * log_p).sum(-1)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


def sigmoid_cross_entropy(logits, labels, class_weights=None, pos_weight=None):
    # PyTorch BCEWithLogitsLoss docs: l = -w [pw y log s(z) + (1 - y) log(1 - s(z))].
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels, np.float64)
    p = sigmoid(z)
    pw = 1.0 if pos_weight is None else np.asarray(pos_weight, np.float64)
    w = 1.0 if class_weights is None else np.asarray(class_weights, np.float64)
    return -w * (pw * y * np.log(p) + (1.0 - y) * np.log(1.0 - p))


def sigmoid_focal(logits, labels, gamma=2.0, alpha=0.25, class_weights=None):
    # Lin et al. 2017 / torchvision.ops.sigmoid_focal_loss.
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels, np.float64)
    p = sigmoid(z)
    ce = -(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))
    p_t = p * y + (1.0 - p) * (1.0 - y)
    loss = ce * (1.0 - p_t) ** gamma
    if alpha is not None:
        loss = (alpha * y + (1.0 - alpha) * (1.0 - y)) * loss
    if class_weights is not None:
        loss = loss * np.asarray(class_weights, np.float64)
    return loss


# ------------------------------------------------------------------------------------------
# Long-tail losses, written from the papers / the authors' PyTorch code, loop by loop.
# ------------------------------------------------------------------------------------------


def cross_entropy_ids(logits, ids, class_weights=None):
    """PyTorch F.cross_entropy(z, y, weight=w, reduction="none") = w_y * (-log softmax(z)_y)."""
    z = np.asarray(logits, np.float64)
    ids = np.asarray(ids)
    ls = log_softmax(z)
    out = np.empty(z.shape[:-1])
    for idx in np.ndindex(out.shape):
        w = 1.0 if class_weights is None else float(class_weights[ids[idx]])
        out[idx] = -w * ls[idx + (ids[idx],)]
    return out


def log_prior(counts):
    # Menon et al.: log pi_c = log(n_c / N); jbalance's documented rule for n_c = 0 (half the
    # smallest positive count; uniform if nothing was seen).
    n = np.asarray(counts, np.float64)
    if not (n > 0).any():
        return np.full(n.shape, -np.log(n.size))
    n_eff = np.where(n > 0, n, n[n > 0].min() / 2)
    return np.log(n_eff) - np.log(n.sum())


def logit_adjusted_ce(logits, labels, log_prior_, tau=1.0, class_weights=None,
                      label_smoothing=0.0):
    # Menon et al. eq. (10): CE on z + tau * log pi.
    z = np.asarray(logits, np.float64) + tau * np.asarray(log_prior_, np.float64)
    return softmax_cross_entropy(z, labels, class_weights, label_smoothing)


def ldam_loss(logits, ids, counts, max_m=0.5, s=30.0, weight=None):
    # kaidic/LDAM-DRW losses.py LDAMLoss: m = 1/n^(1/4) scaled so max is max_m;
    # x_m = x - m_y at the target, F.cross_entropy(s * output, target, weight=weight).
    n = np.asarray(counts, np.float64)
    m_list = 1.0 / np.sqrt(np.sqrt(n))
    m_list = m_list * (max_m / np.max(m_list))
    z = np.array(logits, np.float64)
    ids = np.asarray(ids)
    for i, y in enumerate(ids):
        z[i, y] -= m_list[y]
    return cross_entropy_ids(s * z, ids, weight)


def seesaw_weights(logits, ids, cum_samples, p=0.8, q=2.0, eps=1e-2):
    """mmdet's seesaw factors S [N, C] (mitigation times compensation), in probability space."""
    z = np.asarray(logits, np.float64)
    cum = np.asarray(cum_samples, np.float64)
    seesaw = np.ones_like(z)
    if p > 0:
        ratio = np.maximum(cum, 1)[None, :] / np.maximum(cum, 1)[:, None]
        index = (ratio < 1.0).astype(np.float64)
        sample_weights = ratio ** p * index + (1 - index)
        seesaw = seesaw * sample_weights[ids, :]
    if q > 0:
        scores = np.exp(log_softmax(z))
        self_scores = scores[np.arange(len(scores)), ids]
        score_matrix = scores / np.maximum(self_scores, eps)[:, None]
        index = (score_matrix > 1.0).astype(np.float64)
        seesaw = seesaw * (score_matrix ** q * index + (1 - index))
    return seesaw


def seesaw_ce(logits, ids, cum_samples, p=0.8, q=2.0, eps=1e-2):
    # mmdet seesaw_ce_loss, reduction="none", label_weights=None, literally (probability space).
    z = np.asarray(logits, np.float64)
    onehot = np.eye(z.shape[-1])[ids]
    z = z + np.log(seesaw_weights(z, ids, cum_samples, p, q, eps)) * (1 - onehot)
    return cross_entropy_ids(z, ids)


def seesaw_grad(logits, ids, cum_samples, p=0.8, q=2.0, eps=1e-2):
    """d sum(loss) / d logits with mmdet's factors detached: softmax(z + log S) - onehot."""
    z = np.asarray(logits, np.float64)
    onehot = np.eye(z.shape[-1])[ids]
    adjusted = z + np.log(seesaw_weights(z, ids, cum_samples, p, q, eps)) * (1 - onehot)
    return np.exp(log_softmax(adjusted)) - onehot


def effective_number_weights(counts, beta):
    return class_weights(counts, "effective_number", beta)


def asymmetric_timm(logits, labels, gamma_neg=4.0, gamma_pos=0.0, clip=0.05, eps=1e-8):
    # timm AsymmetricLossMultiLabel.forward, per element, before its final -sum.
    x = np.asarray(logits, np.float64)
    y = np.asarray(labels, np.float64)
    xs_pos = sigmoid(x)
    xs_neg = 1 - xs_pos
    if clip is not None and clip > 0:
        xs_neg = np.minimum(xs_neg + clip, 1.0)
    loss = y * np.log(np.maximum(xs_pos, eps)) + (1 - y) * np.log(np.maximum(xs_neg, eps))
    if gamma_neg > 0 or gamma_pos > 0:
        pt = xs_pos * y + xs_neg * (1 - y)
        loss = loss * np.power(1 - pt, gamma_pos * y + gamma_neg * (1 - y))
    return -loss


# ------------------------------------------------------------------------------------------
# Derivatives by central differences (float64), for the gradient references.
# ------------------------------------------------------------------------------------------


def numeric_grad(f, x, h=1e-6):
    """Gradient of a scalar function ``f`` at ``x``, one coordinate at a time."""
    x = np.asarray(x, np.float64)
    g = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        g[idx] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def elementwise_grad(f, x, h=1e-6):
    """Derivative of an elementwise function ``f`` (output i depends on input i only): the
    gradient of ``sum(f(x))``."""
    x = np.asarray(x, np.float64)
    return (np.asarray(f(x + h)) - np.asarray(f(x - h))) / (2 * h)


# ------------------------------------------------------------------------------------------
# Stable float64 forms for extreme logits (binary labels), value and derivative in closed
# form: p = sigmoid(z) and q = sigmoid(-z) each to full precision, log p = -softplus(-z).
# ------------------------------------------------------------------------------------------


def _pq(z):
    z = np.asarray(z, np.float64)
    e = np.exp(-np.abs(z))
    p = np.where(z >= 0, 1.0, e) / (1.0 + e)
    q = np.where(z >= 0, e, 1.0) / (1.0 + e)
    return z, p, q


def bce_stable(logits, y):
    """-[y log p + (1 - y) log(1 - p)] and its derivative p - y, for y in {0, 1}."""
    z, p, q = _pq(logits)
    value = np.where(y > 0.5, np.logaddexp(0.0, -z), np.logaddexp(0.0, z))
    return value, np.where(y > 0.5, -q, p)


def sigmoid_focal_stable(logits, y, gamma, alpha):
    """torchvision's focal loss and its derivative, for y in {0, 1}."""
    z, p, q = _pq(logits)
    pos = y > 0.5
    sp_neg, sp_pos = np.logaddexp(0.0, -z), np.logaddexp(0.0, z)  # -log p, -log q
    a = 1.0 if alpha is None else np.where(pos, alpha, 1 - alpha)
    # y = 1: a q^g (-log p), derivative -a q^g (g p (-log p) + q);
    # y = 0: a p^g (-log q), derivative  a p^g (g q (-log q) + p).
    value = a * np.where(pos, q ** gamma * sp_neg, p ** gamma * sp_pos)
    grad = a * np.where(pos, -(q ** gamma) * (gamma * p * sp_neg + q),
                        p ** gamma * (gamma * q * sp_pos + p))
    return value, grad


def asymmetric_stable(logits, y, gamma_neg=4.0, gamma_pos=0.0, clip=0.05, eps=1e-8):
    """timm's asymmetric loss and its derivative, for y in {0, 1}."""
    z, p, q = _pq(logits)
    pos = y > 0.5
    log_p = -np.logaddexp(0.0, -z)
    log_q = -np.logaddexp(0.0, z)
    # Positives: -q^gp log max(p, eps).
    lp = np.maximum(log_p, np.log(eps) if eps > 0 else -np.inf)
    v_pos = -(q ** gamma_pos) * lp
    g_pos = gamma_pos * p * q ** gamma_pos * lp - q ** gamma_pos * q * (log_p > np.log(eps)
                                                                         if eps > 0 else 1.0)
    # Negatives: -pm^gn log max(min(q + m, 1), eps), pm = max(p - m, 0).
    pm = np.maximum(p - clip, 0.0)
    ln_raw = np.log(np.minimum(q + clip, 1.0)) if clip > 0 else log_q
    live = ln_raw > (np.log(eps) if eps > 0 else -np.inf)
    ln = np.where(live, ln_raw, np.log(eps) if eps > 0 else 0.0)
    d_ln = np.where(live, -p * q / (q + clip) * (p > clip) if clip > 0 else -p, 0.0)
    w = np.where(gamma_neg > 0, pm ** gamma_neg, 1.0)
    dw = (gamma_neg * pm ** max(gamma_neg - 1, 0) * p * q * (p > clip) if gamma_neg > 0
          else 0.0 * p)
    v_neg = -w * ln
    g_neg = -(dw * ln + w * d_ln)
    return np.where(pos, v_pos, v_neg), np.where(pos, g_pos, g_neg)

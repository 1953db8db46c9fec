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

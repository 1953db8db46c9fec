r"""Classification metrics that do not hide the minority classes.

Accuracy on a long-tailed test set is dominated by the head classes: a model that never
predicts the rare classes can still score high (the *accuracy paradox*). The per-class and
macro-averaged metrics here make every class count equally.

Everything is a pure function of integer arrays with static shapes, so it runs under `jax.jit`
(``num_classes`` is static), inside an evaluation step, and on sharded inputs. The confusion
matrix is the sufficient statistic: sum it over batches with
`confusion_matrix` and turn the total into metrics with `report_from_confusion`.

Conventions (the same as scikit-learn's, so results can be checked against it):

* ``0 / 0 = 0``: a precision, recall or F1 whose denominator is zero is 0, as
  scikit-learn's ``zero_division=0`` -- never NaN.
* Macro averages are over **all** ``num_classes`` classes, including classes absent from the
  batch (scikit-learn with ``labels=range(num_classes)``): a class the model never sees and
  never predicts contributes 0 to ``macro_f1``.
* ``balanced_accuracy`` is the mean recall over the classes that *occur* in ``labels``
  (scikit-learn's ``balanced_accuracy_score``), so it differs from ``macro_recall`` exactly
  when some class has no support.
"""

from typing import Any

import jax.numpy as jnp
import numpy as np

from jbalance._src import checks
from jbalance._src.typing import Array, Bool, Int, Num


def _check_num_classes(num_classes: Any) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(
            "`num_classes` must be a Python int (it sets output shapes, so it is static under "
            f"`jax.jit`: pass it with `static_argnames`), got {type(num_classes).__name__}.")
    if num_classes < 1:
        raise ValueError(f"`num_classes` must be >= 1, got {num_classes}.")
    return int(num_classes)


def _check_where(where: Any, shape: tuple[int, ...], name: str = "where") -> Array | None:
    # The library-wide rule (checks.mask): bool or integer (non-zero = counts), broadcastable.
    return checks.mask(where, shape, "(one flag per example)", name)


def _float_dtype() -> Any:
    # The default floating dtype: float32, or float64 when `jax_enable_x64` is on.
    return jnp.result_type(float)


def _safe_div(num: Array, den: Array) -> Array:
    """``num / den`` with ``0 / 0 = 0`` (scikit-learn's ``zero_division=0``)."""
    dtype = _float_dtype()
    num = num.astype(dtype)
    den = den.astype(dtype)
    ok = den > 0
    # Double `where`: the division never sees a zero denominator.
    return jnp.where(ok, num / jnp.where(ok, den, jnp.ones_like(den)), jnp.zeros_like(num))


def _multiclass_inputs(labels: Any, predictions: Any, num_classes: int,
                       where: Any) -> tuple[Array, Array, Array | None]:
    labels = checks.check_array(labels, "labels")
    predictions = checks.check_array(predictions, "predictions")
    checks.check_integer(labels, "labels")
    checks.check_rank(labels, 1, "labels", "[num_examples] (class indices)")
    checks.check_rank(predictions, (1, 2), "predictions",
                      "[num_examples] (class indices) or [num_examples, num_classes] (scores)")
    if np.ndim(predictions) == 2:
        # Scores: the predicted class is the arg-max, as in an evaluation step.
        checks.check_shape(predictions, (None, num_classes), "predictions",
                           "[num_examples, num_classes] when it holds scores")
        checks.check_floating(predictions, "predictions")
        predictions = jnp.argmax(jnp.asarray(predictions), axis=-1)
    else:
        checks.check_integer(predictions, "predictions")
    checks.check_same_batch({"labels": labels, "predictions": predictions})
    where = _check_where(where, (np.shape(labels)[0],))
    labels, predictions = jnp.asarray(labels), jnp.asarray(predictions)
    for name, x in (("labels", labels), ("predictions", predictions)):
        checks.require((x >= 0) & (x < num_classes),
                       f"`{name}` must hold class indices in [0, {num_classes}); mask examples "
                       f"out with `where=` instead of using out-of-range ids.")
    return labels, predictions, where


def _multilabel_inputs(labels: Any, predictions: Any, num_classes: int,
                       where: Any) -> tuple[Array, Array, Array | None]:
    labels = checks.check_array(labels, "labels")
    predictions = checks.check_array(predictions, "predictions")
    for name, x in (("labels", labels), ("predictions", predictions)):
        dtype = jnp.result_type(x)
        if not (jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)
                or dtype == jnp.bool_):
            raise TypeError(f"Multi-label `{name}` must be a 0/1 matrix of bool, integer or "
                            f"floating dtype, got {dtype}.")
        checks.check_shape(x, (None, num_classes), name,
                           "[num_examples, num_classes] (a 0/1 indicator matrix)")
    checks.check_same_batch({"labels": labels, "predictions": predictions})
    n = np.shape(labels)[0]
    if where is not None and np.ndim(where) == 2:
        where = _check_where(where, (n, num_classes))
    else:
        where = _check_where(where, (n,))
        if where is not None:
            where = jnp.broadcast_to(where[:, None], (n, num_classes))
    # Integers: nonzero means "present"; floats: above 0.5; bool passes through unchanged.
    def as_bool(x: Any) -> Array:
        x = jnp.asarray(x)
        if x.dtype == jnp.bool_:
            return x
        if jnp.issubdtype(x.dtype, jnp.floating):
            # Float targets (as fed to a sigmoid loss) or probabilities: present above 0.5.
            return x > jnp.asarray(0.5, x.dtype)
        return x != jnp.zeros((), x.dtype)

    return as_bool(labels), as_bool(predictions), where


def confusion_matrix(labels: Num[" n *c"], predictions: Num[" n *k"], *, num_classes: int,
                     where: Bool[" n *c"] | None = None) -> Int[" *m"]:
    r"""Confusion matrix: multi-class ``[C, C]``, or per-class ``[C, 2, 2]`` for multi-label.

    The function dispatches on the rank of ``labels``:

    * **Multi-class** (``labels`` of shape ``[N]``, class indices): entry ``[i, j]`` counts the
      examples of true class ``i`` predicted as class ``j`` (rows are the truth, as in
      scikit-learn's ``confusion_matrix(labels, predictions, labels=range(num_classes))``).
      ``predictions`` are class indices ``[N]``, or scores ``[N, C]`` whose arg-max is taken.
    * **Multi-label** (``labels`` of shape ``[N, C]``, 0/1): one binary confusion matrix per
      class, ``[[tn, fp], [fn, tp]]``, as scikit-learn's ``multilabel_confusion_matrix``.
      ``predictions`` is a 0/1 matrix of the same shape (an integer entry counts as present
      when nonzero, a floating one when above 0.5, so float targets and probabilities work).

    .. math::
      M_{ij} = \sum_n [y_n = i]\,[\hat y_n = j]\,w_n

    Confusion matrices add up: summing the matrices of the batches of an evaluation set gives
    the matrix of the whole set, which `report_from_confusion` turns into metrics.

    Args:
      labels: True classes, integer ``[N]`` in ``[0, num_classes)``; or a 0/1 matrix
        ``[N, num_classes]`` (bool, integer or floating) for multi-label data.
      predictions: Predicted classes, integer ``[N]``, or floating scores ``[N, num_classes]``
        (multi-class); a 0/1 matrix ``[N, num_classes]`` (multi-label).
      num_classes: Number of classes ``C``. Static (it sets the output shape).
      where: Optional boolean (or integer, non-zero = True) mask ``[N]``: only examples where
        it is True are counted. For multi-label data a mask ``[N, num_classes]`` masks single
        labels.

    Returns:
      int32 ``[C, C]`` (multi-class) or ``[C, 2, 2]`` (multi-label) counts.

    Raises:
      TypeError: non-integer labels, non-static ``num_classes``, a real-valued mask.
      ValueError: wrong ranks or shapes, mismatched batch sizes, ``num_classes < 1``, a
        multi-class label or prediction outside ``[0, num_classes)`` (eagerly; under `jit`
        through `jbalance.checks.checked`, and otherwise such examples are not counted, never
        aliased onto a real cell).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jbalance import metrics
      >>> metrics.confusion_matrix(jnp.array([0, 0, 1, 2]), jnp.array([0, 1, 1, 1]),
      ...                          num_classes=3)
      Array([[1, 1, 0],
             [0, 1, 0],
             [0, 1, 0]], dtype=int32)

    .. versionadded:: 0.1.0
    """
    num_classes = _check_num_classes(num_classes)
    checks.check_rank(labels, (1, 2), "labels",
                      "[num_examples] (multi-class) or [num_examples, num_classes] (multi-label)")
    if np.ndim(labels) == 2:
        return multilabel_confusion_matrix(labels, predictions, num_classes=num_classes,
                                           where=where)
    y, p, mask = _multiclass_inputs(labels, predictions, num_classes, where)
    y = y.astype(jnp.int32)
    p = p.astype(jnp.int32)
    valid = (y >= 0) & (y < num_classes) & (p >= 0) & (p < num_classes)
    if mask is not None:
        valid = valid & mask
    # One flat histogram of (label, prediction) pairs; invalid pairs go to an extra bin that
    # is cut off, so out-of-range values never alias onto a real cell.
    overflow = num_classes * num_classes
    flat = jnp.where(valid, y * num_classes + p, jnp.full_like(y, overflow))
    hist = jnp.bincount(flat, length=overflow + 1)
    return hist[:overflow].reshape(num_classes, num_classes).astype(jnp.int32)


def multilabel_confusion_matrix(labels: Num[" n c"], predictions: Num[" n c"], *,
                                num_classes: int,
                                where: Bool[" n *c"] | None = None) -> Int[" c 2 2"]:
    r"""Per-class binary confusion matrices ``[C, 2, 2]`` for multi-label 0/1 matrices.

    Entry ``[c]`` is ``[[tn, fp], [fn, tp]]`` for class ``c`` treated as a binary problem
    (scikit-learn's ``multilabel_confusion_matrix`` layout). `confusion_matrix` calls this
    when ``labels`` has rank 2; call it directly to make the intent explicit.

    Args:
      labels: 0/1 matrix ``[N, num_classes]``: bool, integer (nonzero means present) or
        floating (above 0.5 means present, so probabilities are thresholded at 0.5).
      predictions: 0/1 matrix ``[N, num_classes]``, same rules.
      num_classes: Number of classes ``C``. Static.
      where: Optional boolean mask, ``[N]`` (per example) or ``[N, num_classes]`` (per label).

    Returns:
      int32 ``[C, 2, 2]``.

    Raises:
      TypeError: labels or predictions of a non-numeric dtype, a non-boolean mask.
      ValueError: shapes other than ``[N, num_classes]``, mismatched batch sizes.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jbalance import metrics
      >>> y = jnp.array([[1, 0], [1, 1]])
      >>> p = jnp.array([[1, 1], [0, 1]])
      >>> metrics.multilabel_confusion_matrix(y, p, num_classes=2)[0]
      Array([[0, 0],
             [1, 1]], dtype=int32)

    .. versionadded:: 0.1.0
    """
    num_classes = _check_num_classes(num_classes)
    y, p, mask = _multilabel_inputs(labels, predictions, num_classes, where)
    one = jnp.ones(y.shape, jnp.int32) if mask is None else mask.astype(jnp.int32)

    def count(cond: Array) -> Array:
        return jnp.sum(jnp.where(cond, one, jnp.zeros_like(one)), axis=0)

    tp, fp = count(y & p), count(~y & p)
    fn, tn = count(y & ~p), count(~y & ~p)
    return jnp.stack([jnp.stack([tn, fp], -1), jnp.stack([fn, tp], -1)], -2).astype(jnp.int32)


def _per_class(tp: Array, fp: Array, fn: Array) -> dict[str, Array]:
    precision = _safe_div(tp, tp + fp)
    recall = _safe_div(tp, tp + fn)
    # F1 from counts (scikit-learn >= 1.3): equals 2PR/(P+R) and is 0, not NaN, at P=R=0.
    f1 = _safe_div(2 * tp, 2 * tp + fp + fn)
    support = tp + fn
    tp_sum, fp_sum, fn_sum = jnp.sum(tp), jnp.sum(fp), jnp.sum(fn)
    present = support > 0
    dtype = _float_dtype()
    n_present = jnp.sum(present.astype(dtype))
    big = jnp.asarray(jnp.inf, dtype)
    worst = jnp.min(jnp.where(present, recall, big))
    return {
        "per_class_precision": precision,
        "per_class_recall": recall,
        "per_class_f1": f1,
        "per_class_support": support,
        "macro_precision": jnp.mean(precision),
        "macro_recall": jnp.mean(recall),
        "macro_f1": jnp.mean(f1),
        "micro_precision": _safe_div(tp_sum, tp_sum + fp_sum),
        "micro_recall": _safe_div(tp_sum, tp_sum + fn_sum),
        "micro_f1": _safe_div(2 * tp_sum, 2 * tp_sum + fp_sum + fn_sum),
        "weighted_f1": _safe_div(jnp.sum(f1 * support.astype(dtype)),
                                 jnp.sum(support)),
        "balanced_accuracy": _safe_div(jnp.sum(jnp.where(present, recall, 0.0).astype(dtype)),
                                       n_present),
        # The recall of the worst class that occurs at all (0 when none occurs).
        "worst_class_recall": jnp.where(n_present > 0, worst, jnp.zeros((), dtype)),
    }


def report_from_confusion(confusion: Int[" c *m"]) -> dict[str, Array]:
    r"""Metrics from a confusion matrix (e.g. one summed over the batches of an eval set).

    Args:
      confusion: A multi-class confusion matrix ``[C, C]`` (rows are the truth) or per-class
        binary matrices ``[C, 2, 2]`` as returned by `confusion_matrix`. Integer or floating
        (weighted counts).

    Returns:
      A dict as `classification_report`. For a multi-class matrix it holds every key; for a
      multi-label ``[C, 2, 2]`` stack it has no ``accuracy`` (exact-match accuracy needs the
      examples, not the per-class counts) but has ``hamming_accuracy``.

    Raises:
      ValueError: a shape other than ``[C, C]`` or ``[C, 2, 2]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jbalance import metrics
      >>> cm = jnp.array([[8, 2], [1, 1]])
      >>> r = metrics.report_from_confusion(cm)
      >>> print(f"{float(r['accuracy']):.4f} {float(r['balanced_accuracy']):.4f}")
      0.7500 0.6500

    .. versionadded:: 0.1.0
    """
    confusion = jnp.asarray(checks.check_array(confusion, "confusion"))
    shape = confusion.shape
    if len(shape) == 2 and shape[0] == shape[1]:
        tp = jnp.diagonal(confusion)
        fp = jnp.sum(confusion, axis=0) - tp
        fn = jnp.sum(confusion, axis=1) - tp
        out = _per_class(tp, fp, fn)
        out["accuracy"] = _safe_div(jnp.sum(tp), jnp.sum(confusion))
        out["confusion_matrix"] = confusion
        return out
    if len(shape) == 3 and shape[1:] == (2, 2):
        tn, fp = confusion[:, 0, 0], confusion[:, 0, 1]
        fn, tp = confusion[:, 1, 0], confusion[:, 1, 1]
        out = _per_class(tp, fp, fn)
        out["hamming_accuracy"] = _safe_div(jnp.sum(tp) + jnp.sum(tn), jnp.sum(confusion))
        out["confusion_matrix"] = confusion
        return out
    raise ValueError(
        f"`confusion` must have shape [C, C] (multi-class) or [C, 2, 2] (multi-label), got "
        f"{shape}. Build it with `jbalance.metrics.confusion_matrix`.")


def classification_report(labels: Num[" n *c"], predictions: Num[" n *k"], *, num_classes: int,
                          where: Bool[" n *c"] | None = None) -> dict[str, Array]:
    r"""Accuracy, balanced accuracy, per-class and macro/micro precision, recall and F1.

    Use it to evaluate a model trained on imbalanced data: ``accuracy`` (= ``micro_f1`` for
    multi-class data) is dominated by the frequent classes, while ``macro_f1``,
    ``balanced_accuracy`` and ``worst_class_recall`` weigh every class the same.

    Dispatches on the rank of ``labels`` like `confusion_matrix`: class indices ``[N]`` are
    multi-class, 0/1 matrices ``[N, C]`` are multi-label.

    .. math::
      P_c = \frac{tp_c}{tp_c + fp_c},\quad R_c = \frac{tp_c}{tp_c + fn_c},\quad
      F1_c = \frac{2\,tp_c}{2\,tp_c + fp_c + fn_c},\quad
      \text{macro-}F1 = \frac{1}{C}\sum_{c=0}^{C-1} F1_c,\quad
      \text{micro-}F1 = \frac{2\sum_c tp_c}{\sum_c (2\,tp_c + fp_c + fn_c)}

    Every ratio whose denominator is 0 is 0 (scikit-learn's ``zero_division=0``). Macro
    averages run over all ``num_classes`` classes, including those absent from the batch
    (scikit-learn with ``labels=range(num_classes)``).

    Args:
      labels: True classes, integer ``[N]`` in ``[0, num_classes)``; or a 0/1 matrix
        ``[N, num_classes]`` (multi-label).
      predictions: Predicted classes ``[N]`` or scores ``[N, num_classes]`` (multi-class,
        arg-max taken); a 0/1 matrix ``[N, num_classes]`` (multi-label).
      num_classes: Number of classes ``C``. Static.
      where: Optional boolean mask ``[N]`` of the examples to count (``[N, num_classes]``
        also accepted for multi-label data).

    Returns:
      A dict of arrays (a pytree, so it can leave a `jit`):

      * ``accuracy``: fraction of examples predicted exactly (multi-label: the exact-match
        "subset accuracy", as scikit-learn's ``accuracy_score``).
      * ``balanced_accuracy``: mean recall over classes with support > 0 (scikit-learn's
        ``balanced_accuracy_score`` for multi-class; for multi-label the same definition
        applied to the per-class recalls).
      * ``macro_f1``, ``macro_precision``, ``macro_recall``: unweighted means over all
        ``num_classes`` classes.
      * ``micro_f1``, ``micro_precision``, ``micro_recall``: from counts summed over classes
        (multi-class: all three equal ``accuracy`` when every value is in range).
      * ``weighted_f1``: per-class F1 weighted by support.
      * ``worst_class_recall``: the lowest recall among classes with support > 0.
      * ``per_class_precision``, ``per_class_recall``, ``per_class_f1`` (float ``[C]``),
        ``per_class_support`` (``[C]``, the dtype of the counts) and ``confusion_matrix``.
      * multi-label only: ``hamming_accuracy`` (fraction of correct label entries).

      Scalars and per-class values are in the default float dtype (float32 unless
      ``jax_enable_x64``).

    Raises:
      TypeError: non-integer multi-class labels, a non-static
        ``num_classes``.
      ValueError: wrong ranks or shapes, mismatched batch sizes, ``num_classes < 1``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jbalance import metrics
      >>> labels = jnp.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 2])
      >>> predictions = jnp.zeros(10, jnp.int32)   # always the majority class
      >>> r = metrics.classification_report(labels, predictions, num_classes=3)
      >>> print(f"{float(r['accuracy']):.4f} {float(r['macro_f1']):.4f}")
      0.8000 0.2963

    References:
      Pedregosa et al., `Scikit-learn: Machine Learning in Python
      <https://jmlr.org/papers/v12/pedregosa11a.html>`_, JMLR 2011 (the conventions followed).
      Brodersen et al., `The balanced accuracy and its posterior distribution
      <https://doi.org/10.1109/ICPR.2010.764>`_, ICPR 2010.

    .. versionadded:: 0.1.0
    """
    num_classes = _check_num_classes(num_classes)
    checks.check_rank(labels, (1, 2), "labels",
                      "[num_examples] (multi-class) or [num_examples, num_classes] (multi-label)")
    if np.ndim(labels) == 2:
        return multilabel_classification_report(labels, predictions, num_classes=num_classes,
                                                 where=where)
    cm = confusion_matrix(labels, predictions, num_classes=num_classes, where=where)
    return report_from_confusion(cm)


def multilabel_classification_report(labels: Num[" n c"], predictions: Num[" n c"], *,
                                     num_classes: int,
                                     where: Bool[" n *c"] | None = None) -> dict[str, Array]:
    r"""`classification_report` for multi-label 0/1 matrices ``[N, C]``.

    Each class is a binary problem; macro averages are over the ``num_classes`` classes,
    micro averages pool the counts of all classes (scikit-learn's ``average="macro"`` and
    ``average="micro"`` on indicator matrices, with ``zero_division=0``).

    Args:
      labels: 0/1 matrix ``[N, num_classes]`` (bool, integer, or floating: above 0.5 is 1).
      predictions: 0/1 matrix ``[N, num_classes]``, same rules.
      num_classes: Number of classes ``C``. Static.
      where: Optional boolean mask ``[N]`` or ``[N, num_classes]``.

    Returns:
      The dict described in `classification_report`; ``accuracy`` is the exact-match
      (subset) accuracy over the unmasked examples, ``hamming_accuracy`` the fraction of
      correct entries.

    Raises:
      TypeError: non-numeric labels or predictions, a non-boolean mask.
      ValueError: shapes other than ``[N, num_classes]``, mismatched batch sizes.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jbalance import metrics
      >>> y = jnp.array([[1, 0, 1], [0, 1, 0]])
      >>> p = jnp.array([[1, 0, 0], [0, 1, 0]])
      >>> r = metrics.multilabel_classification_report(y, p, num_classes=3)
      >>> print(f"{float(r['accuracy']):.4f} {float(r['micro_f1']):.4f}")
      0.5000 0.8000

    .. versionadded:: 0.1.0
    """
    num_classes = _check_num_classes(num_classes)
    cm = multilabel_confusion_matrix(labels, predictions, num_classes=num_classes, where=where)
    out = report_from_confusion(cm)
    y, p, mask = _multilabel_inputs(labels, predictions, num_classes, where)
    # Exact match over the labels that are not masked; an example is counted when any of
    # its labels is (with a per-example mask that is the example itself).
    agree = (y == p) if mask is None else ((y == p) | ~mask)
    counted = jnp.ones(y.shape[:1], jnp.bool_) if mask is None else jnp.any(mask, axis=1)
    exact = jnp.all(agree, axis=1) & counted
    out["accuracy"] = _safe_div(jnp.sum(exact.astype(jnp.int32)),
                                jnp.sum(counted.astype(jnp.int32)))
    return out

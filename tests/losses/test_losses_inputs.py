"""Input checks shared by every loss (jbalance/_src/losses/_inputs.py and checks.py): clear
errors naming the argument, at trace time for shapes and dtypes; value errors eagerly and,
with the same ranges and messages, under `checks.checked`; masked entries (NaN/inf
included) give 0 loss and 0 gradient; `ignore_index`."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from losses_data import (
    CE_AND_FOCAL,
    COUNTS,
    F32,
    LONG_TAIL,
    LONG_TAIL_AND_ASL,
    SOFTMAX,
    call,
    counts_kw,
    data,
    labels_for,
    long_tail_data,
)

from jbalance import checks, losses


@pytest.mark.parametrize("name", CE_AND_FOCAL)
def test_where_masks_values_and_gradients(name):
    z, ids, soft, binary, unit, w = data(15)
    labels = labels_for(name, ids, binary)
    mshape = z.shape[:-1] if name in SOFTMAX else z.shape
    mask = np.random.default_rng(0).random(mshape) < 0.5
    full = call(name, z, labels, class_weights=w)
    got = call(name, z, labels, class_weights=w, where=mask)
    np.testing.assert_array_equal(np.asarray(got)[~mask], 0)
    np.testing.assert_array_equal(np.asarray(got)[mask], np.asarray(full)[mask])
    g = jax.grad(lambda x: jnp.sum(call(name, x, labels, class_weights=w, where=mask)))(z)
    dead = ~mask if name not in SOFTMAX else np.broadcast_to(~mask[..., None], z.shape)
    np.testing.assert_array_equal(np.asarray(g)[dead], 0)
    # A mask with fewer dimensions broadcasts (here: mask whole examples of a sigmoid loss).
    row = np.array([True, False, True, True, False])
    row_mask = row if name in SOFTMAX else row[:, None]
    got = call(name, z, labels, where=row_mask)
    assert np.all(np.asarray(got)[~row] == 0)


@pytest.mark.parametrize("name", CE_AND_FOCAL)
def test_bad_inputs_of_ce_and_focal_losses(name):
    z, ids, soft, binary, unit, w = data(24)
    labels = labels_for(name, ids, binary)
    f = getattr(losses, name)
    with pytest.raises(TypeError, match="logits"):
        f(jnp.ones(z.shape, jnp.int32), labels)
    with pytest.raises(ValueError, match="labels"):
        f(z, labels[:-1])
    with pytest.raises(ValueError, match="class_weights"):
        f(z, labels, class_weights=-w)
    with pytest.raises(ValueError, match="class_weights"):
        f(z, labels, class_weights=w[:-1])
    with pytest.raises(TypeError, match="where"):
        f(z, labels, where=np.ones(z.shape[:-1] if name in SOFTMAX else z.shape, np.float32))
    if name in ("softmax_focal_loss", "sigmoid_focal_loss"):
        with pytest.raises(ValueError, match="gamma"):
            f(z, labels, gamma=-0.5)
    if name in SOFTMAX:
        for eps in (-0.1, 1.5):
            with pytest.raises(ValueError, match="label_smoothing"):
                f(z, labels, label_smoothing=eps)
        with pytest.raises(ValueError, match="labels"):  # one-hot given as integers
            f(z, np.eye(z.shape[-1], dtype=np.int32)[ids])
        with pytest.raises(ValueError, match="labels"):  # class ids given as floats
            f(z, ids.astype(np.float32))
    if name == "sigmoid_focal_loss":
        with pytest.raises(ValueError, match="alpha"):
            f(z, labels, alpha=1.5)
    if name == "weighted_sigmoid_cross_entropy":
        with pytest.raises(ValueError, match="pos_weight"):
            f(z, labels, pos_weight=-1.0)
    # Raised while tracing, before anything runs.
    with pytest.raises(ValueError, match="labels"):
        jax.jit(lambda x: f(x, labels[:-1]))(z)
    with pytest.raises(TypeError, match="logits"):
        jax.jit(lambda x: f(x.astype(jnp.int32), labels))(z)
    negative = jnp.asarray(-w)
    with pytest.raises(ValueError, match="class_weights"):
        jax.jit(lambda x: f(x, labels, class_weights=negative))(z)


@pytest.mark.parametrize("name", LONG_TAIL_AND_ASL)
def test_bad_inputs_of_long_tail_and_asymmetric_losses(name):
    z, ids, _, binary, *_ = long_tail_data(16)
    labels = labels_for(name, ids, binary)
    fn = getattr(losses, name)
    kw = counts_kw(name)
    with pytest.raises(TypeError, match="logits"):
        fn(z.astype(np.int32), labels, **kw)
    with pytest.raises(ValueError, match="labels"):
        fn(z, labels[:-1], **kw)
    if name == "asymmetric_loss":
        with pytest.raises(ValueError, match="labels"):
            fn(z, 2 * binary - 1)
        for key in ("gamma_pos", "gamma_neg", "clip", "eps"):
            with pytest.raises(ValueError, match=key):
                fn(z, labels, **{key: -1.0})
            with pytest.raises(ValueError, match=key):
                fn(z, labels, **{key: np.inf})
        return
    if name == "logit_adjusted_cross_entropy":
        lp = np.asarray(kw["log_prior"])
        with pytest.raises(ValueError, match="log_prior"):
            fn(z, labels, log_prior=lp[:-1])
        with pytest.raises(ValueError, match="log_prior"):
            fn(z, labels, log_prior=np.where(COUNTS > 0, 0.0, -np.inf))  # log 0
        with pytest.raises(ValueError, match="tau"):
            fn(z, labels, log_prior=lp, tau=np.nan)
    else:
        for bad in (-COUNTS, COUNTS[:-1], np.where(COUNTS > 100, np.inf, COUNTS)):
            with pytest.raises(ValueError, match="counts"):
                fn(z, labels, counts=bad)
    if name in ("ldam_loss", "seesaw_loss"):
        with pytest.raises(TypeError, match="labels"):
            fn(z, np.eye(6, dtype=np.float32)[ids], **kw)
    if name == "ldam_loss":
        with pytest.raises(ValueError, match="scale"):
            fn(z, labels, scale=0.0, **kw)
        with pytest.raises(ValueError, match="max_margin"):
            fn(z, labels, max_margin=-0.1, **kw)
    if name == "seesaw_loss":
        for key in ("p", "q"):
            with pytest.raises(ValueError, match=f"`{key}`"):
                fn(z, labels, **{key: -1.0}, **kw)
        with pytest.raises(ValueError, match="eps"):
            fn(z, labels, eps=0.0, **kw)
    with pytest.raises(ValueError, match="counts"):
        losses.log_prior(np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="counts"):
        losses.log_prior(np.ones((2, 2)))


@pytest.mark.parametrize("name", CE_AND_FOCAL)
def test_bad_label_values_raise(name):
    z, ids, soft, binary, unit, w = data(32)
    f = getattr(losses, name)
    if name in SOFTMAX:
        neg = soft.copy()
        neg[0] = [1.5, -0.5, 0.0, 0.0]  # sums to 1, negative: the loss went negative before
        bad_sets = [neg, np.where(np.arange(4) == 1, np.nan, soft).astype(np.float32),
                    np.where(np.arange(4) == 1, np.inf, soft).astype(np.float32)]
    else:
        bad_sets = [binary * 2, binary - 0.5, np.where(binary > 0, np.nan, 0).astype(np.float32)]
    for bad in bad_sets:
        with pytest.raises(ValueError, match="labels"):
            f(z, bad)
    # Masked rows may hold anything (e.g. NaN for "unknown").
    keep = np.ones(z.shape[:-1] if name in SOFTMAX else z.shape, bool)
    keep[0] = False
    nan_row = (soft if name in SOFTMAX else binary).copy()
    nan_row[0] = np.nan
    out = f(z, nan_row, where=keep)
    assert np.isfinite(np.asarray(out)).all() and np.all(np.asarray(out)[0] == 0)
    g = jax.grad(lambda x: jnp.sum(f(x, nan_row, where=keep)))(z)
    assert np.isfinite(np.asarray(g)).all()


@pytest.mark.parametrize("name", CE_AND_FOCAL)
def test_non_finite_weights_and_hyper_parameters_raise(name):
    z, ids, soft, binary, unit, w = data(33)
    labels = labels_for(name, ids, binary)
    f = getattr(losses, name)
    for bad in (np.inf, np.nan):
        with pytest.raises(ValueError, match="class_weights"):  # inf gave NaN losses before
            f(z, labels, class_weights=np.where(np.arange(4) == 0, bad, w))
    if name in ("softmax_focal_loss", "sigmoid_focal_loss"):
        with pytest.raises(ValueError, match="gamma"):
            f(z, labels, gamma=np.inf)
    if name == "weighted_sigmoid_cross_entropy":
        with pytest.raises(ValueError, match="pos_weight"):
            f(z, labels, pos_weight=np.inf)


@pytest.mark.parametrize("name", CE_AND_FOCAL)
def test_masked_nan_logits_give_zero_gradient_with_class_weights(name):
    z, ids, soft, binary, unit, w = data(34)
    labels = labels_for(name, ids, binary)
    z = z.copy()
    z[1, 1], z[3, 2] = np.nan, -np.inf
    keep = np.ones(z.shape[:-1], bool)
    keep[[1, 3]] = False
    where = keep if name in SOFTMAX else keep[:, None]
    f = getattr(losses, name)
    out = f(z, labels, class_weights=w, where=where)
    assert np.isfinite(np.asarray(out)).all() and np.all(np.asarray(out)[~keep] == 0)
    g = jax.grad(lambda x: jnp.sum(f(x, labels, class_weights=w, where=where)))(z)
    assert np.isfinite(np.asarray(g)).all()  # the NaN leaked into every row's update before
    np.testing.assert_array_equal(np.asarray(g)[~keep], 0)


@pytest.mark.parametrize("name", LONG_TAIL_AND_ASL)
def test_masked_nan_logits_give_zero_loss_and_gradient(name):
    z, ids, _, binary, *_ = long_tail_data(14)
    z = z.copy()
    z[1, 2], z[3, 0] = np.nan, np.inf
    labels = labels_for(name, ids, binary)
    keep = np.ones(z.shape[:-1] if name != "asymmetric_loss" else z.shape, bool)
    if name == "asymmetric_loss":
        keep[1, 2] = keep[3, 0] = False
    else:
        keep[[1, 3]] = False
    fn = getattr(losses, name)
    out = fn(z, labels, where=keep, **counts_kw(name))
    np.testing.assert_array_equal(np.asarray(out)[~keep], 0)
    assert np.isfinite(np.asarray(out)).all()
    g = jax.grad(lambda x: jnp.sum(fn(x, labels, where=keep, **counts_kw(name))))(z)
    assert np.isfinite(np.asarray(g)).all()
    if name == "asymmetric_loss":
        np.testing.assert_array_equal(np.asarray(g)[~keep], 0)
    else:
        np.testing.assert_array_equal(np.asarray(g)[[1, 3]], 0)


@pytest.mark.parametrize("name", LONG_TAIL)
def test_ignore_index_and_out_of_range(name):
    z, ids, *_ = long_tail_data(15)
    ids = ids.copy()
    ids[2] = -100
    fn = getattr(losses, name)
    with pytest.raises(ValueError, match="labels"):
        fn(z, ids, **counts_kw(name))
    out = fn(z, ids, ignore_index=-100, **counts_kw(name))
    assert out[2] == 0
    keep = ids != -100
    np.testing.assert_allclose(out, fn(z, np.where(keep, ids, 0), where=keep, **counts_kw(name)),
                               **F32)
    g = jax.grad(lambda x: jnp.sum(fn(x, ids, ignore_index=-100, **counts_kw(name))))(z)
    np.testing.assert_array_equal(np.asarray(g)[2], 0)


def test_checked_jit_reports_bad_labels_counts_and_weights():
    from jbalance import checks

    z, ids, soft, binary, *_ = data(35)
    ce = jax.jit(checks.checked(losses.weighted_softmax_cross_entropy))
    err, _ = ce(z, ids)
    assert err.get() is None
    err, _ = ce(z, jnp.asarray(ids).at[0].set(4))
    assert "labels" in err.get()
    with pytest.raises(Exception, match="labels"):
        err.throw()
    # Ignored ids pass; a plain (unchecked) jit gives NaN for an out-of-range id, never 0.
    ig = jax.jit(checks.checked(functools.partial(losses.weighted_softmax_cross_entropy,
                                                  ignore_index=-100)))
    err, out = ig(z, jnp.asarray(ids).at[0].set(-100))
    assert err.get() is None and out[0] == 0
    plain = jax.jit(losses.weighted_softmax_cross_entropy)(z, jnp.asarray(ids).at[0].set(4))
    assert np.isnan(plain[0]) and np.isfinite(plain[1:]).all()
    cw = jax.jit(checks.checked(lambda n: losses.class_weights(n)))
    assert cw(jnp.array([3, 1]))[0].get() is None
    assert "counts" in cw(jnp.array([3, -1]))[0].get()
    sg = jax.jit(checks.checked(losses.sigmoid_focal_loss))
    assert sg(z, binary)[0].get() is None
    assert "labels" in sg(z, binary + 0.5)[0].get()
    wl = jax.jit(checks.checked(
        lambda x, y, w: losses.weighted_softmax_cross_entropy(x, y, class_weights=w)))
    assert "class_weights" in wl(z, ids, -jnp.ones(4))[0].get()


def test_checked_jit_reports_bad_labels_and_counts_of_long_tail_losses():
    z, ids, *_ = long_tail_data(17)
    f = jax.jit(checks.checked(
        lambda x, y, n: losses.balanced_softmax_cross_entropy(x, y, counts=n)))
    err, _ = f(z, ids, COUNTS)
    assert err.get() is None
    err, _ = f(z, np.where(np.arange(5) == 0, 6, ids), COUNTS)
    assert err.get() is not None and "labels" in err.get()
    err, _ = f(z, ids, -COUNTS)
    assert err.get() is not None and "counts" in err.get()
    g = jax.jit(checks.checked(lambda x, y: losses.asymmetric_loss(x, y)))
    _, _, _, binary, *_ = long_tail_data(17)
    assert g(z, binary)[0].get() is None
    assert "labels" in g(z, binary + 1)[0].get()


# ------------------------------------------------------------------------------------------
# Hyper-parameter ranges: one rule (checks.check_hyper), the same eagerly and under checked.
# ------------------------------------------------------------------------------------------


def _hyper_fn(name, key):
    """``f(h)``: the public function called with hyper-parameter ``key`` set to ``h``."""
    z, ids, _, binary, *_ = long_tail_data(40)
    if name == "class_weights":
        return lambda h: losses.class_weights(COUNTS, method="effective_number", **{key: h})
    if name == "ldam_margins":
        return lambda h: losses.ldam_margins(COUNTS, **{key: h})
    if name == "deferred_reweighting":
        return lambda h: losses.deferred_reweighting(COUNTS, **{key: h})(3)
    labels = labels_for(name, ids, binary)
    fn = functools.partial(getattr(losses, name), **counts_kw(name))
    return lambda h: fn(z, labels, **{key: h})


HYPER_CASES = [
    ("class_weights", "beta", [-0.1, 1.0, np.nan]),
    ("deferred_reweighting", "start_step", [-1.0, np.inf]),
    ("weighted_softmax_cross_entropy", "label_smoothing", [-0.1, 1.5, np.nan]),
    ("softmax_focal_loss", "gamma", [-0.5, np.inf]),
    ("weighted_sigmoid_cross_entropy", "pos_weight", [-1.0, np.inf]),
    ("sigmoid_focal_loss", "gamma", [-0.5, np.nan]),
    ("sigmoid_focal_loss", "alpha", [-0.1, 1.5]),
    ("logit_adjusted_cross_entropy", "tau", [np.nan, -np.inf]),
    ("ldam_margins", "max_margin", [-0.1]),
    ("ldam_loss", "max_margin", [-0.1]),
    ("ldam_loss", "scale", [0.0, -1.0, np.inf]),
    ("seesaw_loss", "p", [-1.0]),
    ("seesaw_loss", "q", [-1.0, np.inf]),
    ("seesaw_loss", "eps", [0.0, -1e-3]),
    ("asymmetric_loss", "gamma_pos", [-1.0]),
    ("asymmetric_loss", "gamma_neg", [-1.0, np.nan]),
    ("asymmetric_loss", "clip", [-0.1, 1.5]),
    ("asymmetric_loss", "eps", [1.0, -1e-3]),
]


@pytest.mark.parametrize("name,key,bad", HYPER_CASES, ids=[f"{n}-{k}" for n, k, _ in HYPER_CASES])
def test_hyper_parameter_ranges_are_the_same_eagerly_and_checked(name, key, bad):
    f = _hyper_fn(name, key)
    good = f(0.5 if key not in ("start_step", "scale") else 2.0)  # a valid value runs
    assert np.isfinite(np.asarray(good)).all()
    for value in bad:
        with pytest.raises(ValueError, match=f"`{key}`") as eager:
            f(value)
        message = str(eager.value)
        traced = jnp.float32(value)
        # Both ways of wrapping: a checked jitted function, and a jitted checked function.
        for wrapped in (checks.checked(jax.jit(f)), jax.jit(checks.checked(f))):
            err, _ = wrapped(traced)
            assert err.get() is not None, (name, key, value)
            assert message in err.get(), (message, err.get())
        err, _ = jax.jit(checks.checked(f))(jnp.float32(0.5 if key != "scale" else 2.0))
        assert err.get() is None

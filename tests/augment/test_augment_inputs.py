"""Argument checks (jbalance._src.augment._checks): bad shapes, dtypes, options and
hyper-parameters raise naming the argument, and every traceable hyper-parameter has one
range, enforced alike eagerly and under `jbalance.checks.checked`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from augment_data import images

from jbalance import augment, checks


def _bad_cases():
    k = jax.random.key(0)
    x = jnp.zeros((4, 8, 8, 3))
    y = jnp.eye(4)
    bx, c, v = jnp.zeros((4, 2, 4)), jnp.zeros((4, 2), jnp.int32), jnp.ones((4, 2), bool)
    return [
        ("images", lambda: augment.mixup(k, x[0], y), ValueError),
        ("labels", lambda: augment.mixup(k, x, y[0]), ValueError),
        ("labels", lambda: augment.cutmix(k, x, y[:3]), ValueError),
        ("labels", lambda: augment.mixup(k, x, jnp.zeros((4, 4), jnp.int32)), TypeError),
        ("alpha", lambda: augment.mixup(k, x, y, alpha=0.0), ValueError),
        ("alpha", lambda: augment.cutmix(k, x, y, alpha=-1.0), ValueError),
        ("alpha", lambda: augment.mixup_boxes(k, x, bx, c, v, alpha=0), ValueError),
        ("mode", lambda: augment.mixup(k, x, y, mode="pairs"), ValueError),
        ("tiles", lambda: augment.mosaic(k, x, y, tiles=3), ValueError),
        ("tiles", lambda: augment.mosaic_boxes(k, x, bx, c, v, tiles=9), ValueError),
        ("tiles", lambda: augment.mosaic_one(k, x, y, tiles=2), ValueError),
        ("images", lambda: augment.mosaic(k, x[..., 0], y), ValueError),
        ("boxes", lambda: augment.mosaic_boxes(k, x, bx[..., :3], c, v), ValueError),
        ("boxes", lambda: augment.mosaic_boxes(k, x, bx[:3], c[:3], v[:3]), ValueError),
        ("classes", lambda: augment.mosaic_boxes(k, x, bx, c[:, :1], v), ValueError),
        ("valid", lambda: augment.mosaic_boxes(k, x, bx, c, c), TypeError),
        ("output_size", lambda: augment.mosaic_boxes(k, x, bx, c, v, output_size=(8,)),
         ValueError),
        ("partner_weights", lambda: augment.mixup(k, x, y, partner_weights=jnp.ones(3)),
         ValueError),
        ("partner_weights", lambda: augment.mosaic(k, x, y, partner_weights=-jnp.ones(4)),
         ValueError),
        ("partner_image", lambda: augment.mixup_one(k, x[0], y[0], x[0, :4], y[1]), ValueError),
        ("min_visible", lambda: augment.mosaic_boxes(k, x, bx, c, v, min_visible=2.0),
         ValueError),
        ("placement", lambda: augment.mosaic(k, x, y, placement="random"), ValueError),
        ("in_place", lambda: augment.mixup(k, x, y, in_place="yes"), TypeError),
        ("in_place", lambda: augment.mixup_boxes(k, x, bx, c, v, in_place=1), TypeError),
    ]


@pytest.mark.parametrize("name,call,error", _bad_cases(),
                         ids=[f"{i}-{c[0]}" for i, c in enumerate(_bad_cases())])
def test_bad_inputs_raise_naming_the_argument(name, call, error):
    with pytest.raises(error, match=name):
        call()


def _bad_hyperparameters():
    k = jax.random.key(0)
    x = jnp.zeros((4, 8, 8, 3))
    xu = jnp.zeros((4, 8, 8, 3), jnp.uint8)
    y = jnp.eye(4)
    bx, c, v = jnp.ones((4, 2, 4)), jnp.zeros((4, 2), jnp.int32), jnp.ones((4, 2), bool)
    counts = jnp.array([5.0, 4.0, 3.0, 1.0])
    return [
        ("alpha", lambda: augment.mixup(k, x, y, alpha=float("inf")), ValueError),
        ("alpha", lambda: augment.cutmix(k, x, y, alpha=float("inf")), ValueError),
        ("alpha", lambda: augment.cutmix(k, x, y, alpha=float("nan")), ValueError),
        ("alpha", lambda: augment.mixup_boxes(k, x, bx, c, v, alpha=jnp.inf), ValueError),
        ("alpha", lambda: augment.remix(k, x, y, counts=counts, alpha=jnp.inf), ValueError),
        ("fill_value", lambda: augment.mosaic_boxes(k, xu, bx, c, v, fill_value=300),
         ValueError),
        ("fill_value", lambda: augment.mosaic_boxes(k, xu, bx, c, v, fill_value=-1), ValueError),
        ("fill_value", lambda: augment.mosaic_boxes_one(k, xu, bx, c, v, fill_value=256.0),
         ValueError),
        ("fill_value", lambda: augment.mosaic_boxes(k, x, bx, c, v, fill_value=jnp.nan),
         ValueError),
        ("tiles", lambda: augment.mosaic(k, x, y, tiles=2.0), ValueError),
        ("tiles", lambda: augment.mosaic_boxes(k, x, bx, c, v, tiles=4.0), ValueError),
        ("kappa", lambda: augment.remix(k, x, y, counts=counts, kappa=0.5), ValueError),
        ("kappa", lambda: augment.remix(k, x, y, counts=counts, kappa=jnp.inf), ValueError),
        ("tau", lambda: augment.remix(k, x, y, counts=counts, tau=1.5), ValueError),
        ("tau", lambda: augment.remix(k, x, y, counts=counts, tau=-0.1), ValueError),
        ("counts", lambda: augment.remix(k, x, y, counts=-counts), ValueError),
        ("counts", lambda: augment.remix(k, x, y, counts=counts[:3]), ValueError),
        ("counts", lambda: augment.remix(k, x, y, counts=counts.at[0].set(jnp.nan)),
         ValueError),
        ("box_format", lambda: augment.mosaic_boxes(k, x, bx, c, v, box_format="yolo"),
         ValueError),
        ("box_format", lambda: augment.mixup_boxes(k, x, bx, c, v, box_format="xyxy_n"),
         ValueError),
    ]


@pytest.mark.parametrize("name,call,error", _bad_hyperparameters(),
                         ids=[f"{i}-{c[0]}" for i, c in enumerate(_bad_hyperparameters())])
def test_bad_hyperparameters_raise_naming_the_argument(name, call, error):
    with pytest.raises(error, match=name):
        call()


# ---------------------------------------------------------------------------------------------
# One range per hyper-parameter: the eager check and the checked one accept and refuse the
# same values, at the edges of each range.

_X = np.zeros((2, 8, 8, 1), np.float32)
_XU = np.zeros((2, 8, 8, 1), np.uint8)
_Y = np.eye(2, dtype=np.float32)
_BOXES = (np.ones((2, 1, 4), np.float32), np.zeros((2, 1), np.int32), np.ones((2, 1), bool))
_DEFAULTS = {"alpha": 1.0, "kappa": 3.0, "tau": 0.5, "min_size": 2.0, "min_visible": 0.1,
             "centre_lo": 0.25, "centre_hi": 0.75, "fill_value": 114}


def _remix(alpha, kappa, tau, **_):
    return augment.remix(jax.random.key(0), _X, _Y, counts=np.ones(2, np.float32),
                         alpha=alpha, kappa=kappa, tau=tau)


def _mosaic_boxes(alpha, min_size, min_visible, centre_lo, centre_hi, fill_value, **_):
    del alpha
    return augment.mosaic_boxes(jax.random.key(0), _XU, *_BOXES, min_size=min_size,
                                min_visible=min_visible, centre=(centre_lo, centre_hi),
                                fill_value=fill_value)


def _cutmix(alpha, **_):
    return augment.cutmix(jax.random.key(0), _X, _Y, alpha=alpha)


_CHECKED = {fn: jax.jit(checks.checked(lambda h, fn=fn: fn(**h)))
            for fn in (_remix, _mosaic_boxes, _cutmix)}

RANGES = [  # (function, hyper-parameter, value, accepted)
    (_cutmix, "alpha", 1e-6, True), (_cutmix, "alpha", 0.0, False),
    (_cutmix, "alpha", -1.0, False), (_cutmix, "alpha", float("inf"), False),
    (_cutmix, "alpha", float("nan"), False),
    (_remix, "kappa", 1.0, True), (_remix, "kappa", 0.999, False),
    (_remix, "kappa", float("inf"), False),
    (_remix, "tau", 0.0, True), (_remix, "tau", 1.0, True), (_remix, "tau", 1.001, False),
    (_remix, "tau", -0.001, False),
    (_mosaic_boxes, "min_size", 0.0, True), (_mosaic_boxes, "min_size", -0.5, False),
    (_mosaic_boxes, "min_size", float("nan"), False),
    (_mosaic_boxes, "min_visible", 1.0, True), (_mosaic_boxes, "min_visible", 1.01, False),
    (_mosaic_boxes, "centre_lo", 0.0, True), (_mosaic_boxes, "centre_lo", -0.1, False),
    (_mosaic_boxes, "centre_hi", 1.0, True), (_mosaic_boxes, "centre_hi", 1.1, False),
    (_mosaic_boxes, "centre_lo", 0.8, False),  # low > high
    (_mosaic_boxes, "fill_value", 255, True), (_mosaic_boxes, "fill_value", 256, False),
    (_mosaic_boxes, "fill_value", -1, False),
]


@pytest.mark.parametrize("fn,name,value,accepted", RANGES,
                         ids=[f"{n}={v}" for _, n, v, _ in RANGES])
def test_eager_and_checked_checks_enforce_one_range(fn, name, value, accepted):
    hyper = {**_DEFAULTS, name: value}
    word = "centre" if name.startswith("centre") else name
    if accepted:
        fn(**hyper)
    else:
        with pytest.raises(ValueError, match=word):
            fn(**hyper)
    # Under `jit`, the same values reach the code as tracers: float32 and int32 arrays.
    traced = {k: np.asarray(v, np.int32 if isinstance(v, int) else np.float32)
              for k, v in hyper.items()}
    err, _ = _CHECKED[fn](traced)
    if accepted:
        assert err.get() is None, err.get()
    else:
        assert err.get() is not None and word in err.get()


def test_value_checks_hold_under_jit_through_checked(getkey):
    x, y = images(getkey(), 4), jnp.eye(4)
    f = jax.jit(checks.checked(lambda a, kp: augment.remix(jax.random.key(0), x, y,
                                                           counts=jnp.ones(4), alpha=a,
                                                           kappa=kp)))
    err, _ = f(jnp.float32(1.0), jnp.float32(3.0))
    assert err.get() is None
    for a, kp, what in ((jnp.inf, 3.0, "alpha"), (1.0, 0.5, "kappa"), (-1.0, 3.0, "alpha")):
        err, _ = f(jnp.float32(a), jnp.float32(kp))
        assert err.get() is not None and what in err.get()
    g = jax.jit(checks.checked(lambda fv: augment.mosaic_boxes(
            jax.random.key(0), jnp.zeros((2, 8, 8, 1), jnp.uint8), jnp.ones((2, 1, 4)),
            jnp.zeros((2, 1), jnp.int32), jnp.ones((2, 1), bool), fill_value=fv)))
    assert g(jnp.int32(114))[0].get() is None
    assert "fill_value" in g(jnp.int32(300))[0].get()

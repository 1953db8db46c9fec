"""Shared helpers of the augmentation tests: test data, the documented draws, jitted calls.

The batch functions derive keys and partners as the `jbalance.augment` module docstring
says; `derive` repeats that derivation, and `lambda_of`, `cutmix_draws` and `mosaic_draws`
repeat the documented draws from those keys with `jax.random` directly, so the NumPy
references in tests/reference_augment.py get the same random inputs without calling the
code under test.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference_augment import (
    cutmix_box_from_draws,
    mosaic_regions,
    np_cutmix,
    np_mosaic,
    source_origins,
)

from jbalance import augment

# ---------------------------------------------------------------------------------------------
# Jitted calls, with hyper-parameters concrete or traced.


def _hashable(v):
    if isinstance(v, (np.ndarray, jax.Array)):
        return ("array", tuple(np.asarray(v).ravel().tolist()), np.asarray(v).shape,
                str(np.asarray(v).dtype))
    if isinstance(v, (tuple, list)):
        return ("seq", tuple(_hashable(x) for x in v))
    return ("value", v)


def _unhash(v):
    kind = v[0]
    if kind == "array":
        return np.asarray(v[1], dtype=v[3]).reshape(v[2])
    if kind == "seq":
        return tuple(_unhash(x) for x in v[1])
    return v[1]


@functools.cache
def _jitted(fn, options):
    return jax.jit(functools.partial(fn, **{k: _unhash(v) for k, v in options}))


def J(fn, **options):
    """``fn`` under `jax.jit` with its keyword options closed over (concrete inside the
    trace: the eager value checks run), compiled once per distinct set of options."""
    if options.get("mode") == "elem":  # the default: share the compilation
        del options["mode"]
    return _jitted(fn, tuple(sorted((k, _hashable(v)) for k, v in options.items())))


def _as_traced(v):
    if v is None:
        return None
    if isinstance(v, (tuple, list)):
        return tuple(_as_traced(x) for x in v)
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return jnp.int32(v)
    if isinstance(v, float):
        return jnp.float32(v)
    return jnp.asarray(v)


@functools.cache
def _jitted_traced(fn, static):
    static = dict(static)
    return jax.jit(lambda key, hyper, *arrays: fn(key, *arrays, **static, **hyper))


HOWS = ("eager", "concrete", "traced")


def cases(rows):
    """Parametrize rows; an eager row (op-by-op dispatch compiles every primitive of the
    function separately) runs in the full suite only."""
    return [pytest.param(*r, marks=pytest.mark.slow) if "eager" in r else r for r in rows]


def call(fn, key, *arrays, how, static=None, **hyper):
    """``fn(key, *arrays, **static, **hyper)``, called the three ways a caller can.

    ``static`` (modes, sizes, ``in_place``) is passed as is. The hyper-parameters
    (``alpha``, ``partner_weights``, ``centre``, ``fill_value``, ...) are concrete values in
    an eager call (``how="eager"``) and under `jax.jit` when closed over
    (``"concrete"``), and tracers when passed as `jit` arguments (``"traced"``).
    """
    static = dict(static or {})
    if how == "eager":
        return fn(key, *arrays, **static, **hyper)
    if how == "concrete":
        return J(fn, **static, **hyper)(key, *arrays)
    assert how == "traced", how
    fn_t = _jitted_traced(fn, tuple(sorted(static.items())))
    return fn_t(key, {k: _as_traced(v) for k, v in hyper.items()}, *arrays)


# ---------------------------------------------------------------------------------------------
# Keys, partners and the documented draws.

_beta = jax.jit(jax.random.beta)


def derive(key, b, *, mode="elem", num_partners=1, partner_weights=None):
    """Per-example keys and partners exactly as jbalance.augment documents them."""
    key_partners, key_examples = jax.random.split(key)
    fn = J(augment.partner_indices, batch_size=b, num_partners=num_partners)
    partners = fn(key_partners, partner_weights=partner_weights)
    if mode == "batch":
        keys = jnp.broadcast_to(key_examples, (b,))
    else:
        keys = jax.random.split(key_examples, b)
    return keys, np.asarray(partners)


def lambda_of(key, alpha):
    """The ``Beta(alpha, alpha)`` draw of a ``*_one`` function from its key (float32)."""
    return np.float32(_beta(key, alpha, alpha))


@functools.partial(jax.jit, static_argnums=(2, 3))
def _cutmix_draws(key, alpha, h, w):
    k_lam, k_y, k_x = jax.random.split(key, 3)
    lam = jax.random.beta(k_lam, alpha, alpha, dtype=jnp.float32)
    cy = jax.random.randint(k_y, (), 0, h, dtype=jnp.int32)
    cx = jax.random.randint(k_x, (), 0, w, dtype=jnp.int32)
    return lam, cy, cx


def cutmix_draws(key, alpha, h, w):
    """``(lam, cy, cx)`` as `cutmix_box` documents: Beta lambda, uniform centre pixel."""
    lam, cy, cx = _cutmix_draws(key, jnp.float32(alpha), int(h), int(w))
    return np.float32(lam), int(cy), int(cx)


@jax.jit
def _mosaic_draws(key, lo, hi):
    k_y, k_x, k_o = jax.random.split(key, 3)
    fy = jax.random.uniform(k_y, (), jnp.float32, lo, hi)
    fx = jax.random.uniform(k_x, (), jnp.float32, lo, hi)
    return fy, fx, jax.random.bernoulli(k_o)


def mosaic_draws(key, out_hw, centre=(0.25, 0.75)):
    """``(cy, cx, left_right)`` as `mosaic_layout` documents: the centre uniform in
    ``centre`` (fractions of the output, floored to a pixel), a fair coin for 2 tiles."""
    fy, fx, lr = _mosaic_draws(key, jnp.float32(centre[0]), jnp.float32(centre[1]))
    oh, ow = out_hw
    cy = min(max(int(np.floor(np.float32(fy) * np.float32(oh))), 0), oh)
    cx = min(max(int(np.floor(np.float32(fx) * np.float32(ow))), 0), ow)
    return cy, cx, bool(lr)


# ---------------------------------------------------------------------------------------------
# Test data (made with NumPy: fast).


def rng_of(key):
    """A NumPy generator seeded from a JAX key."""
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).astype(np.uint64))


def images(key, b, h=12, w=10, c=3, dtype=jnp.float32):
    rng = rng_of(key)
    if dtype == jnp.uint8:
        return jnp.asarray(rng.integers(0, 256, (b, h, w, c), dtype=np.uint8))
    if dtype == jnp.int32:
        return jnp.asarray(rng.integers(-1000, 1000, (b, h, w, c), dtype=np.int32))
    return jnp.asarray(rng.random((b, h, w, c), dtype=np.float32)).astype(dtype)


def soft_labels(key, b, k=4):
    z = rng_of(key).normal(size=(b, k)) * 2
    p = np.exp(z - z.max(-1, keepdims=True))
    return jnp.asarray((p / p.sum(-1, keepdims=True)).astype(np.float32))


def box_data(key, b, m=3, h=12, w=10):
    """``(boxes [b, m, 4] xyxy pixels, classes [b, m], valid [b, m])``, ~80% valid."""
    rng = rng_of(key)
    xy = rng.uniform(0.0, 1.0, (b, m, 2)) * np.array([w - 3.0, h - 3.0])
    wh = rng.uniform(0.0, 1.0, (b, m, 2)) * np.array([w / 2 - 1, h / 2 - 1]) + 1.0
    boxes = np.concatenate([xy, np.minimum(xy + wh, np.array([w, h]))], -1).astype(np.float32)
    classes = rng.integers(0, 7, (b, m)).astype(np.int32)
    valid = rng.random((b, m)) < 0.8
    return jnp.asarray(boxes), jnp.asarray(classes), jnp.asarray(valid)


def weights_for(b, seed=0):
    """Partner weights with zeros (those examples are never partners) and unequal rest."""
    w = np.random.default_rng(seed).uniform(0.5, 3.0, b).astype(np.float32)
    if b > 2:
        w[1] = 0.0
    return w


# ---------------------------------------------------------------------------------------------
# CutMix and Mosaic: the whole expected batch, one example at a time with NumPy.


def expected_cutmix(key, x, y, alpha, *, mode="elem", partner_weights=None):
    """The batch CutMix, one example at a time, from the documented draws."""
    b, h, w = x.shape[:3]
    keys, partners = derive(key, b, mode=mode, partner_weights=partner_weights)
    xn, yn = np.asarray(x), np.asarray(y)
    out_x, out_y, boxes = [], [], []
    for i in range(b):
        lam, cy, cx = cutmix_draws(keys[i], alpha, h, w)
        box = cutmix_box_from_draws(lam, cy, cx, h, w)
        p = partners[i, 0]
        want_x, want_y = np_cutmix(xn[i], yn[i], xn[p], yn[p], box)
        out_x.append(want_x)
        out_y.append(want_y)
        boxes.append(box)
    return np.stack(out_x), np.stack(out_y), boxes, partners



def mosaic_reference(key, images_, tiles, out_hw, *, placement="corner", fill=0,
                     partner_weights=None, centre=(0.25, 0.75)):
    """``(canvases, regions, origins, sources)`` of the batch Mosaic, from the draws."""
    images_ = np.asarray(images_)
    b, h, w = images_.shape[:3]
    keys, partners = derive(key, b, num_partners=tiles - 1, partner_weights=partner_weights)
    outs, all_regions, all_origins, all_sources = [], [], [], []
    for i in range(b):
        cy, cx, left_right = mosaic_draws(keys[i], out_hw, centre)
        regions = mosaic_regions(tiles, (cy, cx), out_hw, left_right)
        origins = source_origins(tiles, (cy, cx), out_hw, (h, w), left_right, placement)
        sources = [i, *partners[i]]
        outs.append(np_mosaic(images_[sources], regions, origins, out_hw, fill=fill))
        all_regions.append(regions)
        all_origins.append(origins)
        all_sources.append(sources)
    return np.stack(outs), all_regions, all_origins, all_sources


def uses_windows(regions, origins, src_hw, out_hw, windows=4):
    """Whether a layout meets the documented condition of Mosaic's window-copy kernel:
    every source's footprint on the output lies inside its tile and is at least
    ``1/windows`` of the source side. Tests use it to show that their cases take the kernel
    they mean to pin."""
    h, w = src_hw
    oh, ow = out_hw
    wy = -(-min(h, oh) // min(windows, h, oh))
    wx = -(-min(w, ow) // min(windows, w, ow))
    for (y1, y2, x1, x2), (dy, dx) in zip(regions, origins):
        fy1, fy2 = max(dy, 0), min(dy + h, oh)
        fx1, fx2 = max(dx, 0), min(dx + w, ow)
        if (max(y1, dy), min(y2, dy + h), max(x1, dx), min(x2, dx + w)) != (fy1, fy2, fx1, fx2):
            return False
        if fy2 - fy1 < wy or fx2 - fx1 < wx:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Shape annotations of the result fields.


def spec_of(annotation):
    """The ``(spec, kind)`` of a jbalance shape annotation (``Float[" n c"]``)."""
    shape = getattr(annotation, "shape", None)  # run-time annotation objects
    if shape is None:  # ``Annotated[ArrayLike, Shape(...)]``
        shape = next(m for m in getattr(annotation, "__metadata__", ()) if hasattr(m, "spec"))
    return shape.spec, shape.kind


_KINDS = {"float": lambda d: jnp.issubdtype(d, jnp.floating),
          "int": lambda d: jnp.issubdtype(d, jnp.integer),
          "bool": lambda d: d == jnp.bool_,
          "num": lambda d: jnp.issubdtype(d, jnp.number),
          "any": lambda d: True}


def assert_fits(value, annotation, memo, where):
    """``value`` has the dtype kind and shape of ``annotation``; each axis name is bound to
    one size in ``memo`` (``*name`` to a tuple of sizes)."""
    spec, kind = spec_of(annotation)
    assert _KINDS[kind](value.dtype), f"{where}: dtype {value.dtype} is not {kind}"
    tokens, shape = spec.split(), tuple(value.shape)
    star = [i for i, t in enumerate(tokens) if t.startswith("*")]
    if star:
        i = star[0]
        n_tail = len(tokens) - i - 1
        assert len(shape) >= len(tokens) - 1, f"{where}: {shape} vs {spec!r}"
        pairs = list(zip(tokens[:i], shape[:i])) + [(tokens[i][1:], shape[i:len(shape) - n_tail])]
        pairs += list(zip(tokens[i + 1:], shape[len(shape) - n_tail:]))
    else:
        assert len(shape) == len(tokens), f"{where}: {shape} vs {spec!r}"
        pairs = list(zip(tokens, shape))
    for token, size in pairs:
        if token.isdigit():
            assert size == int(token), f"{where}: {shape} vs {spec!r}"
        elif token != "_":
            assert memo.setdefault(token, size) == size, f"{where}: `{token}` is {size}, " \
                                                          f"elsewhere {memo[token]}"

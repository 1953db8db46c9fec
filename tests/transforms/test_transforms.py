"""One transform matrix over every public loss and augmentation (chex's idea, without chex).

Each entry of `REGISTRY` names a public function (looked up by its public name, so a
function still on its way is skipped until it is in its module's ``__all__``), binds its
options, and makes small example inputs. Every entry runs:

* ``jax.jit(f)`` equals ``f`` (eager), and ``jax.vmap(f)`` equals a Python loop;
* ``jax.eval_shape`` gives the shapes and dtypes of the real output;
* traces once: a Python counter inside a jitted wrapper, traced twice with the same shapes
  but other data and other (traced) numeric hyper-parameters;
* bfloat16, float16 and float64 inputs give outputs (and gradients) of that dtype, abstractly
  (eval_shape); losses also when run: finite, and float64 agrees with float32;
* losses: gradients finite, also at logits beyond +-100, and ``check_grads`` of order 2 in
  forward and reverse mode (float64);
* ``shard_map`` over the 8-device mesh equals the unsharded computation.

Adding a function is one entry below; `test_registry_covers_every_public_name` fails until
it is added (or exempted in `EXEMPT`, with the reason).
"""

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec
from jax.test_util import check_grads

from jbalance import augment, losses

# Sizes: N examples (a multiple of the 8 devices), C classes, H x W images, M boxes.
N, C, H, W, M = 16, 4, 8, 8, 3
COUNTS = np.array([40.0, 10.0, 4.0, 1.0], np.float32)
# jit and vmap reorder float32 arithmetic (fusion, batched kernels): a few ulps.
F32 = dict(rtol=2e-6, atol=2e-6)
# float64 against float32 on the same inputs: float32 rounding of values of order 10.
F64_VS_F32 = dict(rtol=1e-4, atol=1e-4)

MODULES = {"losses": losses, "augment": augment}

# Public names that are not losses or augmentations: they turn counts into weights, priors
# or schedules, or reduce losses. Their own tests (tests/losses/) cover jit and dtypes.
EXEMPT = {
    "losses.class_weights": "counts -> per-class weights (a dataset statistic, not a loss)",
    "losses.log_prior": "counts -> log class prior (a dataset statistic)",
    "losses.ldam_margins": "counts -> LDAM margins (a dataset statistic)",
    "losses.deferred_reweighting": "returns a schedule (a function of the step), not arrays",
    "losses.example_weights": "gathers per-class weights for labels (no logits)",
    "losses.update_counts": "running class counts (an accumulator, no logits)",
    "losses.reduce_loss": "reduces losses already computed (mean/sum bookkeeping)",
    "losses.pixel_class_weights": "pixel counts -> per-class weights (a dataset statistic)",
}


class Case(NamedTuple):
    module: str
    name: str
    bind: Callable[[Callable[..., Any]], Callable[..., Any]]  # public fn -> f(*arrays, **hyper)
    make: Callable[[int, Any], tuple[Any, ...]]  # (seed, float dtype) -> the arrays
    kind: str  # "loss", "batch" (key first, a batch of examples) or "one" (one example)
    hyper: tuple[dict[str, Any], dict[str, Any]] = ({}, {})  # two sets of numeric options
    batch_args: tuple[int, ...] = ()  # arrays whose axis 0 is the batch (sharded by shard_map)
    skip: Mapping[str, str] = {}  # transform -> why it does not apply
    known_bug: Mapping[str, str] = {}  # transform -> the open bug (a strict xfail)

    @property
    def id(self) -> str:
        return f"{self.module}.{self.name}"

    def function(self) -> Callable[..., Any]:
        module = MODULES[self.module]
        if self.name not in module.__all__:
            pytest.skip(f"{self.id} is not public yet")
        return self.bind(getattr(module, self.name))

    def call(self, *arrays: Any, hyper: int = 0) -> Any:
        return self.function()(*arrays, **self.hyper[hyper])


# ------------------------------------------------------------------------------------------
# Example inputs
# ------------------------------------------------------------------------------------------


def _floats(r, shape, dtype, scale=2.0):
    return jnp.asarray(scale * r.standard_normal(shape), dtype)


def _ids(r, shape=(N,), high=C):
    return jnp.asarray(r.integers(0, high, shape), jnp.int32)


def _softmax_inputs(seed, dtype, extra=()):
    """logits [N, C], class ids [N], then ``extra`` arrays (counts, log prior)."""
    r = np.random.default_rng(seed)
    return (_floats(r, (N, C), dtype), _ids(r), *(_extra(e, dtype) for e in extra))


def _sigmoid_inputs(seed, dtype, extra=()):
    """logits [N, C], binary targets [N, C] (in the logits' dtype)."""
    r = np.random.default_rng(seed)
    return (_floats(r, (N, C), dtype), jnp.asarray(r.random((N, C)) < 0.4, dtype),
            *(_extra(e, dtype) for e in extra))


def _segmentation_inputs(seed, dtype, extra=()):
    """logits [N, H, W, C] and an integer label map [N, H, W]."""
    r = np.random.default_rng(seed)
    return (_floats(r, (N, H, W, C), dtype), _ids(r, (N, H, W)),
            *(_extra(e, dtype) for e in extra))


def _extra(what, dtype):
    # Per-class statistics stay float32: the losses cast them to the logits' dtype.
    if what == "counts":
        return jnp.asarray(COUNTS)
    if what == "log_prior":
        return jnp.asarray(np.log(COUNTS / COUNTS.sum()), jnp.float32)
    raise ValueError(what)


def _images(r, dtype, n=N):
    return jnp.asarray(r.random((n, H, W, 3)), dtype)


def _soft_labels(r, dtype, n=N):
    return jax.nn.one_hot(_ids(r, (n,)), C, dtype=dtype)


def _boxes(r, dtype, n=N):
    x1, y1 = r.uniform(0, W / 2, (n, M)), r.uniform(0, H / 2, (n, M))
    wh = r.uniform(2, W / 2, (n, M, 2))
    boxes = np.stack([x1, y1, x1 + wh[..., 0], y1 + wh[..., 1]], -1)
    return (jnp.asarray(boxes, dtype), _ids(r, (n, M)),
            jnp.asarray(r.random((n, M)) < 0.8))


def _key(seed):
    return jax.random.key(seed)


def _batch_images(seed, dtype):
    r = np.random.default_rng(seed)
    return _key(seed), _images(r, dtype), _soft_labels(r, dtype)


def _batch_boxes(seed, dtype):
    r = np.random.default_rng(seed)
    return (_key(seed), _images(r, dtype), *_boxes(r, dtype))


def _batch_masks(seed, dtype):
    r = np.random.default_rng(seed)
    return _key(seed), _images(r, dtype), _ids(r, (N, H, W))


def _batch_instances(seed, dtype):
    r = np.random.default_rng(seed)
    ids = jnp.asarray(r.integers(0, M + 1, (N, H, W)), jnp.int32)
    return _key(seed), _images(r, dtype), ids, _ids(r, (N, M)), jnp.ones((N, M), bool)


def _pair(seed, dtype):
    r = np.random.default_rng(seed)
    im, lab = _images(r, dtype, 2), _soft_labels(r, dtype, 2)
    return _key(seed), im[0], lab[0], im[1], lab[1]


def _tiles(seed, dtype):
    r = np.random.default_rng(seed)
    return _key(seed), _images(r, dtype, 4), _soft_labels(r, dtype, 4)


def _tiles_boxes(seed, dtype):
    r = np.random.default_rng(seed)
    return (_key(seed), _images(r, dtype, 4), *_boxes(r, dtype, 4))


def _pair_boxes(seed, dtype):
    r = np.random.default_rng(seed)
    im = _images(r, dtype, 2)
    b, c, v = _boxes(r, dtype, 2)
    return _key(seed), im[0], b[0], c[0], v[0], im[1], b[1], c[1], v[1]


def _pair_masks(seed, dtype):
    r = np.random.default_rng(seed)
    im, m = _images(r, dtype, 2), _ids(r, (2, H, W))
    return _key(seed), im[0], m[0], im[1], m[1]


def _tiles_masks(seed, dtype):
    r = np.random.default_rng(seed)
    return _key(seed), _images(r, dtype, 4), _ids(r, (4, H, W))


def _pair_instances(seed, dtype):
    r = np.random.default_rng(seed)
    im = _images(r, dtype, 2)
    ids = jnp.asarray(r.integers(0, M + 1, (2, H, W)), jnp.int32)
    c, v = _ids(r, (2, M)), jnp.ones((2, M), bool)
    return _key(seed), im[0], ids[0], c[0], v[0], im[1], ids[1], c[1], v[1]


def _key_only(seed, dtype):
    return (_key(seed),)


# ------------------------------------------------------------------------------------------
# The registry
# ------------------------------------------------------------------------------------------


def _loss(name, inputs, *, extra=(), kwargs=None, hyper=({}, {}), skip=None):
    """A loss ``f(logits, labels, **{extra: array}, **kwargs, **hyper)``."""
    kwargs = kwargs or {}

    def bind(fn):
        def f(logits, labels, *arrays, **h):
            return fn(logits, labels, **dict(zip(extra, arrays)), **kwargs, **h)
        return f

    return Case("losses", name, bind, functools.partial(inputs, extra=extra), "loss",
                hyper, (0, 1), skip or {})


def _aug(name, inputs, kind, *, kwargs=None, arrays=None, hyper=({}, {}), batch_args=(),
         skip=None, known_bug=None):
    """An augmentation ``f(key, *arrays, **{arrays: array}, **kwargs, **hyper)``."""
    kwargs, arrays = kwargs or {}, arrays or {}

    def bind(fn):
        def f(*args, **h):
            named = {k: v() for k, v in arrays.items()}
            return fn(*args, **named, **kwargs, **h)
        return f

    return Case("augment", name, bind, inputs, kind, hyper, batch_args, skip or {},
                known_bug or {})


_STATISTIC = "detached per-class factors (mmdet's convention): the gradient is not the " \
             "derivative of the value"
_NO_FLOATS = "no floating input: the output dtypes are fixed"
_NO_FLOAT_SKIPS = {"dtypes": _NO_FLOATS}
_MASKED_MOSAIC = "the masked Mosaic assembly (augment/_kernels.py, _assemble_masked) adds a " \
                 "device-varying value to an unvarying one under vmap inside shard_map: " \
                 "ValueError 'varying manual axes to match'"

REGISTRY = [
    # Softmax losses: logits [N, C], class ids [N].
    _loss("weighted_softmax_cross_entropy", _softmax_inputs,
          hyper=({"label_smoothing": 0.1}, {"label_smoothing": 0.2})),
    _loss("softmax_focal_loss", _softmax_inputs,
          hyper=({"gamma": 2.0, "label_smoothing": 0.1}, {"gamma": 0.5, "label_smoothing": 0.0})),
    _loss("logit_adjusted_cross_entropy", _softmax_inputs, extra=("log_prior",),
          hyper=({"tau": 1.0}, {"tau": 0.5})),
    _loss("balanced_softmax_cross_entropy", _softmax_inputs, extra=("counts",),
          hyper=({"label_smoothing": 0.0}, {"label_smoothing": 0.1})),
    _loss("ldam_loss", _softmax_inputs, extra=("counts",),
          hyper=({"max_margin": 0.5, "scale": 10.0}, {"max_margin": 0.3, "scale": 30.0})),
    _loss("seesaw_loss", _softmax_inputs, extra=("counts",),
          hyper=({"p": 0.8, "q": 2.0, "eps": 1e-2}, {"p": 0.5, "q": 1.5, "eps": 0.05}),
          skip={"check_grads": _STATISTIC}),
    # Not a loss but a differentiable map of the logits: adjust_logits(logits, log_prior).
    Case("losses", "adjust_logits", lambda fn: lambda z, y, prior, **h: fn(z, prior, **h),
         functools.partial(_softmax_inputs, extra=("log_prior",)), "loss",
         ({"tau": 1.0}, {"tau": 0.5}), (0, 1)),
    # Sigmoid (multi-label) losses: logits and binary targets [N, C].
    _loss("weighted_sigmoid_cross_entropy", _sigmoid_inputs),
    _loss("sigmoid_focal_loss", _sigmoid_inputs,
          hyper=({"gamma": 2.0, "alpha": 0.25}, {"gamma": 1.5, "alpha": 0.5})),
    _loss("asymmetric_loss", _sigmoid_inputs,
          hyper=({"gamma_pos": 0.0, "gamma_neg": 4.0, "clip": 0.05},
                 {"gamma_pos": 1.0, "gamma_neg": 2.0, "clip": 0.1})),
    # From the signatures fixed in issues 19 and 20 (each is skipped while not public).
    _loss("distribution_balanced_loss", _sigmoid_inputs, extra=("counts",),
          kwargs={"num_examples": 100}),
    _loss("dice_loss", _segmentation_inputs,
          hyper=({"smooth_nr": 1e-5, "smooth_dr": 1e-5}, {"smooth_nr": 1e-3, "smooth_dr": 1e-3})),
    _loss("generalized_dice_loss", _segmentation_inputs),
    _loss("tversky_loss", _segmentation_inputs,
          hyper=({"alpha": 0.5, "beta": 0.5}, {"alpha": 0.7, "beta": 0.3})),
    _loss("focal_tversky_loss", _segmentation_inputs,
          hyper=({"alpha": 0.7, "beta": 0.3, "gamma": 0.75},
                 {"alpha": 0.5, "beta": 0.5, "gamma": 1.0})),
    _loss("lovasz_softmax_loss", _segmentation_inputs, kwargs={"per_image": True},
          skip={"check_grads": "piecewise linear in the errors (sorted): no second derivative"}),
    # Batch augmentations: key, then a batch (split across devices by shard_map).
    _aug("mixup", _batch_images, "batch", batch_args=(1, 2),
         hyper=({"alpha": 1.0}, {"alpha": 0.4})),
    _aug("cutmix", _batch_images, "batch", batch_args=(1, 2),
         hyper=({"alpha": 1.0}, {"alpha": 0.4})),
    _aug("mosaic", _batch_images, "batch", batch_args=(1, 2),
         hyper=({"centre": (0.25, 0.75)}, {"centre": (0.4, 0.6)})),
    _aug("remix", _batch_images, "batch", batch_args=(1, 2),
         arrays={"counts": lambda: jnp.asarray(COUNTS)},
         hyper=({"alpha": 1.0, "kappa": 3.0, "tau": 0.5},
                {"alpha": 0.4, "kappa": 2.0, "tau": 0.7})),
    _aug("mosaic_boxes", _batch_boxes, "batch", batch_args=(1, 2, 3, 4),
         hyper=({"min_size": 2.0, "min_visible": 0.1}, {"min_size": 1.0, "min_visible": 0.3})),
    _aug("mixup_boxes", _batch_boxes, "batch", batch_args=(1, 2, 3, 4),
         hyper=({"alpha": 32.0}, {"alpha": 8.0})),
    _aug("mixup_masks", _batch_masks, "batch", batch_args=(1, 2), kwargs={"num_classes": C},
         hyper=({"alpha": 1.0}, {"alpha": 0.4})),
    _aug("cutmix_masks", _batch_masks, "batch", batch_args=(1, 2),
         hyper=({"alpha": 1.0}, {"alpha": 0.4})),
    _aug("mosaic_masks", _batch_masks, "batch", batch_args=(1, 2)),
    _aug("copy_paste", _batch_instances, "batch", batch_args=(1, 2, 3, 4),
         hyper=({"paste_prob": 0.5}, {"paste_prob": 0.8})),
    # One-example functions: vmapped over examples (and over devices by shard_map).
    _aug("mixup_one", _pair, "one", hyper=({"alpha": 1.0}, {"alpha": 0.4})),
    _aug("cutmix_one", _pair, "one", hyper=({"alpha": 1.0}, {"alpha": 0.4})),
    _aug("mosaic_one", _tiles, "one",
         hyper=({"centre": (0.25, 0.75)}, {"centre": (0.4, 0.6)}),
         known_bug={"shard_map": _MASKED_MOSAIC}),
    _aug("mosaic_boxes_one", _tiles_boxes, "one",
         hyper=({"min_size": 2.0, "min_visible": 0.1}, {"min_size": 1.0, "min_visible": 0.3}),
         known_bug={"shard_map": _MASKED_MOSAIC}),
    _aug("mixup_boxes_one", _pair_boxes, "one", hyper=({"alpha": 32.0}, {"alpha": 8.0})),
    _aug("mixup_masks_one", _pair_masks, "one", kwargs={"num_classes": C},
         hyper=({"alpha": 1.0}, {"alpha": 0.4})),
    _aug("cutmix_masks_one", _pair_masks, "one", hyper=({"alpha": 1.0}, {"alpha": 0.4})),
    _aug("mosaic_masks_one", _tiles_masks, "one",
         hyper=({"centre": (0.25, 0.75)}, {"centre": (0.4, 0.6)}),
         known_bug={"shard_map": _MASKED_MOSAIC}),
    _aug("copy_paste_one", _pair_instances, "one",
         hyper=({"paste_prob": 0.5, "min_area": 1}, {"paste_prob": 0.8, "min_area": 2})),
    # Random helpers: a key in, integer draws out.
    _aug("partner_indices", _key_only, "one", kwargs={"batch_size": N, "num_partners": 2},
         skip=_NO_FLOAT_SKIPS),
    _aug("cutmix_box", _key_only, "one", kwargs={"height": H, "width": W},
         hyper=({"alpha": 1.0}, {"alpha": 0.4}), skip=_NO_FLOAT_SKIPS),
    _aug("mosaic_layout", _key_only, "one", kwargs={"source_size": (H, W)},
         hyper=({"centre": (0.25, 0.75)}, {"centre": (0.4, 0.6)}),
         skip=_NO_FLOAT_SKIPS),
]
BY_ID = {c.id: c for c in REGISTRY}

# Heavy combinations: `make test-fast` skips them. Second-order check_grads compiles four
# derivative programs per loss. An augmentation's program (its copy kernels) takes seconds to
# compile, and each of jit, vmap, a dtype and shard_map is a program of its own: in the quick
# loop the augmentations get the transforms that only trace (eval_shape in every dtype,
# traces-once); tests/augment/ runs each of them once more, compiled. Running every loss in
# three more dtypes is slow too (the quick loop checks their dtypes abstractly); the
# augmentations, which copy and blend pixels, are run in other dtypes by tests/augment/.
SLOW = {"check_grads": {"loss"}, "shard_map": {"batch", "one"}, "jit": {"batch", "one"},
        "vmap": {"batch", "one"}, "eval_shape": {"batch", "one"},
        "dtype_runs": {"loss"}}


def _cases(transform, kinds=("loss", "batch", "one")):
    out = []
    for c in REGISTRY:
        if c.kind not in kinds:
            continue
        marks = []
        if transform in c.skip:
            marks.append(pytest.mark.skip(reason=c.skip[transform]))
        if c.kind in SLOW.get(transform, ()):
            marks.append(pytest.mark.slow)
        if transform in c.known_bug:  # strict: it fails the suite once fixed, to be removed
            marks.append(pytest.mark.xfail(strict=True, raises=ValueError,
                                           reason=c.known_bug[transform]))
        out.append(pytest.param(c, id=c.id, marks=marks))
    return out


def _public_names():
    """Public functions (the NamedTuple result types in ``__all__`` are not transforms)."""
    return {f"{m}.{n}" for m, mod in MODULES.items() for n in mod.__all__
            if inspect.isfunction(getattr(mod, n))}


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _assert_trees_close(got, want, **tol):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(_leaves(got), _leaves(want)):
        assert g.dtype == w.dtype and g.shape == w.shape
        if np.issubdtype(g.dtype, np.inexact):
            np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), **tol)
        else:
            np.testing.assert_array_equal(g, w)


def _stack(instances):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *instances)


# ------------------------------------------------------------------------------------------
# The registry itself
# ------------------------------------------------------------------------------------------


def test_registry_covers_every_public_name():
    public = _public_names()
    missing = sorted(public - set(BY_ID) - set(EXEMPT))
    assert not missing, f"add a REGISTRY entry (or an EXEMPT reason) for {missing}"
    assert not set(BY_ID) & set(EXEMPT), "a name is both registered and exempt"
    assert len(BY_ID) == len(REGISTRY), "a name is registered twice"


def test_registry_is_not_vacuous():
    # Most entries are live: the pre-registered ones are the exception, not the rule.
    live = [c for c in REGISTRY if c.id in _public_names()]
    assert len(live) >= 20
    for c in live:
        assert callable(c.function())


# ------------------------------------------------------------------------------------------
# Transforms
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("jit"))
def test_jit_equals_eager(case):
    args = case.make(0, jnp.float32)
    f = case.function()
    want = case.call(*args)
    got = jax.jit(lambda *a: f(*a, **case.hyper[0]))(*args)
    _assert_trees_close(got, want, **F32)


@pytest.mark.parametrize("case", _cases("vmap"))
def test_vmap_equals_loop(case):
    instances = [case.make(s, jnp.float32) for s in (0, 1)]
    f = case.function()
    got = jax.vmap(lambda *a: f(*a, **case.hyper[0]))(*_stack(instances))
    want = _stack([case.call(*a) for a in instances])
    _assert_trees_close(got, want, **F32)


def _structs(args):
    return [jax.ShapeDtypeStruct(jnp.shape(a), a.dtype) for a in args]


@pytest.mark.parametrize("case", _cases("eval_shape"))
def test_eval_shape_equals_output(case):
    args = case.make(0, jnp.float32)
    f = case.function()
    abstract = jax.eval_shape(lambda *a: f(*a, **case.hyper[0]), *_structs(args))
    out = case.call(*args)
    assert jax.tree.structure(abstract) == jax.tree.structure(out)
    for a, o in zip(jax.tree.leaves(abstract), jax.tree.leaves(out)):
        assert (a.shape, a.dtype) == (o.shape, o.dtype)


@pytest.mark.parametrize("case", _cases("traces_once"))
def test_traces_once(case):
    f = case.function()
    traces = []

    @jax.jit
    def counted(arrays, hyper):  # numeric hyper-parameters traced too
        traces.append(1)
        return f(*arrays, **hyper)

    # Tracing is what a second trace would cost (XLA's compile cache is keyed on the trace):
    # `trace` shares jit's cache without compiling. Other data, other hyper-parameter values.
    counted.trace(case.make(0, jnp.float32), case.hyper[0])
    counted.trace(case.make(1, jnp.float32), case.hyper[1])
    assert len(traces) == 1


def _floating(tree):
    return [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]


@pytest.mark.parametrize("case", _cases("dtypes"))
def test_dtypes_follow_the_input_abstractly(case):
    """bf16/f16/f64 in, the same dtype out (and gradients), for every output (eval_shape)."""
    f = case.function()
    want = None
    for dtype in (jnp.float32, jnp.bfloat16, jnp.float16, jnp.float64):
        with jax.enable_x64(dtype == jnp.float64):
            args = case.make(0, dtype)
            out = jax.eval_shape(lambda *a: f(*a, **case.hyper[0]), *_structs(args))
            floats = _floating(out)
            assert floats, f"{case.id}: no floating output"
            for x in floats:
                assert x.dtype == dtype, f"{case.id}: {x.dtype} out for {dtype.__name__} in"
            shapes = [x.shape for x in jax.tree.leaves(out)]
            assert want is None or shapes == want
            want = shapes
            if case.kind == "loss":
                g = jax.eval_shape(jax.grad(lambda z, *r: jnp.sum(f(z, *r, **case.hyper[0]))),
                                   *_structs(args))
                assert g.dtype == dtype
            elif case.kind == "batch":
                assert all(s[:1] == (N,) for s in shapes), shapes


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float64],
                         ids=["bf16", "f16", "f64"])
@pytest.mark.parametrize("case", _cases("dtype_runs", kinds=("loss",)))
def test_dtypes_run_finite(case, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        args = case.make(0, dtype)
        out = case.call(*args)
        for x in _floating(out):
            assert x.dtype == dtype, f"{case.id}: {x.dtype} output from {dtype.__name__} input"
            assert np.all(np.isfinite(np.asarray(x, np.float64)))
        if case.kind == "loss":
            g = jax.grad(lambda z: jnp.sum(case.call(z, *args[1:])))(args[0])
            assert g.dtype == dtype
            assert np.all(np.isfinite(np.asarray(g, np.float64)))
            if dtype == jnp.float64:  # the float64 path computes what the float32 one does
                want = case.call(*case.make(0, jnp.float32))
                np.testing.assert_allclose(np.asarray(out), np.asarray(want, np.float64),
                                           **F64_VS_F32)


@pytest.mark.parametrize("case", _cases("grad", kinds=("loss",)))
def test_gradients_finite(case):
    logits, *rest = case.make(0, jnp.float32)
    f = case.function()
    vg = jax.jit(jax.value_and_grad(lambda x, *r: jnp.sum(f(x, *r, **case.hyper[0]))))
    for scale in (1.0, 60.0):  # 60: |z| reaches past 100 (N(0, 2) draws); one compilation
        z = logits * scale
        assert scale == 1.0 or float(jnp.max(jnp.abs(z))) > 100
        value, grad = vg(z, *rest)
        assert np.isfinite(value), scale
        assert np.all(np.isfinite(grad)), scale
        assert np.any(grad != 0), scale


@pytest.mark.parametrize("case", _cases("check_grads", kinds=("loss",)))
def test_check_grads_order_two(case):
    with jax.enable_x64(True):
        logits, *rest = case.make(0, jnp.float64)
        f = case.function()
        # Moderate logits (away from saturation); jit, since op-by-op second-order
        # dispatch is slow on a shared CPU.
        check_grads(jax.jit(lambda z: f(z * 0.5, *rest, **case.hyper[0])), (logits,), order=2,
                    modes=("fwd", "rev"), atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def mesh():
    return jax.make_mesh((8,), ("data",))


@pytest.mark.parametrize("case", _cases("shard_map"))
def test_shard_map_equals_unsharded(case, mesh):
    P = PartitionSpec
    f = case.function()
    h = case.hyper[0]
    if case.kind == "one":
        # 8 examples, one per device: vmap inside each shard.
        arrays = _stack([case.make(s, jnp.float32) for s in range(8)])
        want = jax.vmap(lambda *a: f(*a, **h))(*arrays)
        specs = tuple(P("data") for _ in arrays)
        body = jax.vmap(lambda *a: f(*a, **h))
    else:
        arrays = case.make(0, jnp.float32)
        specs = tuple(P("data") if i in case.batch_args else P() for i in range(len(arrays)))
        keyed = case.kind == "batch"

        def body(*a):
            if keyed:  # one key per shard, as a data-parallel step would draw them
                a = (jax.random.fold_in(a[0], jax.lax.axis_index("data")), *a[1:])
            return f(*a, **h)

        # Unsharded: the same per-shard calls, one after another, concatenated.
        chunks = []
        for i in range(8):
            part = [a[i * (N // 8):(i + 1) * (N // 8)] if j in case.batch_args else a
                    for j, a in enumerate(arrays)]
            if keyed:
                part[0] = jax.random.fold_in(part[0], i)
            chunks.append(f(*part, **h))
        want = jax.tree.map(lambda *xs: jnp.concatenate(xs), *chunks)
    arrays = [jax.device_put(a, NamedSharding(mesh, s)) for a, s in zip(arrays, specs)]
    sharded = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=specs, out_specs=P("data")))
    _assert_trees_close(sharded(*arrays), want, **F32)

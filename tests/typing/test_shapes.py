"""The jaxtyping-style shape annotations of the public API hold on real calls, and read as
array types in ``help()`` and ``inspect.signature``."""

import importlib
import inspect
import pydoc

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from shape_check import annotated_parameters, check_abstract, check_call, match

from jbalance import metrics, sampling
from jbalance._src.typing import Float, Int, Num, Shape


def test_checker_catches_a_wrong_shape_and_dtype():
    memo = {}
    match(np.zeros((3, 4), np.float32), Shape("n c", "float"), memo, "x")
    with pytest.raises(AssertionError, match="elsewhere"):
        match(np.zeros((5,), np.float32), Shape("n", "float"), memo, "y")
    with pytest.raises(AssertionError, match="dtype"):
        match(np.zeros((3,), np.int32), Shape("n", "float"), {}, "z")
    match(np.zeros((2, 3, 4)), Shape("*batch c", "float"), memo := {}, "w")
    assert memo == {"*batch": (2, 3), "c": 4}
    with pytest.raises(AssertionError, match="elsewhere"):
        match(np.zeros((5, 2)), Shape("*batch", "float"), memo, "v")
    # Variadic and single-axis names are apart, as in jaxtyping.
    match(np.zeros((2, 3, 7)), Shape("*batch batch", "float"), memo, "u")
    assert memo == {"*batch": (2, 3), "c": 4, "batch": 7}


def test_metrics_annotations_hold():
    rng = np.random.default_rng(0)
    y = jnp.asarray(rng.integers(0, 4, 20), jnp.int32)
    p = jnp.asarray(rng.integers(0, 4, 20), jnp.int32)
    check_call(metrics.confusion_matrix, y, p, num_classes=4)
    check_call(metrics.confusion_matrix, y, jax.nn.one_hot(p, 4), num_classes=4)
    ym = jnp.asarray(rng.integers(0, 2, (20, 4)), jnp.int32)
    check_call(metrics.multilabel_confusion_matrix, ym, ym, num_classes=4)
    check_call(metrics.report_from_confusion, metrics.confusion_matrix(y, p, num_classes=4))
    with pytest.raises(AssertionError):
        check_call(metrics.multilabel_confusion_matrix, ym, ym[:, :3], num_classes=4)


@pytest.mark.parametrize("fn", [getattr(metrics, n) for n in metrics.__all__])
def test_metrics_array_parameters_are_annotated(fn):
    # The positional parameters of a metric are its arrays (options are keyword-only).
    arrays = [p.name for p in inspect.signature(fn).parameters.values()
              if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert arrays and set(arrays) <= set(annotated_parameters(fn))


def test_sampling_annotations_hold():
    y = jnp.array([0, 0, 0, 1, 2, 2], jnp.int32)
    p = check_call(sampling.class_balanced_probs, y, num_classes=3, q=0.5)
    check_call(sampling.progressive_probs, y, num_classes=3, progress=0.3)
    out = check_call(sampling.sample_indices, jax.random.key(0), p, 11)
    assert out.shape == (11,)


def test_resample_annotations_hold():
    from jbalance import resample

    Y = np.array([[3, 0, 0], [2, 1, 0], [4, 0, 1], [0, 1, 0], [1, 0, 1]], np.int32)
    sol = check_call(resample.solve, Y, max_repeat=3, num_steps=50)
    check_call(resample.summary, Y, np.asarray(sol.repeats))
    rf = check_call(resample.repeat_factor_sampling, Y, threshold=0.5)
    check_call(resample.stochastic_round, jax.random.key(0), rf)
    check_call(resample.indices, np.asarray(sol.repeats))
    check_call(resample.objective_value, Y, np.asarray(sol.repeats))
    with pytest.raises(AssertionError):
        check_call(resample.summary, Y, np.ones(4, np.int32))


@pytest.mark.parametrize("module,names", [
    ("metrics", None), ("sampling", ("class_balanced_probs", "progressive_probs",
                                     "sample_indices")),
    ("resample", ("solve", "relax", "solve_path", "objective_value",
                  "repeat_factor_sampling", "stochastic_round", "indices", "summary")),
    ("losses", None), ("augment", None), ("boxes", ("convert", "pad_objects")),
])
def test_public_array_functions_are_annotated(module, names):
    import importlib
    import inspect

    mod = importlib.import_module(f"jbalance.{module}")
    names = names or [n for n in mod.__all__ if inspect.isfunction(getattr(mod, n))]
    bare = [n for n in names if not annotated_parameters(getattr(mod, n))]
    assert not bare, f"jbalance.{module}: no shape annotations on {bare}"


def test_losses_annotations_hold():
    from jbalance import losses

    key = jax.random.key(0)
    logits = jax.random.normal(key, (4, 5, 3))
    ids = jnp.zeros((4, 5), jnp.int32).at[0, 0].set(2)
    multi = (jax.random.uniform(key, (4, 5, 3)) > 0.5).astype(jnp.float32)
    counts = jnp.array([50.0, 5.0, 1.0])
    prior = check_call(losses.log_prior, counts)
    w = check_call(losses.class_weights, counts)
    check_call(losses.adjust_logits, logits, prior)
    for fn, extra in ((losses.weighted_softmax_cross_entropy, {"class_weights": w}),
                      (losses.softmax_focal_loss, {}),
                      (losses.logit_adjusted_cross_entropy, {"log_prior": prior}),
                      (losses.balanced_softmax_cross_entropy, {"counts": counts}),
                      (losses.ldam_loss, {"counts": counts}),
                      (losses.seesaw_loss, {"counts": counts})):
        check_call(fn, logits, ids, **extra)
    for fn in (losses.weighted_sigmoid_cross_entropy, losses.sigmoid_focal_loss,
               losses.asymmetric_loss):
        check_call(fn, logits, multi)
    check_call(losses.ldam_margins, counts)
    check_call(losses.update_counts, counts, ids)
    with pytest.raises(AssertionError):
        check_call(losses.adjust_logits, logits, prior[:2])


@pytest.mark.slow  # runs every augmentation (their copy kernels compile for seconds each)
def test_augment_and_boxes_annotations_hold():
    from jbalance import augment, boxes

    key = jax.random.key(0)
    images = jax.random.uniform(key, (4, 32, 32, 3))
    labels = jax.nn.one_hot(jnp.array([0, 1, 2, 0]), 3)
    for fn in (augment.mixup, augment.cutmix, augment.mosaic):
        check_call(fn, key, images, labels)
    check_call(augment.remix, key, images, labels, counts=jnp.array([10.0, 3.0, 1.0]))
    check_call(augment.mixup_one, key, images[0], labels[0], images[1], labels[1])
    check_call(augment.partner_indices, key, 4)
    check_call(augment.cutmix_box, key, 32, 32)
    check_call(augment.mosaic_layout, key, (32, 32))
    bx = jnp.tile(jnp.array([[2.0, 2.0, 20.0, 20.0]]), (4, 5, 1))
    cls = jnp.zeros((4, 5), jnp.int32)
    valid = jnp.ones((4, 5), bool)
    check_call(augment.mosaic_boxes, key, images, bx, cls, valid)
    check_call(augment.mixup_boxes, key, images, bx, cls, valid)
    check_call(boxes.convert, bx, src="xyxy", dst="cxcywhn", image_size=(32, 32))
    check_call(boxes.clip_boxes, bx, valid, image_size=(32, 32))
    with pytest.raises(AssertionError):
        check_call(augment.mixup, key, images, labels[:3])


def test_augment_annotations_hold_abstractly():
    """The quick-loop twin of the test above: results from jax.eval_shape (traced only)."""
    from jbalance import augment

    key = jax.random.key(0)
    images = jnp.zeros((4, 32, 32, 3))
    labels = jax.nn.one_hot(jnp.array([0, 1, 2, 0]), 3)
    for fn in (augment.mixup, augment.cutmix, augment.mosaic):
        check_abstract(fn, key, images, labels)
    check_abstract(augment.remix, key, images, labels, counts=jnp.array([10.0, 3.0, 1.0]))
    for fn in (augment.mixup_one, augment.cutmix_one):
        check_abstract(fn, key, images[0], labels[0], images[1], labels[1])
    check_abstract(augment.mosaic_one, key, images, labels)
    check_abstract(augment.partner_indices, key, 4)
    check_abstract(augment.cutmix_box, key, 32, 32)
    check_abstract(augment.mosaic_layout, key, (32, 32))
    bx = jnp.tile(jnp.array([[2.0, 2.0, 20.0, 20.0]]), (4, 5, 1))
    cls = jnp.zeros((4, 5), jnp.int32)
    valid = jnp.ones((4, 5), bool)
    check_abstract(augment.mosaic_boxes, key, images, bx, cls, valid)
    check_abstract(augment.mixup_boxes, key, images, bx, cls, valid)
    check_abstract(augment.mosaic_boxes_one, key, images, bx, cls, valid)
    check_abstract(augment.mixup_boxes_one, key, images[0], bx[0], cls[0], valid[0], images[1],
                   bx[1], cls[1], valid[1])
    with pytest.raises(AssertionError):
        check_abstract(augment.mixup, key, images, labels[:3])
    # The result's parts are checked too (a NamedTuple's fields, or a tuple's items).
    assert any(k.startswith("return") for k in annotated_parameters(augment.mixup))


# ------------------------------------------------------------------------------------------
# How the annotations read
# ------------------------------------------------------------------------------------------

SIGNATURE_MODULES = ("losses", "augment", "resample", "metrics", "io", "sharding", "boxes",
                     "sampling", "checks")


def _public_callables():
    for m in SIGNATURE_MODULES:
        mod = importlib.import_module(f"jbalance.{m}")
        for n in mod.__all__:
            obj = getattr(mod, n)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield pytest.param(obj, id=f"{m}.{n}")


@pytest.mark.parametrize("obj", list(_public_callables()))
def test_signatures_read_as_array_types(obj):
    try:
        text = str(inspect.signature(obj))
    except ValueError:  # a class without a Python signature
        pytest.skip("no signature")
    for word in ("Annotated", "Union", "Optional", "jaxlib", "Shape("):
        assert word not in text, f"{obj.__qualname__}{text}"


def test_signature_and_help_of_a_loss():
    from jbalance import losses

    text = str(inspect.signature(losses.sigmoid_focal_loss))
    assert text.startswith("(logits: Float[Array, '*batch c'], labels: Num[Array, '*batch c'], *")
    assert "class_weights: Num[Array, 'c'] | None = None" in text
    assert "gamma: ArrayLike = 2.0" in text
    assert text.endswith("-> Float[Array, '*batch c']")
    page = pydoc.render_doc(losses.sigmoid_focal_loss, renderer=pydoc.plaintext)
    assert "Float[Array, '*batch c']" in page and "Annotated" not in page


def test_annotation_objects():
    spec = Float[" *batch c"]
    assert repr(spec) == "Float[Array, '*batch c']"
    assert spec.shape == Shape(" *batch c", "float")
    assert spec == Float[" *batch c"] and hash(spec) == hash(Float[" *batch c"])
    assert spec != Num[" *batch c"]
    assert repr(Int[" "]) == "Int[Array, '']"
    assert repr(spec | None) == "Float[Array, '*batch c'] | None"
    assert repr(str | spec) == "str | Float[Array, '*batch c']"
    ids = Int[" n"]
    assert repr(tuple[spec, ids]) == "tuple[Float[Array, '*batch c'], Int[Array, 'n']]"
    with pytest.raises(TypeError, match="one shape string"):
        Float[jax.Array, " n"]


def _to_jaxtyping(annotation):
    """Our annotation as the jaxtyping type it stands for (jaxtyping is a [dev] dependency)."""
    import jaxtyping

    from jbalance._src.typing import AnyOf, ArrayType

    if isinstance(annotation, AnyOf):
        types = [_to_jaxtyping(o) for o in annotation.options if o is not type(None)]
        return types[0] if len(types) == 1 else None
    if not isinstance(annotation, ArrayType):
        return None
    # Integer masks are accepted where a Bool is documented, as shape_check accepts them.
    kind = {"float": jaxtyping.Float, "int": jaxtyping.Int, "bool": jaxtyping.Shaped,
            "num": jaxtyping.Num, "any": jaxtyping.Shaped}[annotation.shape.kind]
    return kind[jax.Array, annotation.shape.spec.strip()]


def test_jaxtyping_checks_the_same_calls():
    """The specs are jaxtyping notation: jaxtyping's own checker accepts the calls that
    shape_check accepts, and rejects the mismatch that it rejects."""
    import typing

    import jaxtyping

    from jbalance import losses

    def check(fn, *args, run=True, **kwargs):
        hints = typing.get_type_hints(fn)
        bound = inspect.signature(fn).bind(*args, **kwargs)
        pairs = [(v, _to_jaxtyping(hints.get(k))) for k, v in bound.arguments.items()]
        if run:
            pairs.append((fn(*args, **kwargs), _to_jaxtyping(hints["return"])))

        @jaxtyping.jaxtyped(typechecker=None)
        def inside_one_call():  # one memo: a name means one size throughout
            return all(isinstance(v, t) for v, t in pairs if t is not None and v is not None)

        return inside_one_call()

    z = jax.random.normal(jax.random.key(0), (4, 5, 3))
    ids = jnp.zeros((4, 5), jnp.int32)
    counts = jnp.array([50.0, 5.0, 1.0])
    assert check(losses.ldam_loss, z, ids, counts=counts)
    assert check(losses.sigmoid_focal_loss, z, (z > 0).astype(jnp.float32))
    assert check(losses.adjust_logits, z, losses.log_prior(counts))
    assert check(losses.adjust_logits, jnp.zeros((4, 3)), jnp.zeros(3), run=False)
    assert not check(losses.adjust_logits, jnp.zeros((4, 2)), jnp.zeros(3), run=False)
    with pytest.raises(AssertionError):  # shape_check rejects it too
        check_call(losses.adjust_logits, jnp.zeros((4, 2)), jnp.zeros(3))
    check_call(losses.ldam_loss, z, ids, counts=counts)

"""The two model families of the multi-label study (Flax NNX): an MLP and a small conv net."""

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

NUM_CLASSES = 10


class MLP(nnx.Module):
    """Two hidden ReLU layers on the flattened canvas (``24 * 24 -> 128 -> 128 -> 10``)."""

    def __init__(self, num_classes: int = NUM_CLASSES, *, pixels: int = 24 * 24,
                 width: int = 128, rngs: nnx.Rngs):
        self.hidden1 = nnx.Linear(pixels, width, rngs=rngs)
        self.hidden2 = nnx.Linear(width, width, rngs=rngs)
        self.head = nnx.Linear(width, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.hidden1(x.reshape(x.shape[0], -1)))
        x = nnx.relu(self.hidden2(x))
        return self.head(x)


class ConvNet(nnx.Module):
    """A small conv net: 4x4 space-to-depth, three 3x3 convolutions, global pooling, MLP head.

    The canvas ``[B, 24, 24, 1]`` is folded into ``[B, 6, 6, 16]`` patches first (one digit
    covers 2x2 of them), so the convolutions run on a 6x6 grid: on a CPU this is what makes
    the conv model affordable. Features (not class scores) are pooled, by the mean and
    the max over positions concatenated, and a hidden layer reads them out: pooling
    per-position class scores (a heatmap) was fragile under mixing and at low learning
    rates (docs/study.md).
    """

    def __init__(self, num_classes: int = NUM_CLASSES, *, pixels: int = 24 * 24,
                 width: int = 32, patch: int = 4, rngs: nnx.Rngs):
        del pixels  # the convolutions take any canvas
        self.patch = patch
        self.conv1 = nnx.Conv(patch * patch, width, (3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(width, width, (3, 3), rngs=rngs)
        self.conv3 = nnx.Conv(width, 2 * width, (3, 3), rngs=rngs)
        self.hidden = nnx.Linear(4 * width, 4 * width, rngs=rngs)
        self.head = nnx.Linear(4 * width, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, h, w, c = x.shape
        p = self.patch
        x = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
        x = x.reshape(b, h // p, w // p, p * p * c)
        x = nnx.relu(self.conv1(x))
        x = nnx.relu(self.conv2(x))
        x = nnx.relu(self.conv3(x))
        x = jnp.concatenate([x.mean((1, 2)), x.max((1, 2))], axis=-1)
        return self.head(nnx.relu(self.hidden(x)))


MODELS = {"mlp": MLP, "conv": ConvNet}


def make_model(name: str, *, width: int, pixels: int, rngs: nnx.Rngs) -> nnx.Module:
    return MODELS[name](width=width, pixels=pixels, rngs=rngs)


@functools.cache
def graphdef(name: str, width: int, pixels: int) -> Any:
    """The module's static structure; parameters travel separately as a pytree."""
    abstract = nnx.eval_shape(lambda: make_model(name, width=width, pixels=pixels,
                                                 rngs=nnx.Rngs(0)))
    return nnx.split(abstract, nnx.Param)[0]


def init_params(key: jax.Array, name: str, width: int, canvas: int = 24,
                head_bias: jax.Array | None = None) -> Any:
    """Fresh parameters; ``head_bias`` ``[C]`` (optional) initialises the read-out's bias,
    e.g. to the log-odds of the class priors (RetinaNet's prior initialisation)."""
    model = make_model(name, width=width, pixels=canvas * canvas, rngs=nnx.Rngs(params=key))
    if head_bias is not None:
        model.head.bias.value = jnp.asarray(head_bias, model.head.bias.value.dtype)
    return nnx.split(model, nnx.Param)[1]


def apply(params: Any, images: jax.Array, name: str, width: int) -> jax.Array:
    """Logits ``[B, 10]`` of model ``name`` with ``params`` on ``images`` ``[B, H, W, 1]``."""
    pixels = images.shape[1] * images.shape[2]
    return nnx.merge(graphdef(name, width, pixels), params)(images)

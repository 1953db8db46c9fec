"""Times one training step of the study's models called from a Python loop vs inside a scan.

  python -m examples.multilabel.timing            # conv and MLP, batch 64, 24x24, 5 seeds

XLA:CPU was measured to run convolutions inside a `lax.scan` body about 10x slower than the
same jitted step called from a Python loop; this measures it for the study's models before
the study is built on either. Four ways, each after a warm-up (compile excluded):
``loop`` (jitted step, Python loop), ``scan`` (the steps in one `lax.scan`), and the same
two with the five seeds `vmap`-ed inside the step (``loop x5``, ``scan x5``).
"""

import os
import sys
import time

import jax
import jax.numpy as jnp
import optax

from examples.multilabel import models


def _step_fn(name: str, width: int, opt: optax.GradientTransformation):
    def loss_fn(params, x, y):
        logits = models.apply(params, x, name, width)
        return optax.sigmoid_binary_cross_entropy(logits, y).sum(-1).mean()

    def step(carry, batch):
        params, state = carry
        x, y = batch
        loss, g = jax.value_and_grad(loss_fn)(params, x, y)
        with jax.numpy_dtype_promotion("standard"):
            upd, state = opt.update(g, state, params)
        return (optax.apply_updates(params, upd), state), loss

    return step


def time_model(name: str, width: int, *, steps: int = 20, batch: int = 64, seeds: int = 5,
               canvas: int = 24, repeats: int = 2) -> dict[str, float]:
    """Milliseconds per step (per seed-step for the x5 variants) for the four ways."""
    opt = optax.adam(1e-3)
    step = _step_fn(name, width, opt)
    key = jax.random.key(0)
    x = jax.random.uniform(key, (steps, batch, canvas, canvas, 1))
    y = (jax.random.uniform(key, (steps, batch, 10)) < 0.2).astype(jnp.float32)

    def init(k):
        p = models.init_params(k, name, width, canvas)
        with jax.numpy_dtype_promotion("standard"):
            return p, opt.init(p)

    out = {}
    carry = jax.jit(init)(key)
    one = jax.jit(step)
    scan = jax.jit(lambda c, xs: jax.lax.scan(step, c, xs))
    c5 = jax.jit(jax.vmap(init))(jax.random.split(key, seeds))
    x5 = jnp.broadcast_to(x[:, None], (steps, seeds) + x.shape[1:])
    y5 = jnp.broadcast_to(y[:, None], (steps, seeds) + y.shape[1:])
    one5 = jax.jit(jax.vmap(step))
    scan5 = jax.jit(lambda c, xs: jax.lax.scan(jax.vmap(step), c, xs))

    def loop(fn, c, xs, ys):
        for i in range(steps):
            c, loss = fn(c, (xs[i], ys[i]))
        return jax.block_until_ready(c)

    for label, run, per in (
            ("loop", lambda: loop(one, carry, x, y), steps),
            ("scan", lambda: jax.block_until_ready(scan(carry, (x, y))), steps),
            ("loop x5", lambda: loop(one5, c5, x5, y5), steps * seeds),
            ("scan x5", lambda: jax.block_until_ready(scan5(c5, (x5, y5))), steps * seeds)):
        run()  # compile and warm up
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - t0)
        out[label] = 1e3 * best / per
        print(f"  {name} {label}: {out[label]:.2f} ms per step", flush=True)
    return out


def main() -> int:
    print(f"jax {jax.__version__} on {jax.default_backend()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    for name, width in (("conv", 32), ("mlp", 128)):
        r = time_model(name, width)
        print(f"{name:5s} " + "  ".join(f"{k}: {v:.2f} ms" for k, v in r.items()), flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

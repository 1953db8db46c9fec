"""Value checks that also hold under `jit`, through `jax.experimental.checkify`.

Every jbalance function checks its inputs. Eager calls raise a `ValueError` (or `TypeError`)
naming the argument at once. Under `jax.jit` a value is a tracer; wrap the function with
`checked` to keep the same checks there (see docs/guarantees.md)::

    err, out = jax.jit(checks.checked(step))(params, batch)
    err.throw()
"""

from jbalance._src.checks import checked as checked

__all__ = ["checked"]

"""Implementation of `jbalance.sampling` (see that module's docstring)."""

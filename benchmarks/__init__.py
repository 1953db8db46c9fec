"""jbalance benchmarks: each case side by side with its peers, in the same process.

Run everything with ``python -m benchmarks`` (or ``make bench``); see ``_harness.py``.
"""

#!/usr/bin/env bash
# GPU check: the device-independent tests and the benchmarks on an accelerator, results
# appended to benchmarks/RESULTS.md with the device name. Needs a CUDA build of jaxlib in
# the environment (e.g. `pip install -U "jax[cuda12]"`); on a machine without a GPU it says
# so and exits 0, because CPU results stand on their own.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
backend=$($PY -c 'import jax; print(jax.default_backend())' 2>/dev/null || echo none)
if [ "$backend" != "gpu" ]; then
  echo "gpu-check: JAX backend is '$backend', not 'gpu': no GPU here (or no CUDA jaxlib); CPU results stand."
  exit 0
fi
$PY -c 'import jax; print("device:", jax.devices()[0].device_kind, "x", jax.device_count())'
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
# Tests that pin themselves to the 8 virtual CPU devices are device-independent by design;
# everything else now runs on the GPU.
$PY -m pytest -q -x tests
$PY -m benchmarks --write benchmarks/RESULTS.md "$@"

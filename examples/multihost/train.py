r"""Multi-host data parallelism with jbalance: `jax.distributed`, a global mesh, local partners.

Every process runs this same script. JAX's own machinery does the rest:

* `jax.distributed.initialize` connects the processes (on a cluster with SLURM, Open MPI
  or Cloud TPU it needs no arguments at all);
* `jbalance.sharding.batch_mesh()` spans every device of every process;
* `jax.make_array_from_process_local_data` turns each process's slice of the batch into one
  global array sharded along the mesh's "data" axis;
* `jbalance.sharding.data_parallel(jbalance.augment.mixup, mesh)` mixes each device's
  examples with partners from the same device (no image crosses the network), and the
  class-weighted loss and its gradient reduce across all processes inside `jit`.

Try it on one machine with CPU processes (gloo collectives)::

    python examples/multihost/train.py --launch-local 2 --devices-per-process 2

or start each process yourself::

    python examples/multihost/train.py --coordinator HOST:PORT --num-processes N --process-id I

The script prints the loss after every step (from process 0), so the single-process run
``--launch-local 1 --devices-per-process 4`` prints the same numbers as two processes of two
devices: the maths does not depend on how the devices are spread over hosts.
"""

import argparse
import os
import socket
import subprocess
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--coordinator", help="HOST:PORT of process 0 (omit on managed clusters)")
    p.add_argument("--num-processes", type=int)
    p.add_argument("--process-id", type=int)
    p.add_argument("--launch-local", type=int, metavar="N",
                   help="start N processes on this machine (CPU, gloo) and wait for them")
    p.add_argument("--devices-per-process", type=int, default=2,
                   help="virtual CPU devices per local process (with --launch-local)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch-per-device", type=int, default=8)
    return p.parse_args(argv)


def launch_local(args) -> int:
    """Starts ``args.launch_local`` CPU processes of this script and returns the worst exit."""
    with socket.socket() as s:  # A free port on the loopback interface for the coordinator.
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={args.devices_per_process}")
    common = [sys.executable, __file__, "--coordinator", f"127.0.0.1:{port}",
              "--num-processes", str(args.launch_local), "--steps", str(args.steps),
              "--batch-per-device", str(args.batch_per_device)]
    procs = [subprocess.Popen(common + ["--process-id", str(i)], env=env)
             for i in range(args.launch_local)]
    return max(p.wait(timeout=300) for p in procs)


def train(args) -> list[float]:
    import jax

    if args.coordinator:
        # CPU processes talk through gloo; asking for the backend here would initialise it
        # before `initialize`, which JAX forbids, so the platform comes from the environment.
        if os.environ.get("JAX_PLATFORMS", "") == "cpu":
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)
    else:
        jax.distributed.initialize()  # Cluster auto-detection (SLURM, MPI, TPU pods).

    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.sharding import NamedSharding, PartitionSpec

    from jbalance import augment, losses, sharding

    mesh = sharding.batch_mesh()
    n_dev, n_local = jax.device_count(), jax.local_device_count()
    global_batch = args.batch_per_device * n_dev
    num_classes, side = 4, 8

    # A long-tailed toy problem, generated identically everywhere; each process keeps the
    # rows of its own devices (in a real job each host reads only its own files).
    rng = np.random.default_rng(0)
    class_probs = np.array([0.85, 0.1, 0.04, 0.01])
    weights = losses.class_weights(jnp.asarray(class_probs * 1000.0), method="inverse_sqrt")
    start = jax.process_index() * n_local * args.batch_per_device
    stop = start + n_local * args.batch_per_device
    batch_sharding = NamedSharding(mesh, PartitionSpec("data"))

    def make_batch(step):
        rng_step = np.random.default_rng([0, step])
        y = rng_step.choice(num_classes, size=global_batch, p=class_probs)
        x = rng_step.normal(size=(global_batch, side, side, 1)).astype(np.float32)
        x += y[:, None, None, None].astype(np.float32)  # class signal in the mean
        x /= side  # keeps the logits of the 64-pixel linear model near unit scale
        onehot = np.eye(num_classes, dtype=np.float32)[y]
        return tuple(jax.make_array_from_process_local_data(batch_sharding, a[start:stop])
                     for a in (x, onehot))

    params = {"w": jnp.asarray(rng.normal(size=(side * side, num_classes)) * 0.01,
                               jnp.float32),
              "b": jnp.zeros((num_classes,), jnp.float32)}
    opt = optax.sgd(0.5)
    opt_state = opt.init(params)
    mix = sharding.data_parallel(augment.mixup, mesh)  # local partners

    @jax.jit
    def train_step(params, opt_state, key, x, y):
        x, y = mix(key, x, y, alpha=0.4)

        def loss_fn(params):
            logits = x.reshape(x.shape[0], -1) @ params["w"] + params["b"]
            per_example = losses.weighted_softmax_cross_entropy(logits, y,
                                                                class_weights=weights)
            return per_example.mean()  # a global mean: XLA reduces across every process

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    history = []
    key = jax.random.key(42)
    for step in range(args.steps):
        key, sub = jax.random.split(key)
        x, y = make_batch(step)
        params, opt_state, loss = train_step(params, opt_state, sub, x, y)
        history.append(float(loss))  # a replicated scalar: readable on every process
        if jax.process_index() == 0:
            print(f"step {step} processes {jax.process_count()} devices {n_dev} "
                  f"loss {history[-1]:.6f}", flush=True)
    jax.distributed.shutdown()
    return history


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.launch_local:
        return launch_local(args)
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

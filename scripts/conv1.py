"""One 3x3 convolution on XLA:CPU: forward, input gradient (dx) and kernel gradient (dW), jitted apart.

Produces the single-convolution table of BUILD_NOTES.md (core, "Convolutions on the CPU"), which is
why jaxhep sets `--xla_cpu_experimental_ynn_fusion_type=-individual_convolution` on the CPU: compare
the XLA_FLAGS settings in separate processes (XLA reads the flags once, when it starts).

    python scripts/conv1.py 256 16 64                  # batch 256, 16x16 images, 64 channels: ms
    XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= python scripts/conv1.py 256 16 64     # YNNPACK off
    XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution python scripts/conv1.py 256 16 64
    python scripts/conv1.py 256 16 64 2                # grouped (2 groups)

NHWC images, HWIO kernel, stride 1, padding (1, 1), float32; prints "fwd dx dW" in milliseconds
(mean of 3 calls after one that compiles).
"""

from __future__ import annotations

import argparse
import time


def main(argv=None) -> tuple[float, float, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("batch", type=int)
    p.add_argument("size", type=int, help="image height = width")
    p.add_argument("channels", type=int, help="input = output channels")
    p.add_argument("groups", type=int, nargs="?", default=1)
    a = p.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import lax

    b, h, c, g = a.batch, a.size, a.channels, a.groups
    x = jnp.asarray(np.random.default_rng(0).normal(size=(b, h, h, c)), jnp.float32)
    w = jnp.asarray(np.random.default_rng(1).normal(size=(3, 3, c // g, c)), jnp.float32)

    def conv(x, w):
        return lax.conv_general_dilated(
            x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=g
        )

    dy = conv(x, w)
    fwd = jax.jit(conv)
    dx = jax.jit(lambda x, w, dy: jax.vjp(lambda x: conv(x, w), x)[1](dy)[0])
    dw = jax.jit(lambda x, w, dy: jax.vjp(lambda w: conv(x, w), w)[1](dy)[0])

    def ms(fn, n=3):
        jax.block_until_ready(fn())
        t0 = time.perf_counter()
        for _ in range(n):
            jax.block_until_ready(fn())
        return (time.perf_counter() - t0) / n * 1e3

    times = ms(lambda: fwd(x, w)), ms(lambda: dx(x, w, dy)), ms(lambda: dw(x, w, dy))
    print(" ".join(f"{t:.0f}" for t in times))
    return times


if __name__ == "__main__":
    main()

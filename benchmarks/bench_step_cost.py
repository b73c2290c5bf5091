"""What one CompVAE optimiser step costs, and how much of it is the regulariser.

Times, on the CPU, a training step of the default MLP VAE (batch 256, latent 16)
with the hyperspherical regulariser and with the plain VAE's KL, the regulariser's
forward + backward alone, and the same compiled with ``torch.compile`` (its
compilation time too, which a ~250-step fit would have to pay back).

    python benchmarks/bench_step_cost.py
    python benchmarks/bench_step_cost.py --no-compile
"""

from __future__ import annotations

import argparse
import sys
import time

import _common as C
import torch

from skhyper._utils.runtime import build_module, make_generator
from skhyper._vae.losses import (
    GaussianKL,
    HypersphericalRegulariser,
    MeanWeights,
    reconstruction_error,
)
from skhyper._vae.networks import build_vae

BATCH, LATENT, FEATURES = 256, 16, 20


def per_call(fn, n=200, warmup=30) -> float:
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e3


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--tag", default="")
    args = p.parse_args()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, FEATURES, generator=gen)
    rows = []

    def step_fn(reg):
        model = build_module(
            lambda: build_vae(FEATURES, LATENT, (128, 64), None, False), make_generator(0)
        )
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)

        def step():
            mu, sigma, x_hat = model(x, gen)
            loss = reconstruction_error(x_hat, x) + reg(mu, sigma, MeanWeights())["total"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step

    hs = HypersphericalRegulariser(LATENT, "full", 5e5)
    rows.append(("training step, hyperspherical regulariser", per_call(step_fn(hs))))
    rows.append(("training step, Gaussian KL (plain VAE)", per_call(step_fn(GaussianKL()))))
    mu = torch.randn(BATCH, LATENT, generator=gen, requires_grad=True)
    sigma = (torch.rand(BATCH, LATENT, generator=gen) + 0.01).requires_grad_()

    def reg_only(fn):
        return lambda: fn(mu, sigma, MeanWeights())["total"].backward()

    rows.append(("regulariser forward + backward", per_call(reg_only(hs))))
    if not args.no_compile:
        compiled = torch.compile(hs)
        t0 = time.perf_counter()
        try:
            reg_only(compiled)()
            rows.append(("torch.compile of the regulariser (first call)",
                         (time.perf_counter() - t0) * 1e3))
            rows.append(("regulariser forward + backward, compiled", per_call(reg_only(compiled))))
        except Exception as exc:  # no C++ toolchain, etc.: say so
            rows.append((f"torch.compile failed: {type(exc).__name__}", float("nan")))
    header = [
        f"protocol: MLP VAE (128, 64), batch {BATCH}, latent {LATENT}, {FEATURES} features, "
        "CPU, milliseconds per call (mean of 200 after 30 warm-up calls)",
        C.environment_line(),
    ]
    md = ["## step_cost", ""] + [f"{h}  " for h in header] + [
        "", "| what | ms |", "|---|---|"] + [f"| {w} | {ms:.3f} |" for w, ms in rows]
    text = "\n".join(md) + "\n"
    print(text)
    C.write_outputs("step_cost", args.tag, [{"what": w, "ms": ms} for w, ms in rows], text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

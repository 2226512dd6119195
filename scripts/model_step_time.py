"""Time one forward+backward of the EPAM recognizer at NTU size on this machine.

    python scripts/model_step_time.py [--batch-size 2] [--repeat 3] [--threads N]

Builds the model from ``configs/epam_ntu60.py``, feeds a synthetic NTU-60
batch (16x224x224 RGB, 48x56x56 heat maps) through the data preprocessor and
``mode='loss'``, backpropagates the summed loss, and prints the median of
``--repeat`` timed steps after one warm-up step. Never asserts.
"""
from __future__ import annotations

import argparse
import statistics
import time

from epam_guard.model.batch import make_batch, preprocess
from epam_guard.model.context import GuardSettings, build_context


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch intra-op threads (default: torch\'s own choice)')
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    ctx = build_context(GuardSettings(size='ntu', batch_size=args.batch_size))
    model = ctx.model.train()
    batch = make_batch(ctx.recipe)

    def step() -> float:
        start = time.perf_counter()
        data = preprocess(model, batch, True)
        total, _ = model.parse_losses(model(**data, mode='loss'))
        total.backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    step()  # warm-up: allocator, kernels
    times = [step() for _ in range(args.repeat)]
    shapes = ctx.recipe.shapes()
    print(f'forward+backward, batch {args.batch_size}, imgs {shapes["imgs"]} + heatmap_imgs '
          f'{shapes["heatmap_imgs"]} per sample, torch threads {torch.get_num_threads()}')
    runs = ', '.join(f'{t:.2f}' for t in times)
    print(f'  runs {runs} s; median {statistics.median(times):.2f} s')


if __name__ == '__main__':
    main()

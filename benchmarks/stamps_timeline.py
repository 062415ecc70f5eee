#!/usr/bin/env python3
"""A decode step's layer as a timeline of block phases (src/cuda/NOTES.md run AM).

    GPTQ_STAMPS_CSV=stamps.csv bench-e2e --stamps
    benchmarks/stamps_timeline.py stamps.csv [bin_us]

Every stamped block is, at each moment, before its PDL wait (entry to waited: its ring's loads and
constants), staging (waited to staged) or in its main loop (staged to the stamp's end). The layer
opens at its first product's release (its first block past the wait); for each bin (0.5 µs by
default) after it, the mean number of blocks of each product in each phase, over the layers but
the first and last three. Where no product is in its loop, the memory streams only what blocks
loaded before their waits: the boundaries' cost, bin by bin.
"""
import bisect
import collections
import csv
import sys


def main(path, bin_us):
    with open(path) as f:
        rows = [{k: int(v) for k, v in r.items()} for r in csv.DictReader(f)]
    by_product = collections.defaultdict(list)
    for r in rows:
        by_product[(r['K'], r['N'])].append(r)
    # The layer's first product: the one whose blocks pass the step's earliest wait.
    earliest = min(rows, key=lambda r: r['waited'])
    first = (earliest['K'], earliest['N'])
    opening = sorted(r['waited'] for r in by_product[first])
    nb = max(r['block'] for r in by_product[first]) + 1  # blocks per launch
    releases = [opening[i] for i in range(0, len(opening) - nb + 1, nb)]
    layers = range(3, len(releases) - 3)
    if not layers:
        sys.exit("too few layers stamped")
    name = {k: ('attn' if k == (0, 0) else f'{k[0]}x{k[1]}') for k in by_product}
    step = int(bin_us * 1000)
    acc = collections.defaultdict(collections.Counter)
    for r in rows:
        label = name[(r['K'], r['N'])]
        li = bisect.bisect_right(releases, r['waited']) - 1
        for lj in (li - 1, li, li + 1):  # a block may begin in one layer's window and end in the next
            if lj not in layers:
                continue
            t0, t1 = releases[lj], releases[lj + 1]
            for phase, a, b in (('pre', r['entry'], r['waited']), ('stg', r['waited'], r['staged']),
                                ('loop', r['staged'], r['met'])):
                lo, hi = max(a, t0), min(b, t1)
                while lo < hi:
                    k = (lo - t0) // step
                    edge = t0 + (k + 1) * step
                    acc[k][(label, phase)] += (min(hi, edge) - lo) / step
                    lo = edge
    n = len(layers)
    span = sum(releases[l + 1] - releases[l] for l in layers) / n / 1000
    print(f"layer: {span:.2f} µs from release to release, means over {n} layers; blocks per phase "
          f"(pre: before the wait, stg: staging, loop: main loop), at least 4 shown")
    for k in sorted(acc):
        cells = [f"{p}.{ph}={v / n:.0f}" for (p, ph), v in sorted(acc[k].items()) if v / n >= 4]
        print(f"{k * bin_us:6.1f}  " + " ".join(cells))


if __name__ == '__main__':
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.5)

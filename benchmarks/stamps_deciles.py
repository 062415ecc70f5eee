#!/usr/bin/env python3
"""Block stamps of one decode step by block-index decile (src/cuda/NOTES.md runs AD and AG).

    GPTQ_STAMPS_CSV=stamps.csv bench-e2e --stamps
    benchmarks/stamps_deciles.py stamps.csv

For each 4-bit product (K, N) of the step, over its launches but the first and the last layer: the
loop-end spread (min / median / max after the launch's release, its first block past the PDL
wait), then per tenth of the block indices the mean times of entry, wait, staging and loop end (and
the latest loop end): whether the last blocks to end are the last to land (lateness follows the
index) or are spread over every tenth (per-SM load; bench-e2e --stamps prints that split).
"""
import csv
import statistics as st
import sys


def main(path):
    by_product = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            row = {k: int(v) for k, v in r.items()}
            by_product.setdefault((row['K'], row['N']), []).append(row)
    for (K, N), rows in sorted(by_product.items()):
        if K == 0 and N == 0:  # attention: its unused ranges' blocks do not stamp, so no fixed count
            continue
        rows.sort(key=lambda r: r['entry'])
        nb = max(r['block'] for r in rows) + 1  # blocks per launch
        launches = [rows[i:i + nb] for i in range(0, len(rows), nb)]
        launches = [l for l in launches if len(l) == nb][1:-1]
        if not launches:
            continue
        print(f"K={K} N={N}: {nb} blocks, {len(launches)} launches")
        deciles = [[[] for _ in range(4)] for _ in range(10)]
        lo, med, hi = [], [], []
        for launch in launches:
            release = min(r['waited'] for r in launch)
            ends = [(r['met'] - release) / 1e3 for r in launch]
            lo.append(min(ends))
            med.append(st.median(ends))
            hi.append(max(ends))
            for r in launch:
                d = deciles[r['block'] * 10 // nb]
                for i, key in enumerate(('entry', 'waited', 'staged', 'met')):
                    d[i].append((r[key] - release) / 1e3)
        print(f"  loop end min / median / max, µs after the release: "
              f"{st.mean(lo):.2f} {st.mean(med):.2f} {st.mean(hi):.2f}")
        for i, (entry, waited, staged, met) in enumerate(deciles):
            print(f"  tenth {i}: entry {st.mean(entry):6.2f}  waited {st.mean(waited):5.2f}"
                  f"  staged {st.mean(staged):5.2f}  loop end {st.mean(met):6.2f} (latest {max(met):6.2f})"
                  f"  loop {st.mean(met) - st.mean(staged):5.2f}")


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

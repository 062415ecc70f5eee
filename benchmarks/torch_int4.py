#!/usr/bin/env python3
"""torch's int4 kernel (aten._weight_int4pack_mm, group 128, bf16 activations) on the shapes of
examples/bench-kernels.cu, for the BENCHMARKS.md kernel table. Needs PyTorch with CUDA.

    python3 benchmarks/torch_int4.py

Timing as bench-kernels: mean of back-to-back calls (100; 30 at M = 256; 10 at M = 2048), median of
three such runs, rotating over enough weight copies to exceed 3x a 50 MB L2. Random codes and
scales: the speed does not depend on their values.
"""
import torch

SHAPES = [("7B qkv", 4096, 12288), ("7B o_proj", 4096, 4096), ("7B gate+up", 4096, 22016),
          ("7B down", 11008, 4096), ("70B gate+up", 8192, 57344), ("70B down", 28672, 8192)]
GROUP = 128


def timed_us(fn, iters):
    for i in range(3):
        fn(i)
    torch.cuda.synchronize()
    runs = []
    for _ in range(3):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for i in range(iters):
            fn(i)
        end.record()
        torch.cuda.synchronize()
        runs.append(start.elapsed_time(end) * 1000.0 / iters)
    return sorted(runs)[1]


def packed_weight(K, N):
    codes = torch.randint(0, 16, (N, K), dtype=torch.int32, device="cuda")
    two_per_byte = ((codes[:, ::2] << 4) | codes[:, 1::2]).to(torch.uint8)
    del codes
    return torch._convert_weight_to_int4pack(two_per_byte, 8)


def main():
    torch.manual_seed(0)
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    for name, K, N in SHAPES:
        copies = max(1, min(32, int(3 * 50e6 / (K * N / 2)) + 1))
        try:
            weights = [(packed_weight(K, N),
                        torch.rand(K // GROUP, N, 2, dtype=torch.bfloat16, device="cuda"))
                       for _ in range(copies)]
        except Exception as e:  # an older or newer torch with another packing contract
            print(f"{name}: torch int4 unavailable: {e}")
            continue
        for M in (1, 16, 64, 256, 2048):
            x = torch.randn(M, K, dtype=torch.bfloat16, device="cuda")
            iters = 100 if M < 256 else (30 if M == 256 else 10)
            us = timed_us(lambda i: torch._weight_int4pack_mm(x, weights[i % copies][0], GROUP,
                                                                weights[i % copies][1]), iters)
            print(f"{name:12s} K={K:5d} N={N:5d} M={M:4d} torch int4 {us:8.1f} us")
        del weights
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()

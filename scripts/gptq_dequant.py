#!/usr/bin/env python3
"""An independent GPTQ dequantizer, written from shared/docs/FORMAT.md alone (standard library only).

    gptq_dequant.py CHECKPOINT_DIR REF_DIR [MODULE ...]

For each quantized module (default: every one found), dequantizes W[n, k] = scales[g, n] *
(q[k, n] - z[g, n]) with g = g_idx[k] straight from the checkpoint's bytes, and compares it with
REF_DIR/<module>.f32 (fp32 [N, K] little-endian, written by the project's own runtime). Exits 1 on
any mismatch larger than float rounding, 0 when every module agrees.
"""
import json
import os
import struct
import sys


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + hlen])
    header.pop("__metadata__", None)
    base = 8 + hlen
    tensors = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        tensors[name] = (t["dtype"], t["shape"], data[base + b:base + e])
    return tensors


def load_all(ckpt):
    index = os.path.join(ckpt, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else \
        [f for f in os.listdir(ckpt) if f.endswith(".safetensors")]
    tensors = {}
    for f in files:
        tensors.update(read_safetensors(os.path.join(ckpt, f)))
    return tensors


def unpack_along(words, n_words_per_line, n_lines, count, bits, line_major):
    """Bit-stream unpacking, lowest bits first. words: list of uint32.
    line_major=False: qweight layout — word r of column n is words[r * n_cols + n] (packed along K).
    line_major=True:  qzeros layout — word c of row g is words[g * n_words_per_line + c] (packed along N)."""
    mask = (1 << bits) - 1
    out = []
    for line in range(n_lines):
        vals = []
        for i in range(count):
            bit = i * bits
            w, s = divmod(bit, 32)
            if line_major:
                lo = words[line * n_words_per_line + w]
                hi = words[line * n_words_per_line + w + 1] if s + bits > 32 else 0
            else:
                lo = words[w * n_lines + line]
                hi = words[(w + 1) * n_lines + line] if s + bits > 32 else 0
            vals.append(((lo | (hi << 32)) >> s) & mask)
        out.append(vals)
    return out


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    ckpt, ref_dir = sys.argv[1], sys.argv[2]
    qcfg = json.load(open(os.path.join(ckpt, "quantize_config.json")))
    bits, v2 = qcfg["bits"], qcfg.get("checkpoint_format", "gptq") == "gptq_v2"
    tensors = load_all(ckpt)
    modules = sys.argv[3:] or sorted(n[:-len(".qweight")] for n in tensors if n.endswith(".qweight"))
    bad = 0
    for m in modules:
        _, (kw, N), qw = tensors[m + ".qweight"]
        G = tensors[m + ".scales"][1][0]
        K = kw * 32 // bits
        qwords = list(struct.unpack("<%dI" % (len(qw) // 4), qw))
        codes = unpack_along(qwords, None, N, K, bits, line_major=False)  # codes[n][k]
        zb = tensors[m + ".qzeros"][2]
        zwords = list(struct.unpack("<%dI" % (len(zb) // 4), zb))
        zeros = unpack_along(zwords, len(zwords) // G, G, N, bits, line_major=True)  # zeros[g][n]
        if not v2:
            zeros = [[z + 1 for z in row] for row in zeros]  # v1 stores z - 1; readers add 1 back
        sb = tensors[m + ".scales"][2]
        scales = struct.unpack("<%de" % (len(sb) // 2), sb)
        gb = tensors[m + ".g_idx"][2]
        g_idx = struct.unpack("<%di" % K, gb)
        ref = open(os.path.join(ref_dir, m + ".f32"), "rb").read()
        W = struct.unpack("<%df" % (N * K), ref)
        worst, scale_max = 0.0, 1e-30
        for n in range(N):
            cn = codes[n]
            for k in range(K):
                g = g_idx[k]
                w = scales[g * N + n] * (cn[k] - zeros[g][n])
                worst = max(worst, abs(w - W[n * K + k]))
                scale_max = max(scale_max, abs(w))
        ok = worst <= 1e-6 * scale_max
        bad += not ok
        print("%-40s N=%-5d K=%-5d G=%-3d max|diff| %.3g  %s" % (m, N, K, G, worst, "ok" if ok else "MISMATCH"))
    print("%d modules, %d mismatches" % (len(modules), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

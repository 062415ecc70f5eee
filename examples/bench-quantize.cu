// bench-quantize — GPTQ on the GPU, end to end, for a Llama-2-7B-shaped model with random fp16
// weights that this program generates in host memory (not timed), quantized w4 g128 act-order
// (static groups, true-sequential: the library's defaults) with 128 calibration windows of 2048
// random tokens. Timed: from the fp16 weights in host memory to the written checkpoint
// (quantize_model_cuda + CheckpointWriter::finish), with a breakdown and the peak device memory.
//
//   bench-quantize [--layers N] [--samples S] [--seq T] [--hidden H] [--inter I] [--heads Hq]
//                  [--kv-heads Hkv] [--vocab V] [--chunk-rows C] [--hessian-fp32] [--forward-fp32] [--out DIR]
//                  [--no-act-order] [--clip none|mse|hessian]
#include "common.h"
#include "backend.h"
#include "config.h"
#include "model.h"
#include "cuda/quant_pipeline.h"
#include "quant/checkpoint_writer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

using namespace gptq;
namespace fs = std::filesystem;

namespace {

struct Args {
    int layers = 32, samples = 128, seq = 2048, hidden = 4096, inter = 11008, heads = 32, kv_heads = 32;
    int vocab = 32000, chunk_rows = 8192;
    bool hessian_fp32 = false, forward_fp32 = false, act_order = true;
    std::string out = "/tmp/bench-quantize-out";
    std::string clip = "mse";  // none, mse or hessian (the library's default: mse)
};

int arg_int(int argc, char **argv, int &i) {
    if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", argv[i]);
        std::exit(2);
    }
    return std::atoi(argv[++i]);
}

Args parse(int argc, char **argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string s = argv[i];
        if (s == "--layers") a.layers = arg_int(argc, argv, i);
        else if (s == "--samples") a.samples = arg_int(argc, argv, i);
        else if (s == "--seq") a.seq = arg_int(argc, argv, i);
        else if (s == "--hidden") a.hidden = arg_int(argc, argv, i);
        else if (s == "--inter") a.inter = arg_int(argc, argv, i);
        else if (s == "--heads") a.heads = arg_int(argc, argv, i);
        else if (s == "--kv-heads") a.kv_heads = arg_int(argc, argv, i);
        else if (s == "--vocab") a.vocab = arg_int(argc, argv, i);
        else if (s == "--chunk-rows") a.chunk_rows = arg_int(argc, argv, i);
        else if (s == "--hessian-fp32") a.hessian_fp32 = true;
        else if (s == "--forward-fp32") a.forward_fp32 = true;
        else if (s == "--no-act-order") a.act_order = false;
        else if (s == "--clip" && i + 1 < argc) a.clip = argv[++i];
        else if (s == "--out" && i + 1 < argc) a.out = argv[++i];
        else {
            std::fprintf(stderr, "unknown argument %s (see the comment at the top of bench-quantize.cu)\n", s.c_str());
            std::exit(2);
        }
    }
    return a;
}

// Fills dst with uniform values of standard deviation sd (fp16), on all cores, reproducibly.
void fill_uniform(uint16_t *dst, size_t n, float sd, uint64_t seed) {
    const float a = sd * std::sqrt(3.f);
    const size_t block = size_t(1) << 20, nb = (n + block - 1) / block;
    const unsigned nt = std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::thread> th;
    for (unsigned t = 0; t < nt; ++t)
        th.emplace_back([=] {
            for (size_t b = t; b < nb; b += nt) {
                uint64_t x = seed * 0x9E3779B97F4A7C15ull + uint64_t(b) * 0xD1B54A32D192ED03ull + 1;
                const size_t i0 = b * block, i1 = std::min(n, i0 + block);
                for (size_t i = i0; i < i1; ++i) {
                    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                    const float u = float(x >> 40) * (1.0f / 16777216.0f);  // [0, 1)
                    dst[i] = f32_to_f16((2.f * u - 1.f) * a);
                }
            }
        });
    for (auto &t : th) t.join();
}

} // namespace

int main(int argc, char **argv) {
    const Args a = parse(argc, argv);
    try {
        const int D = a.hidden / a.heads;
        const std::string cfg_json = strprintf(
            "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": %d, "
            "\"intermediate_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
            "\"num_key_value_heads\": %d, \"vocab_size\": %d, \"max_position_embeddings\": %d, \"rms_norm_eps\": 1e-5, "
            "\"rope_theta\": 10000.0, \"hidden_act\": \"silu\", \"tie_word_embeddings\": false, "
            "\"torch_dtype\": \"float16\", \"bos_token_id\": 1, \"eos_token_id\": 2}",
            a.hidden, a.inter, a.layers, a.heads, a.kv_heads, a.vocab, std::max(4096, a.seq));
        Model m;
        m.cfg = parse_model_config(cfg_json, "bench-quantize");
        const int H = a.hidden, I = a.inter, V = a.vocab, qd = a.heads * D, kvd = a.kv_heads * D;

        // The fp16 weights, all in one host buffer (as a memory-mapped checkpoint would be).
        std::deque<TensorView> views;
        std::vector<std::pair<size_t, std::vector<int64_t>>> layout;
        size_t total = 0;
        auto add = [&](const std::string &name, std::vector<int64_t> shape) -> TensorView * {
            TensorView v;
            v.name = name;
            v.dtype = DType::F16;
            v.shape = shape;
            v.file = "(generated)";
            size_t n = 1;
            for (int64_t d : shape) n *= size_t(d);
            v.nbytes = n * 2;
            layout.push_back({total, shape});
            total += n;
            views.push_back(v);
            return &views.back();
        };
        TensorView *embed = add("model.embed_tokens.weight", {V, H});
        TensorView *norm = add("model.norm.weight", {H});
        TensorView *head = add("lm_head.weight", {V, H});
        m.layers.resize(size_t(a.layers));
        auto linear = [&](LinearWeights &w, const std::string &name, int in, int out) {
            w.name = name;
            w.in = in;
            w.out = out;
            w.weight = add(name + ".weight", {out, in});
        };
        for (int l = 0; l < a.layers; ++l) {
            LayerWeights &L = m.layers[size_t(l)];
            const std::string p = strprintf("model.layers.%d.", l);
            L.attn_norm = add(p + "input_layernorm.weight", {H});
            L.mlp_norm = add(p + "post_attention_layernorm.weight", {H});
            linear(L.q, p + "self_attn.q_proj", H, qd);
            linear(L.k, p + "self_attn.k_proj", H, kvd);
            linear(L.v, p + "self_attn.v_proj", H, kvd);
            linear(L.o, p + "self_attn.o_proj", qd, H);
            linear(L.gate, p + "mlp.gate_proj", H, I);
            linear(L.up, p + "mlp.up_proj", H, I);
            linear(L.down, p + "mlp.down_proj", I, H);
        }
        std::printf("generating %.2f GB of random fp16 weights (%d layers, hidden %d, intermediate %d, vocab %d)\n",
                    double(total) * 2 / 1e9, a.layers, H, I, V);
        const auto g0 = std::chrono::steady_clock::now();
        std::vector<uint16_t> host(total);
        size_t i = 0;
        for (TensorView &v : views) {
            uint16_t *p = host.data() + layout[i].first;
            v.data = reinterpret_cast<const uint8_t *>(p);
            const size_t n = v.nbytes / 2;
            if (v.shape.size() == 1) {
                std::fill(p, p + n, f32_to_f16(1.0f));  // norms
            } else {
                const float sd = &v == embed ? 1.0f : 1.0f / std::sqrt(float(v.shape[1]));
                fill_uniform(p, n, sd, i + 1);
            }
            ++i;
        }
        m.embed = embed;
        m.final_norm = norm;
        m.lm_head.name = "lm_head";
        m.lm_head.in = H;
        m.lm_head.out = V;
        m.lm_head.weight = head;
        CalibrationSet calib;
        calib.n_samples = a.samples;
        calib.seq_len = a.seq;
        calib.tokens.resize(size_t(a.samples) * a.seq);
        uint64_t x = 12345;
        for (auto &t : calib.tokens) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            t = int32_t((x >> 33) % uint64_t(V));
        }
        calib.source = "random tokens";
        std::printf("generated in %.1f s\n",
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - g0).count());

        gptq_quantize_params qp = gptq_quantize_params_default();
        qp.desc_act = a.act_order ? 1 : 0;
        if (a.clip != "none" && a.clip != "mse" && a.clip != "hessian") {
            std::fprintf(stderr, "--clip takes none, mse or hessian\n");
            return 2;
        }
        qp.clip_search = a.clip == "none" ? GPTQ_CLIP_NONE : a.clip == "mse" ? GPTQ_CLIP_MSE : GPTQ_CLIP_HESSIAN;
        const PipelineOptions po = pipeline_options(qp);  // as gptq_quantize() builds them
        GpuQuantOptions g;
        g.hessian_fp32 = a.hessian_fp32;
        g.forward_fp32 = a.forward_fp32;
        g.chunk_rows = a.chunk_rows;
        std::printf("quantizing: w%d g%d %s%s, clip %s, %d windows x %d tokens, Hessians %s\n", qp.bits,
                    qp.group_size, a.act_order ? "act-order" : "in order", po.gptq.static_groups ? " static groups" : "",
                    a.clip.c_str(), a.samples, a.seq, a.forward_fp32 ? "fp32 (precise mode: fp32 forward)" : a.hessian_fp32 ? "fp32" : "fp16 inputs, fp32 accumulation");
        std::error_code ec;
        fs::remove_all(a.out, ec);
        const std::string src = a.out + ".src";  // no tokenizer files to copy
        fs::create_directories(src, ec);

        const auto t0 = std::chrono::steady_clock::now();
        GpuQuantStats st;
        double t_finish = 0;
        {
            CheckpointWriter writer(src, a.out, int64_t(2) << 30);
            quantize_model_cuda(m, calib, po, writer, g, &st);
            const auto f0 = std::chrono::steady_clock::now();
            writer.finish(m.cfg, po.qc);
            t_finish = std::chrono::duration<double>(std::chrono::steady_clock::now() - f0).count();
        }
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        size_t bytes = 0;
        for (const auto &e : fs::directory_iterator(a.out))
            if (e.is_regular_file()) bytes += size_t(e.file_size());
        std::printf("\nwall time, fp16 weights in host memory -> written checkpoint: %.2f s\n", wall);
        std::printf("  GPU time by phase: upload %.2f s, forward %.2f s, Hessian %.2f s, solve %.2f s, pack %.2f s\n",
                    st.t_upload, st.t_forward, st.t_hessian, st.t_solve, st.t_pack);
        std::printf("  write: waiting on the writer thread %.2f s + finish (last shard, index, rename) %.2f s\n",
                    st.t_write, t_finish);
        std::printf("  other (host work, synchronization): %.2f s\n",
                    wall - (st.t_upload + st.t_forward + st.t_hessian + st.t_solve + st.t_pack + st.t_write + t_finish));
        std::printf("peak GPU memory: %.2f GB in the quantizer's own buffers; %.2f GB device memory in use at most "
                    "(context, cuBLAS/cuSOLVER workspaces included)\n",
                    double(st.peak_bytes) / 1e9, double(st.peak_device_used) / 1e9);
        std::printf("checkpoint: %.2f GB in %s; total GPTQ loss %.4g; %d layers kept in fp16\n", double(bytes) / 1e9,
                    a.out.c_str(), st.total_error, st.n_fp16_layers);
        fs::remove_all(src, ec);
    } catch (const Error &e) {
        std::fprintf(stderr, "bench-quantize: %s\n", e.what());
        return 1;
    }
    return 0;
}

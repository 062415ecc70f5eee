// quant_pipeline.cu — the layer-by-layer GPTQ pipeline on the GPU (see quant_pipeline.h).
//
// Host memory holds the model (memory-mapped fp16/bf16/fp32 safetensors); the GPU holds one
// decoder layer at a time plus the calibration activations:
//   X     fp32 [R, hidden]  the residual stream of all R = n_samples · seq_len calibration rows,
//                           replaced in place by each layer's output (fp32: it accumulates 2 terms
//                           per layer; fp16 would round the stream the CPU keeps in fp32)
//   attn  fp16 [R, q_dim]   attention output, input of o_proj (fp16, as the matmul reads it)
//   S_*   fp32              Σ x xᵀ of the four layer inputs (attn, o, mlp, down)
//   the layer's weights in fp16 (forward) and one sublayer in fp32 (solve), the solver's factor
//   (two K x K fp32 matrices) and per-chunk scratch for C rows.
//
// Peak device memory (bytes), with P = the largest layer's parameter count, NKmax its largest
// sublayer, Kmax its largest input, Hq heads, T = seq_len:
//   4·R·H + 2·R·qd                                  activations
//   + 4·(2·H² + qd² + I²)                           Hessian sums
//   + 2·P + 4·(2·NKmax) + 1.5·NKmax + 8·Kmax²       weights, solve copies (W, permuted W), codes and
//                                                   qweight, factor (A, U)
//   + 2·C·H + 2·C·max(qd + 4·kvd, 3·I) + 6·Hq·T²    chunk scratch, attention scores
//   (+ 4·C·max(H, qd, I) with hessian_fp32) + cuBLAS/cuSOLVER workspaces
// Llama-2-7B shape, R = 128·2048, C = 8192: 4.29 + 2.15 + 0.69 + 0.40 + 0.41 + 0.97 + 1.41 GB
// ≈ 10.3 GB (decimal; measured on an H100: 10.35 GB of own buffers, 11.09 GB in use with the
// context and the libraries' workspaces), independent of the model's depth: a model much larger
// than the GPU quantizes as long as one layer and the activations fit. The precise (fp32) mode
// doubles the terms of attn, the layer weights and the chunk scratch (2·R·qd -> 4·R·qd, ...) and
// scores in fp32 per KV head (4·Hkv·T² instead of 6·Hq·T²): 13.3 GB for the 7B shape, measured.
#include "cuda/quant_pipeline.h"

#include "cuda/attention.cuh"
#include "cuda/cuda_backend.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/quant_fp32.cuh"
#include "cuda/quant_solver.cuh"

#include "common.h"
#include "quant/pack.h"

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace gptq {

std::string cuda_quantize_unsupported_reason(const PipelineOptions &o) {
    if (o.gptq.block_size > 128)
        return strprintf("block_size %d (the GPU solver takes up to 128)", o.gptq.block_size);
    return "";
}

namespace cuda {
namespace {

using Clock = std::chrono::steady_clock;
inline unsigned nblocks(size_t n, int t) { return unsigned((n + t - 1) / t); }

// ------------------------------------------------------------------ small kernels

// Raw weights (F32 = 0, F16 = 1, BF16 = 2) to fp32 or fp16.
template <class Out> __device__ __forceinline__ Out cvt_out(float v);
template <> __device__ __forceinline__ float cvt_out<float>(float v) { return v; }
template <> __device__ __forceinline__ __half cvt_out<__half>(float v) { return __float2half_rn(v); }

template <class Out>
__global__ void convert_kernel(const uint8_t *src, int kind, size_t n, Out *dst) {
    const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v;
    if (kind == 0) {
        v = reinterpret_cast<const float *>(src)[i];
    } else {
        const uint16_t b = reinterpret_cast<const uint16_t *>(src)[i];
        v = kind == 1 ? __half2float(__ushort_as_half(b)) : __uint_as_float(uint32_t(b) << 16);
    }
    dst[i] = cvt_out<Out>(v);
}

__global__ void half_to_float_kernel(const __half *src, size_t n, float *dst) {
    const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = __half2float(src[i]);
}


// y[r, c0 + j] += b[j] for j < cols (fp16 or fp32 rows of stride ld).
template <class T>
__global__ void add_bias_kernel(T *y, size_t rows, int ld, int c0, const float *b, int cols) {
    const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    const size_t r = i / cols;
    const int j = int(i % cols);
    T *p = y + r * ld + c0 + j;
    if constexpr (sizeof(T) == 2) *p = __float2half_rn(__half2float(*p) + b[j]);
    else *p = *p + b[j];
}

__global__ void count_nonfinite_kernel(const float *x, size_t n, int *count) {
    int bad = 0;
    for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
        bad += !isfinite(x[i]);
    if (bad) atomicAdd(count, bad);
}

__global__ void window_positions_kernel(int32_t *pos, int32_t *seq, int rows, int T) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < rows) { pos[i] = i % T; seq[i] = i / T; }
}

// ------------------------------------------------------------------ the writer thread

// Runs the checkpoint writes in order on one thread so disk time overlaps the GPU work.
class WriterThread {
public:
    WriterThread() : th_([this] { loop(); }) {}
    ~WriterThread() { stop(); }
    void post(std::function<void()> f) {
        rethrow();
        std::lock_guard<std::mutex> lk(mu_);
        q_.push_back(std::move(f));
        cv_.notify_all();
    }
    // Waits for everything posted so far; rethrows the first failure.
    void drain() {
        std::unique_lock<std::mutex> lk(mu_);
        done_cv_.wait(lk, [&] { return q_.empty() && !busy_; });
        lk.unlock();
        rethrow();
    }
    void stop() {
        {
            std::lock_guard<std::mutex> lk(mu_);
            quit_ = true;
            cv_.notify_all();
        }
        if (th_.joinable()) th_.join();
    }

private:
    void rethrow() {
        std::lock_guard<std::mutex> lk(mu_);
        if (err_) {
            std::exception_ptr e = err_;
            err_ = nullptr;
            std::rethrow_exception(e);
        }
    }
    void loop() {
        for (;;) {
            std::function<void()> f;
            {
                std::unique_lock<std::mutex> lk(mu_);
                cv_.wait(lk, [&] { return quit_ || !q_.empty(); });
                if (q_.empty()) return;
                f = std::move(q_.front());
                q_.pop_front();
                busy_ = true;
            }
            try {
                if (!failed_) f();
            } catch (...) {
                std::lock_guard<std::mutex> lk(mu_);
                if (!err_) err_ = std::current_exception();
                failed_ = true;
            }
            std::lock_guard<std::mutex> lk(mu_);
            busy_ = false;
            done_cv_.notify_all();
        }
    }
    std::mutex mu_;
    std::condition_variable cv_, done_cv_;
    std::deque<std::function<void()>> q_;
    std::exception_ptr err_;
    bool quit_ = false, busy_ = false, failed_ = false;
    std::thread th_;
};

// ------------------------------------------------------------------ GPU timing by category

enum Cat { kUpload, kForward, kHessian, kSolve, kPack, kCats };

class PhaseTimer {
public:
    explicit PhaseTimer(cudaStream_t s) : s_(s) {}
    ~PhaseTimer() {
        for (auto &p : pending_) { cudaEventDestroy(p.a); cudaEventDestroy(p.b); }
        for (cudaEvent_t e : free_) cudaEventDestroy(e);
    }
    void begin(Cat c) {
        cur_ = c;
        a_ = take();
        CUDA_CHECK(cudaEventRecord(a_, s_));
    }
    void end() {
        cudaEvent_t b = take();
        CUDA_CHECK(cudaEventRecord(b, s_));
        pending_.push_back({cur_, a_, b});
    }
    // Adds up the finished intervals (synchronizes the stream).
    void collect(double *secs) {
        CUDA_CHECK(cudaStreamSynchronize(s_));
        for (auto &p : pending_) {
            float ms = 0;
            CUDA_CHECK(cudaEventElapsedTime(&ms, p.a, p.b));
            secs[p.c] += ms / 1000.0;
            free_.push_back(p.a);
            free_.push_back(p.b);
        }
        pending_.clear();
    }

private:
    cudaEvent_t take() {
        if (!free_.empty()) { cudaEvent_t e = free_.back(); free_.pop_back(); return e; }
        cudaEvent_t e;
        CUDA_CHECK(cudaEventCreate(&e));
        return e;
    }
    struct Interval { Cat c; cudaEvent_t a, b; };
    cudaStream_t s_;
    Cat cur_ = kForward;
    cudaEvent_t a_ = nullptr;
    std::vector<Interval> pending_;
    std::vector<cudaEvent_t> free_;
};

// ------------------------------------------------------------------ the pipeline

struct Sub {
    const LinearWeights *w;
    const char *short_name;
    void *slot;            // its rows in the fused forward weights (fp16, or fp32 in the precise mode)
    const float *bias_d;   // its bias on the device, or null
    bool quantized = false;
    // what the writer gets
    std::vector<int32_t> qweight, zeros, g_idx;
    std::vector<uint16_t> scales;
    int G = 1;
    double error = 0;
    float damp = 0;
};

class Pipeline {
public:
    Pipeline(Model &m, const CalibrationSet &calib, const PipelineOptions &o, CheckpointWriter &out,
             const GpuQuantOptions &g, GpuQuantStats &st)
        : m_(m), c_(m.cfg), calib_(calib), o_(o), g_(g), out_(out), st_(st), timer_(nullptr) {
        H_ = c_.hidden_size;
        I_ = c_.intermediate_size;
        qd_ = c_.n_heads * c_.head_dim;
        kvd_ = c_.n_kv_heads * c_.head_dim;
        T_ = calib.seq_len;
        R_ = int64_t(calib.n_samples) * T_;
        chunk_windows_ = std::max(1, std::min(g.chunk_rows / T_, calib.n_samples));
        if (int64_t(chunk_windows_) * T_ > 65535) chunk_windows_ = std::max(1, 65535 / T_);
        C_ = chunk_windows_ * T_;
        total_steps_ = int64_t(c_.n_layers) * 7;
        seq_ = o.qc.true_sequential;
        f32_ = g.forward_fp32;
        es_ = f32_ ? 4 : 2;
    }

    void run(const SolverHandles &h) {
        h_ = h;
        PhaseTimer timer(h_.stream);
        timer_ = &timer;
        allocate();
        embed();
        for (int l = 0; l < c_.n_layers; ++l) {
            quantize_layer(l);
            timer.collect(secs_);
        }
        writer_.post([this] { write_float("model.norm.weight", *m_.final_norm); });
        if (m_.lm_head.weight != m_.embed) writer_.post([this] { write_float("lm_head.weight", *m_.lm_head.weight); });
        const auto t0 = Clock::now();
        writer_.drain();
        st_.t_write += std::chrono::duration<double>(Clock::now() - t0).count();
        st_.t_upload += secs_[kUpload];
        st_.t_forward += secs_[kForward];
        st_.t_hessian += secs_[kHessian];
        st_.t_solve += secs_[kSolve];
        st_.t_pack += secs_[kPack];
        st_.total_error = total_error_;
        st_.n_fp16_layers = n_fp16_;
    }

private:
    // --------------------------------------------------------------- memory
    void allocate() {
        X_.reserve(size_t(R_) * H_);
        attn_.reserve(size_t(R_) * qd_ * es_);
        S_attn_.reserve(size_t(H_) * H_);
        S_o_.reserve(size_t(qd_) * qd_);
        S_mlp_.reserve(size_t(H_) * H_);
        S_down_.reserve(size_t(I_) * I_);
        w_qkv_.reserve(size_t(qd_ + 2 * kvd_) * H_ * es_);
        w_o_.reserve(size_t(H_) * qd_ * es_);
        w_gu_.reserve(size_t(2 * I_) * H_ * es_);
        w_down_.reserve(size_t(H_) * I_ * es_);
        xn_.reserve(size_t(C_) * std::max(H_, qd_) * es_);
        if (f32_) {
            big_.reserve(std::max(size_t(C_) * (qd_ + 2 * kvd_), size_t(C_) * 3 * I_) * 4);
            attn_scratch_.reserve(attention_f32_scratch_floats(T_, c_.n_kv_heads));
        } else {
            big_.reserve(std::max(size_t(C_) * (qd_ + 4 * kvd_), size_t(C_) * 3 * I_) * 2);
            attn_scratch_.reserve(attention_gemm_scratch_floats(T_, c_.n_heads, T_));
        }
        if (g_.hessian_fp32 && !f32_) x32_.reserve(size_t(C_) * std::max(std::max(H_, qd_), I_));
        if (!seq_) tmp32_.reserve(size_t(C_) * H_);
        pos_.reserve(size_t(C_));
        seqid_.reserve(size_t(C_));
        window_positions_kernel<<<nblocks(size_t(C_), 256), 256, 0, h_.stream>>>(pos_.get(), seqid_.get(), C_, T_);
        CUDA_CHECK_LAUNCH();
        std::vector<float> inv(size_t(c_.head_dim / 2));
        for (int i = 0; i < c_.head_dim / 2; ++i)  // as the CPU backend (and transformers) compute it
            inv[size_t(i)] = 1.0f / float(std::pow(c_.rope_theta, double(2 * i) / c_.head_dim));
        inv_freq_.reserve(inv.size());
        CUDA_CHECK(cudaMemcpyAsync(inv_freq_.get(), inv.data(), inv.size() * 4, cudaMemcpyHostToDevice, h_.stream));
        nonfinite_.reserve(1);
        bias_.reserve(size_t(qd_ + 2 * kvd_ + H_));
        sample_memory();
    }

    void sample_memory() {
        size_t free_b = 0, total_b = 0;
        if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
            st_.peak_device_used = std::max(st_.peak_device_used, total_b - free_b);
    }

    // --------------------------------------------------------------- weights
    static int raw_kind(DType t) { return t == DType::F32 ? 0 : t == DType::F16 ? 1 : t == DType::BF16 ? 2 : -1; }

    // Tensor t (numel elements) to the device as Out (fp16 or fp32).
    template <class Out> void upload(const TensorView &t, Out *dst) {
        const size_t n = size_t(t.numel());
        const int kind = raw_kind(t.dtype);
        if (kind == 1 && sizeof(Out) == 2) {
            CUDA_CHECK(cudaMemcpyAsync(dst, t.data, n * 2, cudaMemcpyHostToDevice, h_.stream));
            return;
        }
        if (kind < 0) {  // F64 and the like: through the host converter
            std::vector<float> f(n);
            tensor_to_f32(t, f.data());
            staging_.reserve(n * 4);
            CUDA_CHECK(cudaMemcpyAsync(staging_.get(), f.data(), n * 4, cudaMemcpyHostToDevice, h_.stream));
            convert_kernel<Out><<<nblocks(n, 256), 256, 0, h_.stream>>>(staging_.get(), 0, n, dst);
            CUDA_CHECK_LAUNCH();
            CUDA_CHECK(cudaStreamSynchronize(h_.stream));
            return;
        }
        staging_.reserve(t.nbytes);
        CUDA_CHECK(cudaMemcpyAsync(staging_.get(), t.data, t.nbytes, cudaMemcpyHostToDevice, h_.stream));
        convert_kernel<Out><<<nblocks(n, 256), 256, 0, h_.stream>>>(staging_.get(), kind, n, dst);
        CUDA_CHECK_LAUNCH();
    }

    void upload_layer(const LayerWeights &lw, std::vector<Sub> &subs) {
        timer_->begin(kUpload);
        norm1_.reserve(size_t(H_));
        norm2_.reserve(size_t(H_));
        upload(*lw.attn_norm, norm1_.get());
        upload(*lw.mlp_norm, norm2_.get());
        for (Sub &s : subs) {
            const LinearWeights &w = *s.w;
            if (w.quantized)
                fail(GPTQ_ERR_INVALID_ARG, "%s is already GPTQ-quantized; quantize the float model", w.name.c_str());
            if (f32_) upload(*w.weight, static_cast<float *>(s.slot));
            else upload(*w.weight, static_cast<__half *>(s.slot));
            if (w.bias) upload(*w.bias, const_cast<float *>(s.bias_d));
        }
        timer_->end();
    }

    // --------------------------------------------------------------- matrix products
    // C [rows, N] (ldc) = A [rows, K] (lda) · Wᵀ, W [N, K]: fp16 in and out with fp32
    // accumulation, or fp32 SGEMM in the precise mode.
    void gemm(const void *A, int lda, int64_t rows, const void *W, int N, int K, void *Cm, int ldc) {
        const float one = 1.f, zero = 0.f;
        if (f32_)
            CUBLAS_CHECK(cublasSgemm(h_.blas, CUBLAS_OP_T, CUBLAS_OP_N, N, int(rows), K, &one, static_cast<const float *>(W),
                                     K, static_cast<const float *>(A), lda, &zero, static_cast<float *>(Cm), ldc));
        else
            CUBLAS_CHECK(cublasGemmEx(h_.blas, CUBLAS_OP_T, CUBLAS_OP_N, N, int(rows), K, &one, W, CUDA_R_16F, K, A,
                                      CUDA_R_16F, lda, &zero, Cm, CUDA_R_16F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    // X [rows, N] fp32 += A · Wᵀ.
    void gemm_acc32(const void *A, int lda, int64_t rows, const void *W, int N, int K, float *Xr, int ldx) {
        const float one = 1.f;
        if (f32_)
            CUBLAS_CHECK(cublasSgemm(h_.blas, CUBLAS_OP_T, CUBLAS_OP_N, N, int(rows), K, &one, static_cast<const float *>(W),
                                     K, static_cast<const float *>(A), lda, &one, Xr, ldx));
        else
            CUBLAS_CHECK(cublasGemmEx(h_.blas, CUBLAS_OP_T, CUBLAS_OP_N, N, int(rows), K, &one, W, CUDA_R_16F, K, A,
                                      CUDA_R_16F, lda, &one, Xr, CUDA_R_32F, ldx, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    // S [K, K] += Aᵀ A for A [rows, K]: fp16 inputs on tensor cores with fp32 accumulation (fp16
    // products are exact in fp32), or fp32 GEMMs (the fp16 inputs widened when hessian_fp32; the
    // fp32 activations themselves in the precise mode).
    void hessian(float *S, const void *A, int64_t rows, int K) {
        timer_->begin(kHessian);
        const float one = 1.f;
        if (f32_ || g_.hessian_fp32) {
            const float *a = static_cast<const float *>(A);
            if (!f32_) {
                const size_t n = size_t(rows) * K;
                half_to_float_kernel<<<nblocks(n, 256), 256, 0, h_.stream>>>(static_cast<const __half *>(A), n, x32_.get());
                CUDA_CHECK_LAUNCH();
                a = x32_.get();
            }
            CUBLAS_CHECK(cublasSgemm(h_.blas, CUBLAS_OP_N, CUBLAS_OP_T, K, K, int(rows), &one, a, K, a, K, &one, S, K));
        } else {
            CUBLAS_CHECK(cublasGemmEx(h_.blas, CUBLAS_OP_N, CUBLAS_OP_T, K, K, int(rows), &one, A, CUDA_R_16F, K, A,
                                      CUDA_R_16F, K, &one, S, CUDA_R_32F, K, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        }
        timer_->end();
    }

    template <class T> void add_bias(T *y, int64_t rows, int ld, int c0, const float *b, int cols) {
        if (!b) return;
        add_bias_kernel<T><<<nblocks(size_t(rows) * cols, 256), 256, 0, h_.stream>>>(y, size_t(rows), ld, c0, b, cols);
        CUDA_CHECK_LAUNCH();
    }

    // --------------------------------------------------------------- forward pieces (one chunk)
    void norm(const float *x, int64_t rows, const float *w, void *out) {
        if (f32_) rmsnorm_f32(x, int(rows), H_, w, c_.rms_norm_eps, static_cast<float *>(out), h_.stream);
        else rmsnorm(x, H_, nullptr, int(rows), H_, w, c_.rms_norm_eps, nullptr, static_cast<__half *>(out), H_, h_.stream);
    }
    void *attn_rows(int64_t r0) const { return attn_.get() + size_t(r0) * qd_ * es_; }

    // attn rows [r0, r0 + rows) from xn through the current q, k, v.
    void attention_chunk(const void *xn, int64_t r0, int64_t rows, const Sub &q, const Sub &k, const Sub &v) {
        const int ldq = qd_ + 2 * kvd_;
        const int nw = int(rows / T_);
        if (f32_) {
            float *qkv = reinterpret_cast<float *>(big_.get());
            gemm(xn, H_, rows, w_qkv_.get(), ldq, H_, qkv, ldq);
            add_bias(qkv, rows, ldq, 0, q.bias_d, qd_);
            add_bias(qkv, rows, ldq, qd_, k.bias_d, kvd_);
            add_bias(qkv, rows, ldq, qd_ + kvd_, v.bias_d, kvd_);
            attention_f32(h_.blas, qkv, ldq, nw, T_, c_.n_heads, c_.n_kv_heads, c_.head_dim, inv_freq_.get(),
                          attn_scratch_.get(), static_cast<float *>(attn_rows(r0)), qd_, h_.stream);
            return;
        }
        __half *qkv = reinterpret_cast<__half *>(big_.get());
        __half *kc = qkv + size_t(C_) * ldq, *vc = kc + size_t(C_) * kvd_;
        gemm(xn, H_, rows, w_qkv_.get(), ldq, H_, qkv, ldq);
        add_bias(qkv, rows, ldq, 0, q.bias_d, qd_);
        add_bias(qkv, rows, ldq, qd_, k.bias_d, kvd_);
        add_bias(qkv, rows, ldq, qd_ + kvd_, v.bias_d, kvd_);
        KVLayer kv;
        kv.k = kc; kv.v = vc; kv.n_seq = nw; kv.n_kv = c_.n_kv_heads; kv.n_ctx = T_; kv.D = c_.head_dim;
        rope_store_kv(qkv, int(rows), ldq, pos_.get(), seqid_.get(), inv_freq_.get(), c_.n_heads, c_.n_kv_heads,
                      c_.head_dim, kv, h_.stream);
        const float scale = 1.0f / std::sqrt(float(c_.head_dim));
        for (int s = 0; s < nw; ++s)
            attention_gemm(h_.blas, qkv + size_t(s) * T_ * ldq, ldq, pos_.get(), T_, T_, s, c_.n_heads, kv, scale,
                           attn_scratch_.get(), static_cast<__half *>(attn_rows(r0 + int64_t(s) * T_)), qd_, h_.stream);
    }

    // act [rows, I] = silu(xn · gateᵀ) * (xn · upᵀ); returns act.
    void *mlp_act(const void *xn, int64_t rows, const Sub &gate, const Sub &up) {
        if (f32_) {
            float *gu = reinterpret_cast<float *>(big_.get());
            float *act = gu + size_t(C_) * 2 * I_;
            gemm(xn, H_, rows, w_gu_.get(), 2 * I_, H_, gu, 2 * I_);
            add_bias(gu, rows, 2 * I_, 0, gate.bias_d, I_);
            add_bias(gu, rows, 2 * I_, I_, up.bias_d, I_);
            silu_mul_f32(gu, rows, I_, act, h_.stream);
            return act;
        }
        __half *gu = reinterpret_cast<__half *>(big_.get());
        __half *act = gu + size_t(C_) * 2 * I_;
        gemm(xn, H_, rows, w_gu_.get(), 2 * I_, H_, gu, 2 * I_);
        add_bias(gu, rows, 2 * I_, 0, gate.bias_d, I_);
        add_bias(gu, rows, 2 * I_, I_, up.bias_d, I_);
        silu_mul(gu, int(rows), I_, act, h_.stream);
        return act;
    }

    template <class F> void for_chunks(F &&f) {
        for (int s0 = 0; s0 < calib_.n_samples; s0 += chunk_windows_) {
            const int ns = std::min(chunk_windows_, calib_.n_samples - s0);
            f(int64_t(s0) * T_, int64_t(ns) * T_);
        }
    }

    // --------------------------------------------------------------- embeddings
    void embed() {
        const TensorView &e = *m_.embed;
        timer_->begin(kUpload);
        DevBuf<__half> table(size_t(e.numel()));
        upload(e, table.get());
        DevBuf<int32_t> tok(calib_.tokens.size());
        CUDA_CHECK(cudaMemcpyAsync(tok.get(), calib_.tokens.data(), calib_.tokens.size() * 4, cudaMemcpyHostToDevice,
                                   h_.stream));
        timer_->end();
        timer_->begin(kForward);
        embed_lookup(tok.get(), int(R_), table.get(), H_, X_.get(), h_.stream);
        timer_->end();
        CUDA_CHECK(cudaStreamSynchronize(h_.stream));
        writer_.post([this] { write_float("model.embed_tokens.weight", *m_.embed); });
    }

    void write_float(const std::string &name, const TensorView &t) {
        Buffer<float> b(size_t(t.numel()));
        tensor_to_f32(t, b.data());
        out_.add_f16(name, t.shape, b.data());
    }

    // --------------------------------------------------------------- solving
    void factor(GpuFactor &f, const float *S, int K, const char *what, int layer) {
        timer_->begin(kSolve);
        GptqOptions opt = o_.gptq;
        if (opt.group_size >= K) opt.group_size = -1;
        f.build(S, R_, K, opt, strprintf("model.layers.%d.%s", layer, what).c_str(), h_);
        timer_->end();
    }

    void solve(Sub &s, const GpuFactor &f, int layer) {
        const auto t0 = Clock::now();
        const LinearWeights &w = *s.w;
        if (keep_unpackable_in_fp16(w, o_.gptq)) {
            n_fp16_++;
        } else {
            const GptqOptions opt = layer_options(o_.gptq, w);
            const int N = w.out, K = w.in;
            const size_t NK = size_t(N) * K;
            timer_->begin(kSolve);
            w32_.reserve(NK);
            if (f32_) {  // the fp32 forward copy is the exact weight
                CUDA_CHECK(cudaMemcpyAsync(w32_.get(), s.slot, NK * 4, cudaMemcpyDeviceToDevice, h_.stream));
            } else if (raw_kind(w.weight->dtype) == 1) {  // so is the fp16 one of an fp16 checkpoint
                half_to_float_kernel<<<nblocks(NK, 256), 256, 0, h_.stream>>>(static_cast<const __half *>(s.slot), NK,
                                                                              w32_.get());
                CUDA_CHECK_LAUNCH();
            } else {
                upload(*w.weight, w32_.get());
            }
            GpuLayerResult &r = result_;
            solver_.solve(w32_.get(), N, K, f, opt, w.name.c_str(), h_, r);
            timer_->end();
            timer_->begin(kPack);
            const int bits = opt.bits;
            const size_t words = size_t(K) * bits / 32 * N;
            qweight_.reserve(words);
            solver_.pack(r, f, bits, qweight_.get(), h_.stream);
            if (f32_) solver_.dequantize(r, f, static_cast<float *>(s.slot), K, h_.stream);
            else solver_.dequantize(r, f, static_cast<__half *>(s.slot), K, h_.stream);
            s.qweight.resize(words);
            CUDA_CHECK(cudaMemcpyAsync(s.qweight.data(), qweight_.get(), words * 4, cudaMemcpyDeviceToHost, h_.stream));
            std::vector<float> sc(size_t(r.G) * N), zf(size_t(r.G) * N);
            CUDA_CHECK(cudaMemcpyAsync(sc.data(), r.scales.get(), sc.size() * 4, cudaMemcpyDeviceToHost, h_.stream));
            CUDA_CHECK(cudaMemcpyAsync(zf.data(), r.zeros.get(), zf.size() * 4, cudaMemcpyDeviceToHost, h_.stream));
            CUDA_CHECK(cudaStreamSynchronize(h_.stream));
            timer_->end();
            s.scales.resize(sc.size());
            s.zeros.resize(zf.size());
            for (size_t i = 0; i < sc.size(); ++i) {
                s.scales[i] = f32_to_f16(sc[i]);
                s.zeros[i] = int32_t(zf[i]);
            }
            s.g_idx = gptq_g_idx(f, r.gs, r.static_groups);
            s.G = r.G;
            s.error = r.error;
            s.damp = r.damp_used;
            s.quantized = true;
            total_error_ += r.error;
            sample_memory();
        }
        step_++;
        if (o_.progress) {
            const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
            std::string detail = strprintf("layer %d/%d %s err %.3g damp %.3g %.2fs", layer + 1, c_.n_layers,
                                           s.short_name, s.quantized ? s.error : 0.0, double(s.quantized ? s.damp : 0.f),
                                           secs);
            if (o_.progress("quantize", step_, total_steps_, detail.c_str(), o_.user))
                fail(GPTQ_ERR_ABORTED, "quantization cancelled at layer %d (%s)", layer, s.short_name);
        }
    }

    // --------------------------------------------------------------- one layer
    void quantize_layer(int l) {
        const LayerWeights &lw = m_.layers[size_t(l)];
        float *bq = bias_.get(), *bk = bq + qd_, *bv = bk + kvd_, *bo = bv + kvd_;
        std::vector<Sub> subs = {
            {&lw.q, "self_attn.q_proj", w_qkv_.get(), lw.q.bias ? bq : nullptr},
            {&lw.k, "self_attn.k_proj", w_qkv_.get() + size_t(qd_) * H_ * es_, lw.k.bias ? bk : nullptr},
            {&lw.v, "self_attn.v_proj", w_qkv_.get() + size_t(qd_ + kvd_) * H_ * es_, lw.v.bias ? bv : nullptr},
            {&lw.o, "self_attn.o_proj", w_o_.get(), lw.o.bias ? bo : nullptr},
            {&lw.gate, "mlp.gate_proj", w_gu_.get(), nullptr},
            {&lw.up, "mlp.up_proj", w_gu_.get() + size_t(I_) * H_ * es_, nullptr},
            {&lw.down, "mlp.down_proj", w_down_.get(), nullptr},
        };
        for (int i : {4, 5, 6})
            if (subs[size_t(i)].w->bias)
                fail(GPTQ_ERR_UNSUPPORTED, "%s has a bias, which the GPU quantizer does not take",
                     subs[size_t(i)].w->name.c_str());
        Sub &q = subs[0], &k = subs[1], &v = subs[2], &o = subs[3], &gate = subs[4], &up = subs[5], &down = subs[6];
        upload_layer(lw, subs);
        for (DevBuf<float> *S : {&S_attn_, &S_o_, &S_mlp_, &S_down_})
            CUDA_CHECK(cudaMemsetAsync(S->get(), 0, S->size() * 4, h_.stream));
        void *xn = xn_.get();

        // 1. q, k, v: input is norm(X). Without true-sequential order every Hessian comes from
        //    the unquantized layer, collected here.
        for_chunks([&](int64_t r0, int64_t rows) {
            timer_->begin(kForward);
            norm(X_.get() + r0 * H_, rows, norm1_.get(), xn);
            timer_->end();
            hessian(S_attn_.get(), xn, rows, H_);
            if (!seq_) {
                timer_->begin(kForward);
                attention_chunk(xn, r0, rows, q, k, v);
                timer_->end();
                hessian(S_o_.get(), attn_rows(r0), rows, qd_);
                timer_->begin(kForward);
                float *h = tmp32_.get();
                CUDA_CHECK(cudaMemcpyAsync(h, X_.get() + r0 * H_, size_t(rows) * H_ * 4, cudaMemcpyDeviceToDevice,
                                           h_.stream));
                gemm_acc32(attn_rows(r0), qd_, rows, w_o_.get(), H_, qd_, h, H_);
                add_bias(h, rows, H_, 0, o.bias_d, H_);
                norm(h, rows, norm2_.get(), xn);
                timer_->end();
                hessian(S_mlp_.get(), xn, rows, H_);
                timer_->begin(kForward);
                void *act = mlp_act(xn, rows, gate, up);
                timer_->end();
                hessian(S_down_.get(), act, rows, I_);
            }
        });
        {
            GpuFactor &f = factor_;
            factor(f, S_attn_.get(), H_, "self_attn.q/k/v_proj", l);
            solve(k, f, l);
            solve(v, f, l);
            solve(q, f, l);
        }

        // 2. o: input is the attention output through the quantized q, k, v.
        for_chunks([&](int64_t r0, int64_t rows) {
            timer_->begin(kForward);
            norm(X_.get() + r0 * H_, rows, norm1_.get(), xn);
            attention_chunk(xn, r0, rows, q, k, v);
            timer_->end();
            if (seq_) hessian(S_o_.get(), attn_rows(r0), rows, qd_);
        });
        {
            GpuFactor &f = factor_;
            factor(f, S_o_.get(), qd_, "self_attn.o_proj", l);
            solve(o, f, l);
        }

        // 3. X += o(attn) through the quantized o (the residual after attention, in place);
        //    up and gate read norm(X).
        for_chunks([&](int64_t r0, int64_t rows) {
            timer_->begin(kForward);
            float *x = X_.get() + r0 * H_;
            gemm_acc32(attn_rows(r0), qd_, rows, w_o_.get(), H_, qd_, x, H_);
            add_bias(x, rows, H_, 0, o.bias_d, H_);
            if (seq_) norm(x, rows, norm2_.get(), xn);
            timer_->end();
            if (seq_) hessian(S_mlp_.get(), xn, rows, H_);
        });
        {
            GpuFactor &f = factor_;
            factor(f, S_mlp_.get(), H_, "mlp.gate_proj/up_proj", l);
            solve(up, f, l);
            solve(gate, f, l);
        }

        // 4. down: input is silu(gate) * up through the quantized gate and up.
        if (seq_) {
            for_chunks([&](int64_t r0, int64_t rows) {
                timer_->begin(kForward);
                norm(X_.get() + r0 * H_, rows, norm2_.get(), xn);
                void *act = mlp_act(xn, rows, gate, up);
                timer_->end();
                hessian(S_down_.get(), act, rows, I_);
            });
        }
        {
            GpuFactor &f = factor_;
            factor(f, S_down_.get(), I_, "mlp.down_proj", l);
            solve(down, f, l);
        }

        // 5. The layer's output through the fully quantized layer becomes the next layer's input.
        timer_->begin(kForward);
        for_chunks([&](int64_t r0, int64_t rows) {
            float *x = X_.get() + r0 * H_;
            norm(x, rows, norm2_.get(), xn);
            void *act = mlp_act(xn, rows, gate, up);
            gemm_acc32(act, I_, rows, w_down_.get(), H_, I_, x, H_);
        });
        CUDA_CHECK(cudaMemsetAsync(nonfinite_.get(), 0, sizeof(int), h_.stream));
        count_nonfinite_kernel<<<1024, 256, 0, h_.stream>>>(X_.get(), size_t(R_) * H_, nonfinite_.get());
        CUDA_CHECK_LAUNCH();
        timer_->end();
        int bad = 0;
        CUDA_CHECK(cudaMemcpyAsync(&bad, nonfinite_.get(), sizeof(int), cudaMemcpyDeviceToHost, h_.stream));
        CUDA_CHECK(cudaStreamSynchronize(h_.stream));
        if (bad) fail(GPTQ_ERR_NUMERIC, "layer %d: non-finite activations in the quantized layer's output", l);

        // The layer's tensors, in the CPU pipeline's order, on the writer thread.
        auto subs_p = std::make_shared<std::vector<Sub>>(std::move(subs));
        writer_.post([this, l, subs_p] {
            const LayerWeights &lw2 = m_.layers[size_t(l)];
            const std::string p = strprintf("model.layers.%d.", l);
            write_float(p + "input_layernorm.weight", *lw2.attn_norm);
            write_float(p + "post_attention_layernorm.weight", *lw2.mlp_norm);
            for (int i : {0, 1, 2, 3, 4, 5, 6}) {
                const Sub &s = (*subs_p)[size_t(i)];
                const LinearWeights &w = *s.w;
                if (s.quantized)
                    write_gptq_tensors(out_, w.name, w.in, w.out, s.G, o_.gptq.bits, o_.format, s.qweight.data(),
                                       s.zeros.data(), s.scales.data(), s.g_idx.data());
                else
                    write_float(w.name + ".weight", *w.weight);
                if (w.bias) write_float(w.name + ".bias", *w.bias);
            }
        });
    }

    Model &m_;
    const ModelConfig &c_;
    const CalibrationSet &calib_;
    const PipelineOptions &o_;
    const GpuQuantOptions &g_;
    CheckpointWriter &out_;
    GpuQuantStats &st_;
    PhaseTimer *timer_;
    SolverHandles h_;
    GpuSolver solver_;
    GpuFactor factor_;         // reused: its buffers grow to the largest input once
    GpuLayerResult result_;
    int H_ = 0, I_ = 0, qd_ = 0, kvd_ = 0, T_ = 0, C_ = 0, chunk_windows_ = 1;
    int64_t R_ = 0;
    bool seq_ = true;
    DevBuf<float> X_, S_attn_, S_o_, S_mlp_, S_down_, x32_, tmp32_, attn_scratch_, inv_freq_, norm1_, norm2_, w32_,
        bias_;
    // Activations and forward weights: fp16, or fp32 in the precise mode (es_ bytes an element).
    DevBuf<uint8_t> attn_, w_qkv_, w_o_, w_gu_, w_down_, xn_, big_;
    bool f32_ = false;
    size_t es_ = 2;
    DevBuf<int32_t> pos_, seqid_, qweight_;
    DevBuf<int> nonfinite_;
    DevBuf<uint8_t> staging_;
    double secs_[kCats] = {0, 0, 0, 0, 0};
    int64_t step_ = 0, total_steps_ = 0;
    int n_fp16_ = 0;
    double total_error_ = 0;
    WriterThread writer_;  // last: joined first, while everything it reads is alive
};

} // namespace
} // namespace cuda

void quantize_model_cuda(Model &m, const CalibrationSet &calib, const PipelineOptions &o, CheckpointWriter &out,
                         const GpuQuantOptions &g, GpuQuantStats *stats) {
    const std::string why = cuda_quantize_unsupported_reason(o);
    if (!why.empty()) fail(GPTQ_ERR_UNSUPPORTED, "the GPU quantizer does not take %s; use the CPU backend", why.c_str());
    cuda::require_cuda_device(g.device, "GPU quantization");
    CUDA_CHECK(cudaSetDevice(g.device));
    if (calib.n_samples <= 0 || calib.seq_len <= 0 ||
        calib.tokens.size() != size_t(calib.n_samples) * size_t(calib.seq_len))
        fail(GPTQ_ERR_INVALID_ARG, "calibration set of %d x %d tokens holds %zu", calib.n_samples, calib.seq_len,
             calib.tokens.size());
    GpuQuantStats local;
    GpuQuantStats &st = stats ? *stats : local;
    const auto t0 = cuda::Clock::now();
    cuda::quant_bytes_peak() = cuda::quant_bytes_live().load();
    const cuda::OwnedSolverHandles handles(cudaStreamNonBlocking);
    {
        cuda::Pipeline pipe(m, calib, o, out, g, st);
        pipe.run(handles.get());
    }
    st.peak_bytes = cuda::quant_bytes_peak();
    st.t_total = std::chrono::duration<double>(cuda::Clock::now() - t0).count();
}

} // namespace gptq

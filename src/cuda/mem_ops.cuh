// mem_ops.cuh — the memory instructions the streaming kernels are built from.
//
// ld_stream: a 16-byte load of data read once (weights): not kept in L1, served by the read-only
// path.
//
// A bulk copy (cp.async.bulk) moves `bytes` (a multiple of 16) from global to shared memory without
// registers or threads and reports the bytes to an mbarrier when they land (prefetch_l2: into the L2
// only, nothing reported; the fused kernel's L2 head); a thread that armed the
// barrier with the expected bytes waits on its phase parity. Used by the wgmma kernel's producer
// and by bench-stream. With them, the cluster barrier, distributed shared-memory loads and stores
// and remote mbarrier arrivals of the fused kernel's two-split sums. sm_90 and newer only: callers
// compile them under __CUDA_ARCH__ >= 900.
#pragma once

#include <cstdint>

namespace gptq {
namespace cuda {

// Whether p may be read or written with 16-byte accesses (the launchers' checks).
inline bool aligned16(const void *p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

__device__ __forceinline__ uint4 ld_stream(const uint4 *p) {
    uint4 r;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
        : "l"(p));
    return r;
}

__device__ __forceinline__ uint32_t smem_addr(const void *p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Whether the calling block is the last of `count` blocks to arrive at *counter (every thread of
// the block calls it; all get the same answer). What any thread of an arriving block wrote before
// the call is visible to every thread of the last block after it: the barrier orders the block's
// writes before thread 0's release, and the last block's acquire before its threads' reads (the
// PTX model's cumulativity). Why not __threadfence in every thread: that is a sequentially
// consistent fence per thread, where one acquire-release atomic per block is all the order needs.
__device__ __forceinline__ bool last_to_arrive(unsigned *counter, unsigned count) {
    __shared__ unsigned s_last;
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned prev;
        asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], 1;" : "=r"(prev) : "l"(counter) : "memory");
        s_last = prev == count - 1;
    }
    __syncthreads();
    return s_last != 0;
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

// Asks the L2 to fetch [p, p + bytes) (16-byte aligned, a multiple of 16 bytes) from memory: one
// instruction, no registers or shared memory, nothing to wait for.
__device__ __forceinline__ void prefetch_l2(const void *p, uint32_t bytes) {
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory");
}

__device__ __forceinline__ void mbar_init(uint32_t bar, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
// After a block's barriers are initialised, before any thread or copy uses them.
__device__ __forceinline__ void mbar_init_fence() {
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    asm volatile(
        "{\n.reg .pred done;\nwait_%=:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
        "@!done bra wait_%=;\n}\n" ::"r"(bar),
        "r"(parity)
        : "memory");
}
// Thread-block clusters: every thread of every block in the cluster arrives (release) and waits
// (acquire), so shared-memory writes before it are visible to the cluster's reads after it.
__device__ __forceinline__ void cluster_sync() {
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}
// The same barrier in two halves: arrive early (relaxed: what it orders was released by a fence),
// wait later (acquire), so the blocks of a cluster meet without idling at the meeting point.
__device__ __forceinline__ void cluster_arrive_relaxed() {
    asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
}
__device__ __forceinline__ void cluster_wait() { asm volatile("barrier.cluster.wait.aligned;" ::: "memory"); }
__device__ __forceinline__ uint32_t cluster_blocks() {
    uint32_t n;
    asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(n));
    return n;
}
__device__ __forceinline__ uint32_t dynamic_smem_bytes() {
    uint32_t n;
    asm volatile("mov.u32 %0, %%dynamic_smem_size;" : "=r"(n));
    return n;
}
__device__ __forceinline__ uint32_t cluster_rank() {
    uint32_t r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
}
// The float4 at `local` (this block's shared memory) in the shared memory of cluster block `rank`.
__device__ __forceinline__ float4 ld_cluster_f4(const void *local, uint32_t rank) {
    uint32_t remote;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(smem_addr(local)), "r"(rank));
    float4 v;
    asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];"
                 : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
                 : "r"(remote)
                 : "memory");
    return v;
}
// Writes v to the float4 at `local` (this block's shared memory) in the shared memory of cluster
// block `rank`.
__device__ __forceinline__ void st_cluster_f4(const void *local, uint32_t rank, const float4 &v) {
    uint32_t remote;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(smem_addr(local)), "r"(rank));
    asm volatile("st.shared::cluster.v4.f32 [%0], {%1, %2, %3, %4};" ::"r"(remote), "f"(v.x), "f"(v.y), "f"(v.z),
                 "f"(v.w)
                 : "memory");
}
// Arrives (release, cluster scope: this thread's earlier writes to that block's shared memory
// land first) on the mbarrier at `bar` (this block's shared-memory address) of cluster block `rank`.
__device__ __forceinline__ void mbar_arrive_remote(uint32_t bar, uint32_t rank) {
    uint32_t remote;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(bar), "r"(rank));
    asm volatile("mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%0];" ::"r"(remote) : "memory");
}
// mbar_wait with cluster-scope acquire: what other blocks of the cluster released into this
// block's shared memory before arriving is visible after it.
__device__ __forceinline__ void mbar_wait_cluster(uint32_t bar, uint32_t parity) {
    asm volatile(
        "{\n.reg .pred done;\nwait_%=:\n"
        "mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 done, [%0], %1;\n"
        "@!done bra wait_%=;\n}\n" ::"r"(bar),
        "r"(parity)
        : "memory");
}
// 16 bytes from global to shared memory without registers (cp.async, L2 only); the issuing thread
// waits for all of its copies with cp_async_wait_all.
__device__ __forceinline__ void cp_async16(uint32_t dst, const void *src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() {
    asm volatile("cp.async.commit_group;\ncp.async.wait_group 0;" ::: "memory");
}
__device__ __forceinline__ void bulk_copy(uint32_t dst, const void *src, uint32_t bytes, uint32_t bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(dst),
                 "l"(src), "r"(bytes), "r"(bar)
                 : "memory");
}

#endif

} // namespace cuda
} // namespace gptq

// kernel_trace.cpp — see kernel_trace.h.
#include "kernel_trace.h"

#include <algorithm>
#include <cstdlib>
#include <cxxabi.h>
#include <mutex>
#include <string>

#ifdef GPTQ_HAVE_CUPTI
#include <cupti.h>
#endif

namespace gptq {
namespace bench {

namespace {

std::mutex g_mu;
std::vector<KernelSpan> g_spans;

std::string short_name(const char *mangled) {
    int st = 0;
    char *d = abi::__cxa_demangle(mangled, nullptr, nullptr, &st);
    std::string s = (st == 0 && d) ? d : mangled;
    std::free(d);
    // Drop the argument list and the namespaces: "gptq::cuda::(anon)::q4_fused_kernel<1, false, 0, 4>".
    int depth = 0;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '<') ++depth;
        if (s[i] == '>') --depth;
        static const std::string anon = "(anonymous namespace)";
        if (s[i] == '(' && depth == 0 && i > 0 && s.compare(i, anon.size(), anon) != 0) {
            s.resize(i);
            break;
        }
    }
    for (const char *ns : {"gptq::cuda::", "(anonymous namespace)::", "void "}) {
        size_t p;
        while ((p = s.find(ns)) != std::string::npos) s.erase(p, std::string(ns).size());
    }
    return s;
}

#ifdef GPTQ_HAVE_CUPTI
void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records) {
    *size = size_t(8) << 20;
    *buffer = static_cast<uint8_t *>(std::aligned_alloc(8, *size));
    *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t *buffer, size_t, size_t valid) {
    CUpti_Activity *rec = nullptr;
    std::lock_guard<std::mutex> lock(g_mu);
    while (cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
        if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) continue;
        const auto *k = reinterpret_cast<const CUpti_ActivityKernel10 *>(rec);
        g_spans.push_back({short_name(k->name) + " [" + std::to_string(k->gridX) + "x" + std::to_string(k->gridY) + "]",
                           k->start, k->end});
    }
    std::free(buffer);
}
#endif

} // namespace

bool trace_begin(std::string *why) {
#ifdef GPTQ_HAVE_CUPTI
    {
        std::lock_guard<std::mutex> lock(g_mu);
        g_spans.clear();
    }
    CUptiResult r = cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed);
    if (r == CUPTI_SUCCESS) r = cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    if (r != CUPTI_SUCCESS) {
        const char *s = nullptr;
        cuptiGetResultString(r, &s);
        if (why) *why = std::string("CUPTI: ") + (s ? s : "error");
        return false;
    }
    return true;
#else
    if (why) *why = "built without CUPTI";
    return false;
#endif
}

std::vector<KernelSpan> trace_end() {
#ifdef GPTQ_HAVE_CUPTI
    cuptiActivityFlushAll(1);
    cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
#endif
    std::lock_guard<std::mutex> lock(g_mu);
    std::vector<KernelSpan> out = std::move(g_spans);
    g_spans.clear();
    std::sort(out.begin(), out.end(), [](const KernelSpan &a, const KernelSpan &b) { return a.start < b.start; });
    return out;
}

} // namespace bench
} // namespace gptq

#include "core/sgemm.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include "lutmul/core/error.h"
#include "lutmul/core/product_backend.h"

namespace lutmul {
namespace detail {
OpenMpThreadsForCall::OpenMpThreadsForCall(int threads) : saved_(omp_get_max_threads()) {
  if (threads >= 1 && threads != saved_) omp_set_num_threads(threads);
}

OpenMpThreadsForCall::~OpenMpThreadsForCall() {
  if (omp_get_max_threads() != saved_) omp_set_num_threads(saved_);
}

void sgemm(bool a_transposed, bool b_transposed, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
           int64_t ldb, float beta, float* c, int64_t ldc, int threads) {
  if (m <= 0 || n <= 0) return;
  const OpenMpThreadsForCall scope(threads);
  const dnnl_status_t status =
      dnnl_sgemm(a_transposed ? 'T' : 'N', b_transposed ? 'T' : 'N', m, n, k, 1.f, a, lda, b, ldb, beta, c, ldc);
  LUTMUL_CHECK(status == dnnl_success, "oneDNN sgemm failed (status ", static_cast<int>(status), ") for ", m,
               " x ", k, " x ", n);
}

}  // namespace detail

namespace {
const char* isa_name(dnnl_cpu_isa_t isa) {
  switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_all: return "all";
    default: return "unknown";
  }
}
}  // namespace

const ProductBackend& exact_product_backend() {
  static const ProductBackend backend = [] {
    const dnnl_version_t* v = dnnl_version();
    ProductBackend b;
    b.library = "oneDNN";
    b.version = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
    b.isa = isa_name(dnnl_get_effective_cpu_isa());
    return b;
  }();
  return backend;
}

}  // namespace lutmul

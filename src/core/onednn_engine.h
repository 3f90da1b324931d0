// Internal: the one oneDNN CPU engine every primitive of lutmul runs on (bf16, int8, small
// f32 batches), made on first use.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

namespace lutmul::detail {

const dnnl::engine& onednn_cpu_engine();

}  // namespace lutmul::detail

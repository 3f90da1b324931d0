#include "core/onednn_engine.h"

namespace lutmul::detail {

const dnnl::engine& onednn_cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

}  // namespace lutmul::detail

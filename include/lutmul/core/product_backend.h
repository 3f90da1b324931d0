// Which library runs lutmul's exact f32 products and which instruction set it chose for this
// CPU: printed next to every benchmark, and checked by a test, so that a slow fallback kernel
// cannot go unnoticed.
#pragma once

#include <string>

namespace lutmul {

struct ProductBackend {
  std::string library;  // "oneDNN"
  std::string version;  // "2.6.3"
  std::string isa;      // the widest instruction set it may use here: "avx512_core_bf16", "avx2", ...
};

// Read on first use; the same object afterwards.
const ProductBackend& exact_product_backend();

}  // namespace lutmul

// What a product does to its result as it stores it, so a layer can write its output once:
//   Y = act(X·W + bias)        (accumulate = false)
//   Y = Y + act(X·W + bias)    (accumulate = true: a residual already in Y)
// act is the identity or GELU, x·Φ(x) with Φ the normal CDF (the erf form BERT uses), to
// float rounding.
#pragma once

#include <cstdint>

namespace lutmul {

struct Epilogue {
  enum class Activation : uint8_t { none, gelu };
  Activation activation = Activation::none;
  bool accumulate = false;

  bool plain() const { return activation == Activation::none && !accumulate; }
};

}  // namespace lutmul

// The ISA sweep of every kernel family's tests: one test instance per level lutmul knows
// (all_isas()), in one process, the level set with set_isa() for the test's duration and the
// one before restored after it. A level this CPU or build cannot run skips with the reason,
// and so does a SIMD level that runs the scalar kernel of the family under test: it would
// only compare the reference with itself. Nothing here probes the CPU; the kernel registry
// says what each level runs.
//
// Two kinds of sweep:
//  - against the reference: a level's kernels equal the scalar ones bit for bit. Instantiate
//    over simd_levels(); the scalar level is the reference itself and has no instance.
//  - at every level: properties any level must have (exact math to a tolerance, API
//    agreement, errors). Instantiate over every_level(), the scalar level included.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "lutmul/core/isa.h"

namespace lutmul {

// gtest prints a level by its name ("avx2", not its bytes) in test listings and messages.
inline void PrintTo(Isa isa, std::ostream* os) { *os << isa_name(isa); }

}  // namespace lutmul

namespace lutmul::testing {

enum class Family { maddness, int8, sparse, sparse24, lora, runtime, dense };

std::string family_name(Family family);

// Every level lutmul knows, scalar first.
std::vector<Isa> every_level();
// Every level but scalar: those a test against the scalar reference checks.
std::vector<Isa> simd_levels();

// Why a test of `family` at `isa` must skip, or "" when it can run: "<isa> is not supported
// by this CPU or build", or "<isa> runs the scalar <family> kernel".
std::string reason_to_skip(Isa isa, Family family);

// Forces a level for its lifetime; the level active before comes back after.
class LevelScope {
 public:
  explicit LevelScope(Isa isa);
  ~LevelScope();
  LevelScope(const LevelScope&) = delete;
  LevelScope& operator=(const LevelScope&) = delete;

 private:
  Isa previous_;
};

inline Isa level_of(Isa isa) { return isa; }
template <typename... Rest>
Isa level_of(const std::tuple<Isa, Rest...>& param) {
  return std::get<0>(param);
}

// Base fixture of a family's sweep. Param is an Isa or a tuple whose first element is one.
// A derived fixture that overrides SetUp calls this one first and returns if IsSkipped().
template <Family kFamily, typename Param = Isa>
class LevelTest : public ::testing::TestWithParam<Param> {
 protected:
  static Isa level() { return level_of(::testing::TestWithParam<Param>::GetParam()); }

  void SetUp() override {
    const std::string reason = reason_to_skip(level(), kFamily);
    if (!reason.empty()) GTEST_SKIP() << reason;
    scope_.emplace(level());
  }
  void TearDown() override { scope_.reset(); }

 private:
  std::optional<LevelScope> scope_;
};

// Every combination of the axes' values, the first axis outermost (as ::testing::Combine).
inline std::vector<std::tuple<>> cartesian() { return {std::tuple<>{}}; }
template <typename T, typename... Rest>
std::vector<std::tuple<T, Rest...>> cartesian(const std::vector<T>& first, const std::vector<Rest>&... rest) {
  const std::vector<std::tuple<Rest...>> tails = cartesian(rest...);
  std::vector<std::tuple<T, Rest...>> out;
  for (const T& value : first)
    for (const std::tuple<Rest...>& tail : tails) out.push_back(std::tuple_cat(std::make_tuple(value), tail));
  return out;
}

// The parameters of a shape grid swept over `levels`: every shape at each level that runs the
// family's own kernel, and only the first shape at a level that skips, so that it shows as
// skipped once per test, not once per shape.
template <typename... Axis>
std::vector<std::tuple<Isa, Axis...>> level_grid(Family family, const std::vector<Isa>& levels,
                                                 const std::vector<Axis>&... axes) {
  const std::vector<std::tuple<Axis...>> shapes = cartesian(axes...);
  std::vector<std::tuple<Isa, Axis...>> out;
  for (Isa isa : levels) {
    const bool skips = !reason_to_skip(isa, family).empty();
    for (const std::tuple<Axis...>& shape : shapes) {
      out.push_back(std::tuple_cat(std::make_tuple(isa), shape));
      if (skips) break;
    }
  }
  return out;
}

// Test name suffix of a plain level sweep: "avx512".
struct LevelName {
  std::string operator()(const ::testing::TestParamInfo<Isa>& info) const { return isa_name(info.param); }
};

}  // namespace lutmul::testing

// lutmul::Error: the one exception type for user errors (bad shapes, bad values,
// unreadable files, an instruction set the CPU lacks).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace lutmul {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
template <typename... Parts>
[[noreturn]] void throw_error(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  throw Error(out.str());
}
}  // namespace detail

}  // namespace lutmul

// Throws lutmul::Error with the streamed message parts when `condition` is false.
#define LUTMUL_CHECK(condition, ...)                                \
  do {                                                              \
    if (!(condition)) ::lutmul::detail::throw_error(__VA_ARGS__);   \
  } while (0)

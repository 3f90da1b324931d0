// expect_error: a call must throw lutmul::Error whose message names every given part.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "lutmul/core/error.h"

namespace lutmul::testing {

// Runs `call`, which must throw lutmul::Error with every one of `parts` in its message.
template <class Call>
void expect_error(Call&& call, const std::vector<std::string>& parts) {
  try {
    call();
    ADD_FAILURE() << "no error; expected one naming '" << parts.front() << "'";
  } catch (const Error& e) {
    for (const std::string& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

}  // namespace lutmul::testing

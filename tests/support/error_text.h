#pragma once
// The message of the error a statement throws, for tests that check what an error says.
#include <functional>
#include <string>

#include "tune/core/error.h"

namespace tune::test {

// What `f` throws as an `E` (tune::Error, or a subclass such as tune::UsageError); `none` when it
// throws nothing. Any other exception propagates (the test fails with it).
template <class E = tune::Error>
std::string error_of(const std::function<void()>& f, const std::string& none = "") {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return none;
}

}  // namespace tune::test

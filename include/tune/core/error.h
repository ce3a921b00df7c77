#pragma once
// Errors are exceptions with context, caught once in main and printed as one line.
//   tune::Error       runtime failure (exit code 1): bad file, I/O, numerical trouble.
//   tune::UsageError  the user asked for something invalid (exit code 2): CLI or config errors.
#include <stdexcept>
#include <string>

#include "tune/core/str.h"

namespace tune {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class UsageError : public Error {
 public:
  using Error::Error;
};

// Throws tune::Error with the concatenated message.
template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(::tune::str(args...));  // qualified: ADL would also find c10::str for torch arguments
}

template <class... Args>
[[noreturn]] void usage_fail(const Args&... args) {
  throw UsageError(::tune::str(args...));
}

}  // namespace tune

// TUNE_CHECK(cond, "message parts", ...): throws tune::Error when cond is false.
#define TUNE_CHECK(cond, ...)          \
  do {                                 \
    if (!(cond)) ::tune::fail(__VA_ARGS__); \
  } while (0)

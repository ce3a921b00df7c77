#pragma once
// Wall-clock stamps written into run directories and checkpoints.
#include <string>

namespace tune {

// The current UTC time as ISO 8601 with seconds, e.g. "2026-12-02T04:41:03Z".
std::string utc_timestamp();

}  // namespace tune

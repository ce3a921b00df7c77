#pragma once
// The job's world from its launch environment: world size 1 is a LocalCommunicator (nothing is
// opened); otherwise a c10d TCP store (rank 0 serves it, or torchrun's agent does) and one Gloo
// process group over it, for CPU tensors. Collectives that fail (a rank died, the network broke) or
// take longer than env.timeout_s throw tune::Error: no rank waits forever.
#include <memory>

#include "tune/dist/launch.h"
#include "tune/train/communicator.h"

namespace tune::dist {

std::shared_ptr<train::Communicator> connect(const LaunchEnv& env);

}  // namespace tune::dist

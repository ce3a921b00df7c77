#include "tune/dist/launch.h"

#include <cstdlib>

#include "tune/core/error.h"
#include "tune/core/str.h"

namespace tune::dist {

namespace {

int integer(const Getenv& getenv, const std::string& name, int min) {
  auto value = getenv(name);
  if (!value) usage_fail("data parallelism: environment variable ", name, " is not set (the launcher sets it)");
  size_t used = 0;
  long v = 0;
  try {
    v = std::stol(*value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value->size() || v < min || v > 1'000'000)
    usage_fail("data parallelism: environment variable ", name, "='", *value, "' is not an integer >= ", min);
  return static_cast<int>(v);
}

}  // namespace

LaunchEnv launch_env(const Getenv& getenv) {
  LaunchEnv env;
  std::string rank_var, size_var, local_var;
  if (getenv("WORLD_SIZE") || getenv("RANK")) {
    env.launcher = "torchrun";
    rank_var = "RANK", size_var = "WORLD_SIZE", local_var = "LOCAL_RANK";
  } else if (getenv("SLURM_NTASKS") && getenv("SLURM_PROCID")) {
    env.launcher = "slurm";
    rank_var = "SLURM_PROCID", size_var = "SLURM_NTASKS", local_var = "SLURM_LOCALID";
  } else if (getenv("OMPI_COMM_WORLD_SIZE")) {
    env.launcher = "mpi";
    rank_var = "OMPI_COMM_WORLD_RANK", size_var = "OMPI_COMM_WORLD_SIZE", local_var = "OMPI_COMM_WORLD_LOCAL_RANK";
  }
  if (auto t = getenv("TUNE_DIST_TIMEOUT_S")) {
    char* end = nullptr;
    double v = std::strtod(t->c_str(), &end);
    if (t->empty() || *end != '\0' || !(v > 0))
      usage_fail("data parallelism: TUNE_DIST_TIMEOUT_S='", *t, "' is not a positive number of seconds");
    env.timeout_s = v;
  }
  if (env.launcher == "none") return env;

  env.world_size = integer(getenv, size_var, 1);
  env.rank = integer(getenv, rank_var, 0);
  env.local_rank = getenv(local_var) ? integer(getenv, local_var, 0) : 0;
  if (env.rank >= env.world_size)
    usage_fail("data parallelism: ", rank_var, "=", env.rank, " is not below ", size_var, "=", env.world_size);
  if (env.world_size == 1) return env;  // one process under a launcher: nothing to connect

  auto addr = getenv("MASTER_ADDR");
  if (!addr || addr->empty())
    usage_fail("data parallelism: ", size_var, "=", env.world_size, " but MASTER_ADDR is not set (torchrun sets it; ",
               "under Slurm or mpirun export MASTER_ADDR and MASTER_PORT: docs/distributed.md)");
  env.master_addr = *addr;
  if (getenv("MASTER_PORT")) env.master_port = integer(getenv, "MASTER_PORT", 1);
  if (env.master_port > 65535) usage_fail("data parallelism: MASTER_PORT=", env.master_port, " is not a TCP port");
  auto agent = getenv("TORCHELASTIC_USE_AGENT_STORE");
  env.agent_store = agent && (*agent == "True" || *agent == "true" || *agent == "1");
  return env;
}

LaunchEnv launch_env() {
  return launch_env([](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  });
}

}  // namespace tune::dist

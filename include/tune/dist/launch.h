#pragma once
// Where this process sits in a data-parallel job, read from the launcher's environment:
//   torchrun (and torch.distributed.launch): RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT,
//     TORCHELASTIC_USE_AGENT_STORE (the agent already serves the TCP store on MASTER_PORT);
//   Slurm (srun): SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, with MASTER_ADDR / MASTER_PORT set by
//     the batch script;
//   Open MPI (mpirun): OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK.
// Nothing set: one process (world size 1). torchrun's variables win over Slurm's (torchrun under srun).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace tune::dist {

struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string launcher = "none";  // torchrun | slurm | mpi | none
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool agent_store = false;       // torchrun's agent hosts the store: every rank connects as a client
  double timeout_s = 300;         // TUNE_DIST_TIMEOUT_S: connect and collective timeout
};

using Getenv = std::function<std::optional<std::string>(const std::string&)>;

// Parses the variables above; a malformed or inconsistent value is a tune::UsageError naming the
// variable (e.g. "RANK=3 is not below WORLD_SIZE=2").
LaunchEnv launch_env(const Getenv& getenv);
LaunchEnv launch_env();  // from this process's environment

}  // namespace tune::dist

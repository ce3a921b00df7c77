#pragma once
// An external reward program: `/bin/sh -c COMMAND`, started once, fed one JSON line per sample on
// its stdin and answering one JSON line per sample on its stdout, in order:
//   in:  {"prompt": .., "completion": .., "reference": ..|null, "metadata": {..},
//         "completion_tokens": N, "truncated": bool[, "messages": [..]]}
//   out: a number, or null ("cannot judge")
// A batch is written whole (while answers are read, so full pipes never deadlock); its stderr is
// the caller's. A crash, an early EOF, a silence longer than timeout_s, or a line that is not a
// number or null is a tune::Error naming the program, the sample and the text received; the program
// is then stopped and the reward refuses further batches. Destruction closes its stdin, waits
// grace_s for it to exit, then kills its process group; it is always reaped. Torch-free, POSIX.
#include <sys/types.h>

#include <string>

#include "tune/core/config.h"
#include "tune/reward/reward.h"

namespace tune::reward {

struct ProgramOptions {
  std::string command;
  double timeout_s = 60.0;  // longest wait for the next answer line
  double grace_s = 5.0;     // at shutdown: time to exit after its stdin closes, then SIGKILL
  template <class V>
  void visit(V& v) {
    v("command", command, "shell command of the reward program (run with /bin/sh -c, in the working directory)",
      config::Check<std::string>([](const std::string& c) { return c.empty() ? "must be set" : ""; }));
    v("timeout_s", timeout_s, "seconds to wait for each answer line", config::greater_than(0.0));
    v("grace_s", grace_s, "seconds to exit after its stdin closes before it is killed", config::at_least(0.0));
  }
};

// The JSON line a program receives for one sample (without the newline).
std::string program_request(const Sample& sample);

class ProgramReward : public Reward {
 public:
  explicit ProgramReward(ProgramOptions options);  // starts the program
  ~ProgramReward() override;                       // stops and reaps it
  ProgramReward(const ProgramReward&) = delete;
  ProgramReward& operator=(const ProgramReward&) = delete;

  std::vector<Score> score(std::span<const Sample> batch) override;

  pid_t pid() const { return pid_; }  // its process (group) id; 0 once reaped

 private:
  [[noreturn]] void stop_and_fail(const std::string& message);
  std::string wait_exit(double grace_s);  // reaps it: "exited with status N" / "was killed by signal S"
  void close_stdin();
  void drain_between_batches();  // fails on output that answers nothing, or an exit since the last batch

  ProgramOptions options_;
  pid_t pid_ = 0;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  std::string pending_;  // bytes read past the last complete line
  bool failed_ = false;
  int64_t batches_ = 0;
};

}  // namespace tune::reward

#include "tune/reward/program.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "tune/core/error.h"
#include "tune/core/log.h"

namespace tune::reward {

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxLineBytes = 16u << 20;  // an answer line longer than this is not an answer

// The received text for an error message: JSON-quoted (control bytes visible), cut at 200 bytes.
std::string shown(std::string_view text) {
  constexpr size_t kLimit = 200;
  std::string cut(text.substr(0, kLimit));
  std::string quoted = Json(cut).dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > kLimit) quoted += str("... (", text.size(), " bytes)");
  return quoted;
}

void set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) fail("reward program: fcntl: ", std::strerror(errno));
}

// write() to a pipe whose reader may be gone, without SIGPIPE ending this process: the signal is
// blocked for this thread during the call, and the one the call raised (if any) is taken back.
ssize_t write_without_sigpipe(int fd, const char* data, size_t n) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  sigset_t pending;
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  ssize_t w = ::write(fd, data, n);
  const int err = errno;
  if (w < 0 && err == EPIPE && !was_pending) {
    timespec zero{0, 0};
    sigtimedwait(&pipe_set, nullptr, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = err;
  return w;
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

std::string program_request(const Sample& s) {
  Json line = Json::object();
  line["prompt"] = s.prompt;
  line["completion"] = s.completion;
  line["reference"] = s.reference ? Json(*s.reference) : Json(nullptr);
  line["metadata"] = s.metadata;
  line["completion_tokens"] = s.completion_tokens;
  line["truncated"] = s.truncated;
  if (!s.messages.is_null()) line["messages"] = s.messages;
  // A completion cut inside a multi-byte character is not valid UTF-8: send U+FFFD for such bytes.
  return line.dump(-1, ' ', false, Json::error_handler_t::replace);
}

ProgramReward::ProgramReward(ProgramOptions options) : options_(std::move(options)) {
  if (options_.command.empty()) usage_fail("reward program: command is empty");
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) fail("reward program \"", options_.command, "\": pipe: ", std::strerror(errno));
  if (::pipe2(out, O_CLOEXEC) != 0) {
    const int err = errno;
    ::close(in[0]);
    ::close(in[1]);
    fail("reward program \"", options_.command, "\": pipe: ", std::strerror(err));
  }
  const char* argv[] = {"sh", "-c", options_.command.c_str(), nullptr};
  // The parent's environment, plus PYTHONUNBUFFERED=1 unless set: a Python program that forgets to
  // flush its answers would otherwise hold them in its buffer while this side waits for them.
  std::vector<std::string> env_strings;
  for (char** e = environ; e && *e; ++e) env_strings.emplace_back(*e);
  if (!std::getenv("PYTHONUNBUFFERED")) env_strings.emplace_back("PYTHONUNBUFFERED=1");
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    for (int fd : {in[0], in[1], out[0], out[1]}) ::close(fd);
    fail("reward program \"", options_.command, "\": fork: ", std::strerror(err));
  }
  if (pid == 0) {
    // The child of a multi-threaded parent: only async-signal-safe calls until exec.
    ::setpgid(0, 0);  // its own process group, so a stop reaches what the shell started too
#ifdef CLOSE_RANGE_CLOEXEC
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);  // no inherited descriptors of the parent
#endif
    // Copies above 2 first: a pipe end may itself be fd 0 or 1 when the parent had those closed.
    const int child_in = ::fcntl(in[0], F_DUPFD_CLOEXEC, 3);
    const int child_out = ::fcntl(out[1], F_DUPFD_CLOEXEC, 3);
    if (child_in < 0 || child_out < 0 || ::dup2(child_in, 0) < 0 || ::dup2(child_out, 1) < 0) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGPIPE, &dfl, nullptr);
    ::execve("/bin/sh", const_cast<char* const*>(argv), envp.data());
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also from here, so the group exists before any kill (fails harmlessly after exec)
  ::close(in[0]);
  ::close(out[1]);
  pid_ = pid;
  stdin_fd_ = in[1];
  stdout_fd_ = out[0];
  set_nonblocking(stdin_fd_);
  set_nonblocking(stdout_fd_);
}

ProgramReward::~ProgramReward() {
  if (pid_ == 0) return;
  try {
    std::string how = wait_exit(options_.grace_s);
    if (how != "exited with status 0")
      log::warn("reward program \"", options_.command, "\" ", how, " at shutdown");
  } catch (...) {
  }
}

void ProgramReward::close_stdin() { close_fd(stdin_fd_); }

std::string ProgramReward::wait_exit(double grace_s) {
  close_stdin();  // EOF: a well-behaved program finishes and exits
  if (pid_ == 0) return "had already stopped";
  const auto end = Clock::now() + std::chrono::duration<double>(grace_s);
  int status = 0;
  bool killed = false;
  while (true) {
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) break;
    if (r < 0 && errno != EINTR) {  // reaped elsewhere (SIGCHLD ignored): nothing left to wait for
      pid_ = 0;
      close_fd(stdout_fd_);
      return "could not be waited for";
    }
    if (Clock::now() >= end) {
      ::kill(-pid_, SIGKILL);  // the whole group: the shell and what it started
      ::kill(pid_, SIGKILL);
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      killed = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  pid_ = 0;
  close_fd(stdout_fd_);
  if (killed) return str("did not exit within ", grace_s, " s and was killed");
  if (WIFEXITED(status)) {
    const int code = WEXITSTATUS(status);
    // /bin/sh -c waits for the program and reports its death by signal N as status 128 + N.
    if (code > 128 && code < 128 + 65)
      return str("exited with status ", code, " (the shell's code for signal ", code - 128, ": ", strsignal(code - 128), ")");
    return str("exited with status ", code);
  }
  if (WIFSIGNALED(status)) return str("was killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)), ")");
  return "stopped";
}

void ProgramReward::stop_and_fail(const std::string& message) {
  failed_ = true;
  if (pid_ != 0) wait_exit(0.0);  // its state is unknown: stop it now
  throw Error(message);
}

void ProgramReward::drain_between_batches() {
  // Nothing may arrive between batches: such bytes would be taken for the next batch's answers.
  const std::string who = str("reward program \"", options_.command, "\"");
  std::vector<char> buffer(1 << 16);
  while (true) {
    const ssize_t r = ::read(stdout_fd_, buffer.data(), buffer.size());
    if (r > 0) {
      pending_.append(buffer.data(), static_cast<size_t>(r));
      continue;
    }
    if (r == 0) {
      const std::string how = wait_exit(1.0);
      stop_and_fail(str(who, " ", how, " between batches (after ", batches_, " batches)"));
    }
    if (errno == EINTR) continue;
    break;  // EAGAIN: nothing there
  }
  if (!trim(pending_).empty())
    stop_and_fail(str(who, " wrote more lines than it was sent samples: ", shown(pending_), " arrived between batches"));
  pending_.clear();
}

std::vector<Score> ProgramReward::score(std::span<const Sample> batch) {
  const std::string who = str("reward program \"", options_.command, "\"");
  if (failed_) fail(who, " stopped after an earlier error");
  std::vector<Score> out;
  out.reserve(batch.size());
  if (batch.empty()) return out;
  const size_t n = batch.size();
  drain_between_batches();
  std::string payload;
  for (const auto& s : batch) payload += program_request(s) + "\n";

  const auto timeout = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options_.timeout_s));
  auto deadline = Clock::now() + timeout;
  size_t written = 0;  // bytes of payload sent
  size_t sent = 0;     // sample lines sent whole
  std::vector<char> buffer(1 << 16);
  while (true) {
    // Answers already read.
    for (size_t nl; out.size() < n && (nl = pending_.find('\n')) != std::string::npos;) {
      std::string line = pending_.substr(0, nl);
      pending_.erase(0, nl + 1);
      const size_t index = out.size();
      if (index >= sent)
        stop_and_fail(str(who, " answered sample ", index, " before it was sent (it writes more lines than it reads?): ",
                          shown(line)));
      Json value;
      try {
        value = Json::parse(std::string(trim(line)));
      } catch (const std::exception&) {
        stop_and_fail(str(who, ": the answer line for sample ", index, " of ", n, " is not JSON: ", shown(line)));
      }
      if (value.is_null()) out.push_back(std::nullopt);
      else if (value.is_number()) out.push_back(value.get<double>());
      else stop_and_fail(str(who, ": the answer for sample ", index, " of ", n, " is not a number or null: ", shown(line)));
      deadline = Clock::now() + timeout;
    }
    if (out.size() == n) break;
    if (pending_.size() > kMaxLineBytes)
      stop_and_fail(str(who, ": the answer line for sample ", out.size(), " is longer than ", kMaxLineBytes, " bytes: ",
                        shown(pending_)));

    const auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero())
      stop_and_fail(str(who, " gave no answer for sample ", out.size(), " of ", n, " within ", options_.timeout_s,
                        " s (timeout_s); it was stopped"));
    pollfd fds[2] = {{stdout_fd_, POLLIN, 0}, {stdin_fd_, POLLOUT, 0}};
    const bool writing = written < payload.size() && stdin_fd_ >= 0;
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    const int rc = ::poll(fds, writing ? 2 : 1, static_cast<int>(std::min<int64_t>(ms, 1 << 30)));
    if (rc < 0) {
      if (errno == EINTR) continue;
      stop_and_fail(str(who, ": poll: ", std::strerror(errno)));
    }
    if (writing && fds[1].revents != 0) {
      const ssize_t w = write_without_sigpipe(stdin_fd_, payload.data() + written, payload.size() - written);
      if (w > 0) {
        sent += static_cast<size_t>(std::count(payload.begin() + static_cast<std::ptrdiff_t>(written),
                                               payload.begin() + static_cast<std::ptrdiff_t>(written + w), '\n'));
        written += static_cast<size_t>(w);
      } else if (w < 0 && errno == EPIPE) close_stdin();  // it stopped reading: its answers (or EOF) tell the rest
      else if (w < 0 && errno != EAGAIN && errno != EINTR) stop_and_fail(str(who, ": write: ", std::strerror(errno)));
    }
    if (fds[0].revents != 0) {
      const ssize_t r = ::read(stdout_fd_, buffer.data(), buffer.size());
      if (r > 0) {
        pending_.append(buffer.data(), static_cast<size_t>(r));
      } else if (r == 0) {
        // EOF: it closed its output, almost always by exiting. Its exit status is the diagnosis, so
        // give it the shutdown grace to be reaped (a 1 s wait lost the status 127 of a missing
        // command on an overloaded machine: the shell was killed before it had exited).
        const std::string how = wait_exit(std::max(1.0, options_.grace_s));
        std::string tail = trim(pending_).empty() ? "" : str("; unfinished line: ", shown(pending_));
        if (how == "exited with status 127") tail += " (status 127: command not found?)";
        stop_and_fail(str(who, " ", how, " after answering ", out.size(), " of ", n, " samples (no answer for sample ",
                          out.size(), ")", tail));
      } else if (errno != EAGAIN && errno != EINTR) {
        stop_and_fail(str(who, ": read: ", std::strerror(errno)));
      }
    }
  }
  if (!trim(pending_).empty())
    stop_and_fail(str(who, " wrote more lines than the ", n, " samples it was sent: ", shown(pending_)));
  pending_.clear();
  ++batches_;
  return out;
}

}  // namespace tune::reward

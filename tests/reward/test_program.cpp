// The external reward program: one process for every batch, the JSON line protocol (numbers,
// null), a batch bigger than the pipes, and the failures a user meets: timeout, crash, bad output,
// a command that does not exist, a program that ignores EOF. Each must be a clear error, and no
// process may be left behind (reaped, its process group gone).
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tune/reward/config.h"
#include "tune/reward/program.h"

namespace tune::reward {
namespace {

namespace stdfs = std::filesystem;
using Clock = std::chrono::steady_clock;

class ProgramTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (stdfs::temp_directory_path() / "tune_reward_program_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { stdfs::remove_all(dir_); }

  // Writes `body` to dir/name and returns a command running it with `interpreter`.
  std::string script(const std::string& name, const std::string& interpreter, const std::string& body) {
    std::ofstream(dir_ / name) << body;
    return interpreter + " " + (dir_ / name).string();
  }

  static ProgramOptions options(std::string command, double timeout_s = 20.0, double grace_s = 5.0) {
    ProgramOptions o;
    o.command = std::move(command);
    o.timeout_s = timeout_s;
    o.grace_s = grace_s;
    return o;
  }

  stdfs::path dir_;
};

std::vector<Sample> batch(size_t n, const std::string& completion = "abc") {
  std::vector<Sample> out(n);
  for (size_t i = 0; i < n; ++i) {
    out[i].prompt = "p" + std::to_string(i);
    out[i].completion = completion;
    out[i].reference = std::to_string(i);
    out[i].metadata = {{"i", i}};
    out[i].completion_tokens = static_cast<int64_t>(i);
  }
  return out;
}

// Live (not zombie) processes of process group `pgid`, from /proc.
int live_members(pid_t pgid) {
  int n = 0;
  for (const auto& entry : stdfs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "stat");
    std::string line;
    if (!std::getline(in, line)) continue;  // gone meanwhile
    // "pid (comm) state ppid pgrp ...": comm may hold spaces, so parse after the last ')'.
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    char state = 0;
    long ppid = 0, pgrp = 0;
    rest >> state >> ppid >> pgrp;
    if (pgrp == pgid && state != 'Z' && state != 'X') ++n;
  }
  return n;
}

// The program was reaped by us (not left a zombie), and nothing of its process group still runs.
// (An orphan the group kill ended is reaped by init, on init's schedule: it is not counted.)
void expect_gone(pid_t pid) {
  ASSERT_GT(pid, 0);
  errno = 0;
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD) << "pid " << pid << " is still our child";
  int live = live_members(pid);
  for (int i = 0; i < 200 && live > 0; ++i) {  // SIGKILL is delivered asynchronously
    ::usleep(10000);
    live = live_members(pid);
  }
  EXPECT_EQ(live, 0) << "process group " << pid << " still runs";
}

std::string error_of(ProgramReward& r, const std::vector<Sample>& b) {
  try {
    r.score(b);
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

const char* kJudge = R"(import json, sys
seen = 0
for line in sys.stdin:
    s = json.loads(line)
    seen += 1
    if s["reference"] is None:
        print("null")
    else:
        # the fields arrive intact: completion length, metadata, token count, and the running count
        print(len(s["completion"]) + 10 * s["metadata"]["i"] + 100 * s["completion_tokens"] + 1000 * seen)
)";

TEST_F(ProgramTest, AnswersNumbersAndNullWithOneProcessForAllBatches) {
  ProgramReward r(options(script("judge.py", "/usr/bin/python3", kJudge)));
  const pid_t pid = r.pid();
  auto b = batch(3);
  b[1].reference.reset();
  auto s = r.score(b);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0], 3 + 0 + 0 + 1000);
  EXPECT_FALSE(s[1]);
  EXPECT_EQ(s[2], 3 + 20 + 200 + 3000);
  // The second batch reaches the same process: its count goes on.
  auto s2 = r.score(batch(2, "abcdef"));
  EXPECT_EQ(s2[0], 6 + 0 + 0 + 4000);
  EXPECT_EQ(s2[1], 6 + 10 + 100 + 5000);
  EXPECT_EQ(r.pid(), pid);
  EXPECT_TRUE(r.score({}).empty());
}

TEST_F(ProgramTest, ShutdownReapsTheProgram) {
  pid_t pid = 0;
  {
    ProgramReward r(options(script("judge.py", "/usr/bin/python3", kJudge)));
    pid = r.pid();
    r.score(batch(1));
  }
  expect_gone(pid);
}

TEST_F(ProgramTest, ABatchLargerThanThePipesDoesNotDeadlock) {
  // ~4 MB in, answers written back line by line while the input is still arriving.
  const std::string echo = script("count.py", "/usr/bin/python3",
                                  "import sys\nfor line in sys.stdin:\n    print(len(line) - 1, flush=True)\n");
  ProgramReward r(options(echo));
  auto b = batch(2000, std::string(2000, 'x'));
  auto s = r.score(b);
  ASSERT_EQ(s.size(), 2000u);
  for (size_t i = 0; i < s.size(); ++i) {
    ASSERT_TRUE(s[i]);
    EXPECT_EQ(*s[i], static_cast<double>(program_request(b[i]).size())) << i;
  }
}

TEST_F(ProgramTest, PythonWithoutFlushStillAnswers) {
  // print() without flush: PYTHONUNBUFFERED=1 in the program's environment keeps it from
  // holding the answers in its buffer while we wait for them.
  ProgramReward r(options(script("noflush.py", "/usr/bin/python3",
                                 "import sys\nfor line in sys.stdin:\n    print(0.5)\n"), 10.0));
  auto s = r.score(batch(2));
  EXPECT_EQ(s[0], 0.5);
  EXPECT_EQ(s[1], 0.5);
}

TEST_F(ProgramTest, TimeoutStopsTheProgramAndItsChildren) {
  // The shell stays (two commands), its sleep is a child of it: the whole group must go.
  ProgramReward r(options(script("slow.sh", "/bin/sh", "sleep 30\necho 1\n"), 0.3));
  const pid_t pid = r.pid();
  const auto start = Clock::now();
  std::string e = error_of(r, batch(2));
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_NE(e.find("slow.sh\" gave no answer for sample 0 of 2 within 0.3 s (timeout_s)"), std::string::npos) << e;
  EXPECT_LT(seconds, 10.0);  // not the script's 30 s (a loaded machine starts processes slowly)
  expect_gone(pid);
  EXPECT_EQ(r.pid(), 0);
  EXPECT_NE(error_of(r, batch(1)).find("stopped after an earlier error"), std::string::npos);
}

TEST_F(ProgramTest, TimeoutCountsFromTheLastAnswer) {
  // 6 answers 0.5 s apart: 3 s in all, but never 2 s of silence.
  ProgramReward r(options(script("steady.sh", "/bin/sh", "while read line; do sleep 0.5; echo 1; done\n"), 2.0));
  auto s = r.score(batch(6));
  EXPECT_EQ(s.size(), 6u);
}

TEST_F(ProgramTest, CrashNamesTheStatusAndTheSample) {
  ProgramReward r(options(script("crash.py", "/usr/bin/python3",
                                 "import sys\nsys.stdin.readline()\nprint(1.5, flush=True)\nsys.exit(3)\n")));
  const pid_t pid = r.pid();
  std::string e = error_of(r, batch(3));
  EXPECT_NE(e.find("crash.py\" exited with status 3 after answering 1 of 3 samples (no answer for sample 1)"),
            std::string::npos)
      << e;
  expect_gone(pid);
}

TEST_F(ProgramTest, KilledBySignalAndAnUnfinishedLine) {
  ProgramReward r(options(script("segv.sh", "/bin/sh", "read line\nprintf '0.'\nkill -SEGV $$\n")));
  std::string e = error_of(r, batch(2));
  // Killed by signal 11 itself, or reported as 139 by the /bin/sh -c around it (dash does not exec).
  EXPECT_NE(e.find("signal 11"), std::string::npos) << e;
  EXPECT_NE(e.find("unfinished line: \"0.\""), std::string::npos) << e;
}

TEST_F(ProgramTest, MissingCommandIsStatus127) {
  ProgramReward r(options("/nonexistent/judge-program --flag"));
  std::string e = error_of(r, batch(2));
  EXPECT_NE(e.find("exited with status 127"), std::string::npos) << e;
  EXPECT_NE(e.find("command not found?"), std::string::npos) << e;
}

TEST_F(ProgramTest, MalformedAndNonNumericLinesNameTheSampleAndText) {
  struct Case {
    std::string output;  // what the program prints for the 2nd sample
    std::string want;
  };
  const std::vector<Case> cases = {
      {"yes please", "the answer line for sample 1 of 3 is not JSON: \"yes please\""},
      {"\"0.5\"", "the answer for sample 1 of 3 is not a number or null: \"\\\"0.5\\\"\""},
      {"true", "sample 1 of 3 is not a number or null: \"true\""},
      {"{\"reward\": 1}", "is not a number or null"},
      {"", "the answer line for sample 1 of 3 is not JSON: \"\""},
      {"NaN", "is not JSON: \"NaN\""},
      {std::string(500, '7') + "x", "... (501 bytes)"},
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    // Answers "1", then the case's line, then "1" for the rest (a shell: no interpreter start-up).
    const auto out = dir_ / ("out" + std::to_string(k) + ".txt");
    std::ofstream(out) << cases[k].output << "\n";
    ProgramReward r(options(script("bad" + std::to_string(k) + ".sh", "/bin/sh",
                                   "read a; echo 1; read b; cat " + out.string() + "; while read c; do echo 1; done\n")));
    const pid_t pid = r.pid();
    std::string e = error_of(r, batch(3));
    EXPECT_NE(e.find(cases[k].want), std::string::npos) << "case " << k << ": " << e;
    EXPECT_NE(e.find("reward program \"/bin/sh "), std::string::npos) << e;
    expect_gone(pid);
  }
}

TEST_F(ProgramTest, MoreAnswersThanSamplesIsAnError) {
  ProgramReward r(options(script("twice.sh", "/bin/sh", "while read line; do echo 1; echo 2; done\n")));
  // The extra line arrives with the answer (seen at the batch's end) or just after it (seen when
  // the next batch starts): either way, never taken for the next batch's answer.
  std::string e = error_of(r, batch(1));
  if (e == "<no error>") {
    ::usleep(200000);
    e = error_of(r, batch(1));
  }
  EXPECT_NE(e.find("wrote more lines than"), std::string::npos) << e;
}

TEST_F(ProgramTest, AnExitBetweenBatchesIsNamed) {
  ProgramReward r(options(script("once.sh", "/bin/sh", "read line; echo 1; exit 5\n")));
  EXPECT_EQ(r.score(batch(1))[0], 1.0);
  ::usleep(200000);
  std::string e = error_of(r, batch(1));
  EXPECT_NE(e.find("exited with status 5"), std::string::npos) << e;
}

TEST_F(ProgramTest, AProgramThatIgnoresEofIsKilledAfterTheGrace) {
  pid_t pid = 0;
  const auto start = Clock::now();
  {
    ProgramReward r(options(script("stubborn.sh", "/bin/sh",
                                   "trap '' TERM HUP\nread line\necho 1\nwhile true; do sleep 0.05; done\n"),
                            10.0, 0.2));
    pid = r.pid();
    EXPECT_EQ(r.score(batch(1))[0], 1.0);
  }
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 10.0);  // it would loop forever
  expect_gone(pid);
}

TEST_F(ProgramTest, ASecondProgramDoesNotHoldTheFirstOnesPipes) {
  // Were the first program's stdin write end inherited by the second, closing it would not reach
  // the first as EOF, and its shutdown would wait the whole grace (30 s) before killing it.
  const std::string cat_like = script("lines.sh", "/bin/sh", "while read line; do echo 1; done\n");
  auto first = std::make_unique<ProgramReward>(options(cat_like, 20.0, 30.0));
  ProgramReward second(options(cat_like, 20.0, 30.0));
  const pid_t pid = first->pid();
  const auto start = Clock::now();
  first.reset();
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 10.0);
  expect_gone(pid);
  EXPECT_EQ(second.score(batch(1))[0], 1.0);
}

TEST_F(ProgramTest, WritingToAProgramThatClosedItsStdinDoesNotKillUs) {
  // It closes stdin at once and exits: the write gets EPIPE (SIGPIPE must not end the test).
  ProgramReward r(options(script("closer.sh", "/bin/sh", "exec 0<&-\nsleep 0.2\nexit 4\n")));
  std::string e = error_of(r, batch(500, std::string(4000, 'y')));
  EXPECT_NE(e.find("exited with status 4"), std::string::npos) << e;
}

TEST(ProgramRequest, FieldsNullReferenceMessagesAndInvalidUtf8) {
  Sample s;
  s.prompt = "2+2?";
  s.completion = "4 \xE2\x82";  // cut inside a character
  s.metadata = {{"id", 7}};
  s.completion_tokens = 3;
  s.truncated = true;
  Json j = Json::parse(program_request(s));
  EXPECT_EQ(j["prompt"], "2+2?");
  EXPECT_EQ(j["completion"], "4 \xEF\xBF\xBD");  // U+FFFD
  EXPECT_TRUE(j["reference"].is_null());
  EXPECT_EQ(j["metadata"]["id"], 7);
  EXPECT_EQ(j["completion_tokens"], 3);
  EXPECT_EQ(j["truncated"], true);
  EXPECT_FALSE(j.contains("messages"));
  s.messages = Json::array({{{"role", "user"}, {"content", "2+2?"}}});
  s.reference = "4";
  j = Json::parse(program_request(s));
  EXPECT_EQ(j["reference"], "4");
  EXPECT_EQ(j["messages"][0]["role"], "user");
  EXPECT_EQ(program_request(s).find('\n'), std::string::npos);
}

TEST_F(ProgramTest, ShorthandCommandBuildsOneProgramTerm) {
  RewardConfig c;
  c.command = script("half.sh", "/bin/sh", "while read line; do echo 0.5; done\n");
  c.timeout_s = 10;
  Composite rewards = build(c);
  EXPECT_EQ(rewards.names(), std::vector<std::string>{"program"});
  auto s = rewards.score_terms(batch(2));
  EXPECT_EQ(s.total[1], 0.5);
}

}  // namespace
}  // namespace tune::reward

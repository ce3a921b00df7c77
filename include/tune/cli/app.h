#pragma once
// Entry point of the `tune` binary: parses the command line, runs one subcommand, and turns every
// error into one line on stderr and an exit code (0 ok, 1 runtime failure, 2 usage/config error).
namespace tune::cli {

int main(int argc, char** argv);

}  // namespace tune::cli

#include <iostream>

#include "tune/cli/command.h"

namespace tune::cli {

Command add_not_built(CLI::App& app, const std::string& name, const std::string& summary) {
  auto* sub = app.add_subcommand(name, summary + " [not built yet]");
  sub->allow_extras();
  return {sub, [name] {
            std::cerr << "tune " << name << ": not built yet in this version of tune; it arrives in a later release\n";
            return 2;
          }};
}

}  // namespace tune::cli

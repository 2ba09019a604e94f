// SPDX-License-Identifier: MIT
// bench_roles.cpp: the role command line (shared by the controller, which writes it, and the roles,
// which read it) and the protocol output.
#include "bench_roles.h"

#include <cstdio>
#include <cstdlib>

#include "bench_common.h"

namespace bench {

void emit(const std::string& line) {
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

std::vector<std::string> role_arguments(const RoleOptions& options) {
  std::vector<std::string> args = {
      "--role=" + options.role,
      "--transport=" + options.transport,
      "--endpoint=" + options.endpoint,
      "--width=" + std::to_string(options.format.width),
      "--height=" + std::to_string(options.format.height),
      "--rate=" + std::to_string(options.rate),
      "--warmup=" + std::to_string(options.warmup_s),
      "--duration=" + std::to_string(options.duration_s),
      "--publisher=" + options.publisher,
      "--reader-name=" + options.reader_name,
  };
  if (!options.receive.empty()) args.push_back("--receive=" + options.receive);
  if (options.sample_rss) args.push_back("--rss");
  return args;
}

bool parse_role_options(int argc, char** argv, RoleOptions& options, std::string& error) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      error = "unexpected argument " + arg;
      return false;
    }
    std::string key = arg.substr(2), value;
    const size_t equals = key.find('=');
    if (equals != std::string::npos) {
      value = key.substr(equals + 1);
      key.resize(equals);
    } else if (key != "rss") {
      if (i + 1 >= argc) {
        error = "missing value for --" + key;
        return false;
      }
      value = argv[++i];
    }
    if (key == "role") {
      options.role = value;
    } else if (key == "transport") {
      options.transport = value;
    } else if (key == "endpoint") {
      options.endpoint = value;
    } else if (key == "width") {
      options.format.width = std::atoi(value.c_str());
    } else if (key == "height") {
      options.format.height = std::atoi(value.c_str());
    } else if (key == "rate") {
      options.rate = std::atof(value.c_str());
    } else if (key == "warmup") {
      options.warmup_s = std::atof(value.c_str());
    } else if (key == "duration") {
      options.duration_s = std::atof(value.c_str());
    } else if (key == "publisher") {
      options.publisher = value;
    } else if (key == "receive") {
      options.receive = value;
    } else if (key == "reader-name") {
      options.reader_name = value;
    } else if (key == "rss") {
      options.sample_rss = true;
    } else {
      error = "unknown role option --" + key;
      return false;
    }
  }
  if (options.role != "publish" && options.role != "receive") {
    error = "--role must be publish or receive";
    return false;
  }
  if (find_transport(options.transport) == nullptr) {
    error = "unknown transport " + options.transport;
    return false;
  }
  if (options.format.width <= 0 || options.format.height <= 0 ||
      options.format.bytes() < sizeof(FrameStamp)) {
    error = "frame too small for the stamp";
    return false;
  }
  return true;
}

}  // namespace bench

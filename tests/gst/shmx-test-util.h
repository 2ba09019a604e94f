// SPDX-License-Identifier: LGPL-2.1-or-later
// shmx-test-util.h: helpers shared by the gst-check tests: unique segment names, bounded waits on buses and
// harnesses, pipelines with appsinks, child processes (the test binary re-executed with --role) and /dev/shm
// checks.
#pragma once

#include <fcntl.h>
#include <gst/app/gstappsink.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace shmx_test {

// The pid of the test runner (before check forks each test), used in every segment name so that
// concurrent runs never collide and leftovers can be swept.
inline pid_t& runner_pid() {
  static pid_t pid = getpid();
  return pid;
}

inline std::string segment_name(const char* what) {
  static int counter = 0;
  return "gsttest-" + std::to_string(runner_pid()) + "-" + std::to_string(getpid()) + "-" + what + "-" +
         std::to_string(++counter);
}

inline std::string shm_path(const std::string& segment) { return "/dev/shm/shmx." + segment; }

// One numeric field (guint64 or guint) of an element's 'stats' structure; a missing field fails the test.
inline guint64 stats_field(GstElement* element, const char* field) {
  GstStructure* stats = nullptr;
  g_object_get(element, "stats", &stats, nullptr);
  guint64 value = 0;
  if (!gst_structure_get_uint64(stats, field, &value)) {
    guint small = 0;
    fail_unless(gst_structure_get_uint(stats, field, &small), "no stats field %s in %" GST_PTR_FORMAT, field, stats);
    value = small;
  }
  gst_structure_free(stats);
  return value;
}
inline bool segment_exists(const std::string& segment) {
  return access(shm_path(segment).c_str(), F_OK) == 0;
}

// Removes every segment this runner's tests may have left (the safety net after failures).
inline int sweep_segments() {
  const std::string prefix = "shmx.gsttest-" + std::to_string(runner_pid()) + "-";
  int removed = 0;
  if (GDir* dir = g_dir_open("/dev/shm", 0, nullptr)) {
    while (const gchar* name = g_dir_read_name(dir)) {
      if (g_str_has_prefix(name, prefix.c_str())) {
        std::string path = std::string("/dev/shm/") + name;
        if (unlink(path.c_str()) == 0) removed++;
      }
    }
    g_dir_close(dir);
  }
  return removed;
}

using Clock = std::chrono::steady_clock;
inline Clock::time_point deadline_in(int ms) { return Clock::now() + std::chrono::milliseconds(ms); }
inline void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Polls `predicate` until it holds or `ms` pass.
template <typename Predicate>
bool wait_until(int ms, Predicate predicate) {
  const auto deadline = deadline_in(ms);
  while (Clock::now() < deadline) {
    if (predicate()) return true;
    sleep_ms(10);
  }
  return predicate();
}

// Pops the next message of one of `types` from `bus` within `ms`; nullptr on timeout.
inline GstMessage* pop_message(GstBus* bus, GstMessageType types, int ms) {
  return gst_bus_timed_pop_filtered(bus, static_cast<GstClockTime>(ms) * GST_MSECOND, types);
}

// The error or warning text of a message ("message | debug").
inline std::string message_text(GstMessage* message) {
  GError* error = nullptr;
  gchar* debug = nullptr;
  if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR)
    gst_message_parse_error(message, &error, &debug);
  else if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_WARNING)
    gst_message_parse_warning(message, &error, &debug);
  else
    return "";
  std::string text = std::string(error ? error->message : "") + " | " + (debug ? debug : "");
  g_clear_error(&error);
  g_free(debug);
  return text;
}

// Waits for an ERROR/WARNING (per `type`) whose text contains `needle`; returns the text or "".
inline std::string wait_for_text(GstBus* bus, GstMessageType type, const std::string& needle, int ms) {
  const auto deadline = deadline_in(ms);
  while (Clock::now() < deadline) {
    const int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    GstMessage* message = pop_message(bus, type, left > 0 ? left : 1);
    if (!message) break;
    std::string text = message_text(message);
    gst_message_unref(message);
    if (text.find(needle) != std::string::npos) return text;
  }
  return "";
}

// Waits for an element message of structure name `name` within `ms`; returns it (caller unrefs) or nullptr.
inline GstMessage* wait_for_element_message(GstBus* bus, const char* name, int ms) {
  const auto deadline = deadline_in(ms);
  while (Clock::now() < deadline) {
    GstMessage* message = pop_message(bus, GST_MESSAGE_ELEMENT, 20);
    if (!message) continue;
    const GstStructure* s = gst_message_get_structure(message);
    if (s && gst_structure_has_name(s, name)) return message;
    gst_message_unref(message);
  }
  return nullptr;
}

// Pulls a buffer from a harness within `ms` (gst_harness_pull would wait up to a minute).
inline GstBuffer* pull_within(GstHarness* h, int ms) {
  const auto deadline = deadline_in(ms);
  while (Clock::now() < deadline) {
    if (GstBuffer* buffer = gst_harness_try_pull(h)) return buffer;
    sleep_ms(5);
  }
  return gst_harness_try_pull(h);
}

// Pulls events from a harness until one of `type` arrives within `ms`.
inline GstEvent* pull_event_within(GstHarness* h, GstEventType type, int ms) {
  const auto deadline = deadline_in(ms);
  while (Clock::now() < deadline) {
    while (GstEvent* event = gst_harness_try_pull_event(h)) {
      if (GST_EVENT_TYPE(event) == type) return event;
      gst_event_unref(event);
    }
    sleep_ms(5);
  }
  return nullptr;
}

inline GstEvent* pull_upstream_event_within(GstHarness* h, GstEventType type, int ms) {
  const auto deadline = deadline_in(ms);
  while (Clock::now() < deadline) {
    while (GstEvent* event = gst_harness_try_pull_upstream_event(h)) {
      if (GST_EVENT_TYPE(event) == type) return event;
      gst_event_unref(event);
    }
    sleep_ms(5);
  }
  return nullptr;
}

// An element with its own bus (harness elements are not in a bin, so they would post nowhere).
inline GstElement* make_element(const char* factory, GstBus* bus) {
  GstElement* element = gst_element_factory_make(factory, nullptr);
  fail_unless(element != nullptr, "could not create %s: is GST_PLUGIN_PATH set?", factory);
  if (bus) gst_element_set_bus(element, bus);
  return element;
}

// A pipeline in this process, with its bus.
struct Pipeline {
  GstElement* pipeline = nullptr;
  GstBus* bus = nullptr;

  explicit Pipeline(const std::string& launch) {
    GError* error = nullptr;
    pipeline = gst_parse_launch(launch.c_str(), &error);
    fail_unless(pipeline != nullptr, "cannot parse '%s': %s", launch.c_str(), error ? error->message : "?");
    bus = gst_element_get_bus(pipeline);
  }
  ~Pipeline() {
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(bus);
    gst_object_unref(pipeline);
  }
  GstElement* get(const char* name) {
    GstElement* element = gst_bin_get_by_name(GST_BIN(pipeline), name);
    gst_object_unref(element);  // the pipeline keeps it alive
    return element;
  }
  void play() { fail_if(gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE); }
  // Pulls a sample from appsink `name` within `ms`.
  GstSample* pull(const char* name, int ms) {
    return gst_app_sink_try_pull_sample(GST_APP_SINK(get(name)), static_cast<GstClockTime>(ms) * GST_MSECOND);
  }
  // Waits for EOS on the bus while consuming appsink `name` (appsink holds EOS back until drained).
  bool wait_eos(const char* name, int ms) {
    const auto deadline = deadline_in(ms);
    while (Clock::now() < deadline) {
      if (GstMessage* eos = pop_message(bus, GST_MESSAGE_EOS, 0)) {
        gst_message_unref(eos);
        return true;
      }
      if (GstSample* sample = pull(name, 20)) gst_sample_unref(sample);
    }
    return false;
  }
  bool has_error() {
    GstMessage* message = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
    if (!message) return false;
    g_printerr("unexpected error: %s\n", message_text(message).c_str());
    gst_message_unref(message);
    return true;
  }
};

// ---------------------------------------------------------------------------
// Child processes: `<test binary> --role pipeline <seconds> <launch line>` runs a pipeline until EOS
// (exit 0), error (exit 1) or the time limit (exit 2). The child dies with its parent.
// ---------------------------------------------------------------------------

// Runs `<test binary> --role <args...>` in a child process that dies with its parent.
inline pid_t spawn_role(const std::vector<std::string>& args) {
  // Built before fork(): the child of a threaded process only calls async-signal-safe functions.
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>("shmx-test-child"));
  argv.push_back(const_cast<char*>("--role"));
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  fail_unless(pid >= 0, "fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  return pid;
}

inline pid_t spawn_pipeline(const std::string& launch, int max_seconds) {
  return spawn_role({"pipeline", std::to_string(max_seconds), launch});
}

// Waits up to `ms` for a child; returns its exit status (or -signal), or INT32_MIN on timeout.
inline int wait_child(pid_t pid, int ms) {
  const auto deadline = deadline_in(ms);
  for (;;) {
    int status = 0;
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    if (Clock::now() >= deadline) return INT32_MIN;
    sleep_ms(10);
  }
}

inline void kill_child(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

// The role run by a child process. Returns the process exit code.
inline int run_pipeline_role(int max_seconds, const char* launch) {
  gst_init(nullptr, nullptr);
  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(launch, &error);
  if (!pipeline) {
    std::fprintf(stderr, "child: cannot parse '%s': %s\n", launch, error ? error->message : "?");
    return 1;
  }
  GstBus* bus = gst_element_get_bus(pipeline);
  int code = 2;
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) code = 1;
  const auto deadline = deadline_in(max_seconds * 1000);
  while (code == 2 && Clock::now() < deadline) {
    GstMessage* message =
        pop_message(bus, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR), 100);
    if (!message) continue;
    if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_EOS) {
      code = 0;
    } else {
      std::fprintf(stderr, "child: error: %s\n", message_text(message).c_str());
      code = 1;
    }
    gst_message_unref(message);
  }
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(pipeline);
  return code;
}

// A test binary's own child role: gets `<role> <args...>` (after --role), returns the exit code.
using RoleMain = int (*)(int argc, char** argv);

// main() of every gst test binary: a child role (the pipeline role, else `role`), or the check suite
// followed by a sweep of leftovers.
inline int test_main(int argc, char** argv, Suite* (*make_suite)(), const char* name,
                     RoleMain role = nullptr) {
  if (argc >= 5 && std::strcmp(argv[1], "--role") == 0 && std::strcmp(argv[2], "pipeline") == 0)
    return run_pipeline_role(std::atoi(argv[3]), argv[4]);
  if (argc >= 3 && std::strcmp(argv[1], "--role") == 0 && role) return role(argc - 2, argv + 2);
  runner_pid() = getpid();
  gst_check_init(&argc, &argv);
  // gst_check_run_suite() without losing the number of tests run: a GST_CHECKS naming no test (a
  // typo in meson.build) must fail, not pass having run nothing.
  SRunner* runner = srunner_create(make_suite());
  srunner_run_all(runner, CK_NORMAL);
  const int failed = srunner_ntests_failed(runner);
  const int ran = srunner_ntests_run(runner);
  srunner_free(runner);
  std::printf("Check suite %s: %d test(s) run, %d failed\n", name, ran, failed);
  const int leftovers = sweep_segments();
  if (leftovers) std::fprintf(stderr, "removed %d segment(s) left in /dev/shm by failed tests\n", leftovers);
  if (ran == 0) {
    const char* selected = std::getenv("GST_CHECKS");
    std::fprintf(stderr, "no test ran (GST_CHECKS=%s)\n", selected ? selected : "");
    return 1;
  }
  return failed ? failed : (leftovers ? 1 : 0);
}

// Number of open file descriptors and threads of this process (for leak checks).
inline int count_entries(const char* dir_path) {
  int n = 0;
  if (GDir* dir = g_dir_open(dir_path, 0, nullptr)) {
    while (g_dir_read_name(dir)) n++;
    g_dir_close(dir);
  }
  return n;
}
inline int open_fds() { return count_entries("/proc/self/fd"); }
inline int threads() { return count_entries("/proc/self/task"); }
inline int shmx_mappings() {
  gchar* maps = nullptr;
  if (!g_file_get_contents("/proc/self/maps", &maps, nullptr, nullptr)) return -1;
  int n = 0;
  for (const char* p = maps; (p = std::strstr(p, "/shmx.")); ++p) n++;
  g_free(maps);
  return n;
}

}  // namespace shmx_test

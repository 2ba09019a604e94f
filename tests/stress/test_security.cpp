// SPDX-License-Identifier: MIT
// test_security.cpp: what a segment allows other processes and users; complements tests/unit/test_segment.cpp.
//
// tests/unit covers name validation, default and settable permission bits, a second writer in the same
// process and foreign headers. Here: a reader cannot write the frames it reads (the mapping is
// read-only below the reader region); another user cannot open an owner-only segment but can open one
// made world-readable on purpose; permissions that would lock out the owner are refused; a second
// writer in another process is refused with its pid, and reclaims once that writer is killed; a
// segment whose size no longer matches its header is refused.
#include <gtest/gtest.h>

#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "stress_roles.h"
#include "stress_support.h"

namespace shmx_stress {
namespace {

using shmx::Errc;
constexpr uint64_t kSecond = 1'000'000'000ull;

shmx::ServerOptions small_options() {
  shmx::ServerOptions o;
  o.slot_count = 4;
  o.slot_payload_capacity = 4096 - sizeof(shmx::FrameHeader);
  o.reader_capacity = 2;
  o.control_ring_capacity = 256;
  o.metadata_capacity = 1024;
  return o;
}

shmx::ClientOptions quiet() {
  shmx::ClientOptions o;
  o.heartbeat_thread = false;
  return o;
}

// Permissions of the mapping that contains `address`, from /proc/self/maps ("r--s", "rw-s"...).
std::string mapping_permissions(const void* address) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const auto a = reinterpret_cast<uintptr_t>(address);
  while (std::getline(maps, line)) {
    unsigned long lo = 0, hi = 0;
    char perms[8] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %7s", &lo, &hi, perms) == 3 && a >= lo && a < hi) return perms;
  }
  return "";
}

void exit_on_segv(int) { _exit(42); }

// Runs `body` in a forked child and returns its wait status. The child never returns into gtest.
template <typename F>
int in_child(F body) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) _exit(body());
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

TEST(Security, AReaderCannotWriteTheFramesItReads) {
  install_segment_cleanup();
  const std::string name = segment_name("readonly");
  auto server = shmx::Server::create(name, small_options());
  ASSERT_TRUE(server) << server.status().to_string();
  const uint8_t bytes[16] = {1, 2, 3};
  ASSERT_TRUE(server->publish({{0, bytes, sizeof bytes}}));

  // In a child: hold the frame, check the mapping under it is read-only, then try to write it.
  const int status = in_child([&] {
    shmx::Client client;
    if (!client.open(name, quiet())) return 10;
    auto f = client.read_latest(shmx::ReadMode::Hold);
    if (!f || !f->held) return 11;
    if (mapping_permissions(f->payload) != "r--s") {
      std::fprintf(stderr, "held frame mapped %s, not r--s\n", mapping_permissions(f->payload).c_str());
      return 12;
    }
    struct sigaction sa {};
    sa.sa_handler = exit_on_segv;
    sigaction(SIGSEGV, &sa, nullptr);
    *const_cast<volatile uint8_t*>(f->payload) = 0xEE;  // must fault
    return 13;
  });
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 42)
      << "the child " << describe_status(status) << " (42: the write faulted, as it must; 13: it succeeded)";
  // The frame is intact for everyone else.
  shmx::Client client;
  ASSERT_TRUE(client.open(name, quiet()));
  auto f = client.read_latest();
  ASSERT_TRUE(f) << f.status().to_string();
  shmx::TlvView data;
  ASSERT_TRUE(f->stream_data(0, data));
  EXPECT_EQ(data.value[0], 1);
}

// Opens `name` as user and group nobody in a child; returns the child's Errc (0 = opened).
int open_as_nobody(const std::string& name) {
  const int status = in_child([&] {
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) return 100;
    shmx::Client client;
    shmx::Status st = client.open(name, quiet());
    if (!st) std::fprintf(stderr, "as nobody: %s\n", st.to_string().c_str());
    return static_cast<int>(st.code());
  });
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

TEST(Security, AnotherUserCannotOpenAnOwnerOnlySegment) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch to another user";
  install_segment_cleanup();
  const std::string owner_only = segment_name("owneronly");
  auto server = shmx::Server::create(owner_only, small_options());
  ASSERT_TRUE(server) << server.status().to_string();
  EXPECT_EQ(open_as_nobody(owner_only), static_cast<int>(Errc::PermissionDenied));

  // Shared on purpose: the permissions parameter opens it to others.
  const std::string shared = segment_name("shared");
  shmx::ServerOptions options = small_options();
  options.permissions = 0666;
  auto open_server = shmx::Server::create(shared, options);
  ASSERT_TRUE(open_server) << open_server.status().to_string();
  EXPECT_EQ(open_as_nobody(shared), 0);
}

TEST(Security, PermissionsThatLockOutTheOwnerAreRefused) {
  install_segment_cleanup();
  for (uint32_t bad : {0400u, 0200u, 0044u, 01666u, 04600u}) {
    const std::string name = segment_name("badperm");
    shmx::ServerOptions options = small_options();
    options.permissions = bad;
    auto server = shmx::Server::create(name, options);
    EXPECT_EQ(server.code(), Errc::InvalidArgument) << std::oct << bad << ": " << server.status().to_string();
    EXPECT_TRUE(own_segments().empty()) << "a refused create left a file";
  }
}

TEST(Security, ASecondWriterInAnotherProcessIsRefusedUntilTheFirstDies) {
  install_segment_cleanup();
  const std::string name = segment_name("twowriters");
  const ProbeTable probes = ProbeTable::create(1);
  const pid_t writer = spawn_self(role_args({{"role", "writer"}, {"mode", "steady"}, {"name", name},
                                             {"probes", std::to_string(probes.fd())}, {"probe", "0"}, {"seed", "1"}}));
  const uint64_t deadline = now_ns() + 10 * kSecond;
  while (!probes.at(0).ready.load() && now_ns() < deadline) sleep_ns(1'000'000);
  ASSERT_TRUE(probes.at(0).ready.load()) << probes.at(0).detail;
  SegmentView view;
  ASSERT_TRUE(view.open(name));
  const uint64_t inode = view.identity(), session = view.header()->session_id;

  auto second = shmx::Server::create(name, small_options());
  EXPECT_EQ(second.code(), Errc::LiveWriter);
  EXPECT_NE(second.status().message().find("pid " + std::to_string(writer)), std::string::npos)
      << "the error names the live writer: " << second.status().to_string();
  // The live writer's segment is untouched and still serves frames.
  SegmentView after;
  ASSERT_TRUE(after.open(name));
  EXPECT_EQ(after.identity(), inode);
  shmx::Client client;
  ASSERT_TRUE(client.open(name, quiet()));
  auto f = client.wait_next(2 * kSecond);
  ASSERT_TRUE(f) << f.status().to_string();
  EXPECT_EQ(check_frame(*f, session), "");
  client.close();

  // Once it is killed, the next writer reclaims the name with a new session.
  kill9(writer);
  auto third = shmx::Server::create(name, small_options());
  ASSERT_TRUE(third) << third.status().to_string();
  EXPECT_NE(third->session_id(), session);
  view.close();
  after.close();
  third->close();
  EXPECT_TRUE(own_segments().empty());
}

TEST(Security, ASegmentWhoseSizeDisagreesWithItsHeaderIsRefused) {
  install_segment_cleanup();
  const std::string name = segment_name("resized");
  auto server = shmx::Server::create(name, small_options());
  ASSERT_TRUE(server) << server.status().to_string();
  const std::string path = "/dev/shm/shmx." + name;
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  const off_t size = st.st_size;
  for (off_t changed : {size + 4096, size - 4096, off_t{4096}}) {
    ASSERT_EQ(truncate(path.c_str(), changed), 0);
    shmx::Client client;
    shmx::Status opened = client.open(name, quiet());
    EXPECT_EQ(opened.code(), Errc::Corrupt) << "size " << changed << " of " << size << ": " << opened.to_string();
    EXPECT_NE(opened.message().find(std::to_string(changed)), std::string::npos)
        << "the error gives the size: " << opened.to_string();
  }
  ASSERT_EQ(truncate(path.c_str(), size), 0);  // back, so that the writer's own pages exist again
  shmx::Client client;
  EXPECT_TRUE(client.open(name, quiet()));
}

}  // namespace
}  // namespace shmx_stress

int main(int argc, char** argv) {
  const int role = shmx_stress::run_role(argc, argv);
  if (role >= 0) return role;
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

// SPDX-License-Identifier: MIT
// The writer and reader roles a multi-process test runs in its child processes.
#pragma once

#include <string>
#include <vector>

#include "shmx_server.h"

namespace shmx_test {

// If argv carries --role=..., runs that role and returns its exit code; otherwise returns -1.
//
// Roles print one line per event on stdout for the parent to follow:
//   writer: SESSION <id> | ERROR <Errc> <message> (exit 3) | CLOSED | BADID <want> <got> (exit 4)
//   reader: WAITING | OPEN <session> | FRAME <id> <session> <skipped> <held> | HELD <slot> <id> |
//           GONE <Errc> | MISMATCH | REOPEN <session> | EOS | DONE <received> <skipped> <torn> |
//           BAD <reason> (exit 2) | ERROR <Errc> <message> (exit 3) | TIMEOUT (exit 5)
int run_role(int argc, char** argv);

// Exit codes of the roles.
inline constexpr int kExitOk = 0;
inline constexpr int kExitBadFrame = 2;
inline constexpr int kExitError = 3;
inline constexpr int kExitBadId = 4;
inline constexpr int kExitTimeout = 5;

// Payload size the writer role publishes (stream 0), pattern from test_support.h.
inline constexpr size_t kRolePayload = 16 * 1024;

// Server options the writer role uses (parents acting as writer use them too).
shmx::ServerOptions role_server_options(uint32_t slot_count = 8);
// Loans a slot, fills stream 0 with the pattern of `expected_id` (timestamp = id) and commits.
shmx::Result<uint64_t> publish_pattern_frame(shmx::Server& server, uint64_t expected_id);

}  // namespace shmx_test

// SPDX-License-Identifier: MIT
// The child processes of the stress suites: writers, readers and a corruptor, selected by "--role".
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace shmx_stress {

// Options of a child: "--key value" pairs after the executable name.
using RoleArgs = std::map<std::string, std::string>;

// If argv names a role ("--role ..."), runs it and returns its exit status; returns -1 otherwise (the
// executable then runs its tests).
//
// Roles and modes (all take --name SEGMENT --probes FD --probe INDEX --seed N):
//   writer  --mode commit     frames with a widened loan->commit window (killed mid-commit)
//           --mode metadata   back-to-back metadata updates, one frame between (killed mid-update)
//           --mode drain      control messages drained back to back, a frame every millisecond
//           --mode steady     a frame every 200 us, control drained and readers reaped every loop
//           --mode full       frames back to back at full speed, control drained every 64 frames
//           [--tolerant 1]    bad control messages are counted, not failures (corrupt-segment test)
//   reader  --mode copy|hold  a surviving reader: validates every frame and the metadata, reconnects
//           [--any-id 1]      frames are stamped with id 0 (several committing threads)
//           --mode holder     holds up to 2 slots at all times (killed while holding)
//           --mode control    sends self-checking control messages back to back (killed mid-send)
//   corruptor                 writes random bytes at random offsets of the segment file
int run_role(int argc, char** argv);

// The argument list for spawn_self().
std::vector<std::string> role_args(const RoleArgs& args);

class ProbeTable;
class Rng;
// Starts a role on segment `name` reporting through probe `probe` (reset first), with a seed drawn
// from `rng`: the one way every suite launches its children.
pid_t spawn_role(const ProbeTable& probes, size_t probe, const std::string& name, Rng& rng, RoleArgs args);
// Waits until the child behind `probe` says it is ready, for at most `timeout_ns`.
bool wait_role_ready(const ProbeTable& probes, size_t probe, uint64_t timeout_ns);

// Exit statuses of a child role.
inline constexpr int kRoleOk = 0;
inline constexpr int kRoleFailed = 1;       // a validation failure (see the probe's detail)
inline constexpr int kRoleSetupFailed = 3;  // could not create/open the segment
inline constexpr int kRoleUsage = 4;

}  // namespace shmx_stress

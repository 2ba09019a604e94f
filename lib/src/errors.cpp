// SPDX-License-Identifier: MIT
// errors.cpp: readable names for error codes and segment-name validation.
#include "shmx_common.h"

namespace shmx {

const char* errc_name(Errc code) {
  switch (code) {
    case Errc::Ok: return "Ok";
    case Errc::InvalidArgument: return "InvalidArgument";
    case Errc::InvalidName: return "InvalidName";
    case Errc::NotFound: return "NotFound";
    case Errc::LiveWriter: return "LiveWriter";
    case Errc::PermissionDenied: return "PermissionDenied";
    case Errc::NotReady: return "NotReady";
    case Errc::NotShmx: return "NotShmx";
    case Errc::VersionMismatch: return "VersionMismatch";
    case Errc::Corrupt: return "Corrupt";
    case Errc::TooLarge: return "TooLarge";
    case Errc::NoFreeSlot: return "NoFreeSlot";
    case Errc::RingFull: return "RingFull";
    case Errc::NoFrame: return "NoFrame";
    case Errc::Timeout: return "Timeout";
    case Errc::Interrupted: return "Interrupted";
    case Errc::WriterGone: return "WriterGone";
    case Errc::Closed: return "Closed";
    case Errc::NoReaderSlot: return "NoReaderSlot";
    case Errc::SystemError: return "SystemError";
  }
  return "Unknown";
}

std::string Status::to_string() const {
  if (is_ok()) return "Ok";
  return std::string(errc_name(code_)) + ": " + message_;
}

Status validate_segment_name(const std::string& name) {
  if (name.empty()) return Status(Errc::InvalidName, "segment name is empty");
  if (name.size() > kMaxSegmentNameLength)
    return Status(Errc::InvalidName, "segment name is " + std::to_string(name.size()) + " characters; at most " +
                                         std::to_string(kMaxSegmentNameLength) + " are allowed");
  if (name[0] == '.') return Status(Errc::InvalidName, "segment name '" + name + "' must not start with '.'");
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) {
      std::string shown = (c >= 0x20 && c < 0x7f) ? std::string(1, c) : "\\x" + std::to_string(uint8_t(c));
      return Status(Errc::InvalidName, "segment name '" + name + "' contains '" + shown +
                                           "'; use letters, digits, '.', '_' and '-' only");
    }
  }
  return Status::ok();
}

}  // namespace shmx

namespace shmx {
namespace {
std::atomic<LogHandler> g_log_handler{nullptr};
std::atomic<void*> g_log_user_data{nullptr};
}  // namespace

void set_log_handler(LogHandler handler, void* user_data) {
  g_log_user_data.store(user_data, std::memory_order_relaxed);
  g_log_handler.store(handler, std::memory_order_release);
}

void log(LogLevel level, const std::string& message) {
  if (LogHandler handler = g_log_handler.load(std::memory_order_acquire))
    handler(level, message.c_str(), g_log_user_data.load(std::memory_order_relaxed));
}

}  // namespace shmx

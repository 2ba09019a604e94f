// SPDX-License-Identifier: MIT
// shmx_common.h: constants, errors, TLV codec, the shared-memory layout structs and the Map abstraction.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace shmx {

// ---------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------

inline constexpr uint64_t kMagic = 0x31474553584D4853ull;  // "SHMXSEG1" little-endian
inline constexpr uint32_t kLayoutVersion = 1;
inline constexpr size_t kCacheLine = 64;
inline constexpr size_t kPageSize = 4096;
inline constexpr uint32_t kMaxSlots = 64;         // a reader's holds are a 64-bit mask
inline constexpr uint32_t kMaxReaders = 256;
inline constexpr size_t kMaxSegmentNameLength = 200;
inline constexpr size_t kReaderNameLength = 64;  // including the terminating NUL
inline constexpr size_t kPayloadAlignment = 64;  // stream data in a slot starts on this boundary

constexpr uint64_t align_up(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

// ---------------------------------------------------------------------------
// Errors: values, never exceptions
// ---------------------------------------------------------------------------

enum class Errc : uint32_t {
  Ok = 0,
  InvalidArgument,   // a parameter out of range
  InvalidName,       // segment name empty, too long or with '/' or other forbidden characters
  NotFound,          // no segment of that name
  LiveWriter,        // a writer is alive on that segment; a second one is refused
  PermissionDenied,  // the OS refused access (permissions)
  NotReady,          // the segment exists but its writer has not finished creating it
  NotShmx,           // not a shmx segment (bad magic)
  VersionMismatch,   // a shmx segment of another layout version
  Corrupt,           // a field failed its bounds check
  TooLarge,          // data does not fit (slot, metadata region, control ring)
  NoFreeSlot,        // every slot is latest, loaned or held by readers; the writer never waits
  RingFull,          // the control ring is full; the message was not sent
  NoFrame,           // no new frame since the last one returned
  Timeout,           // a bounded wait expired
  Interrupted,       // interrupt() was called
  WriterGone,        // the writer died without closing
  Closed,            // the writer closed the segment cleanly
  NoReaderSlot,      // the reader table is full
  SystemError,       // an OS call failed (errno is in the message)
};

const char* errc_name(Errc code);

class Status {
 public:
  Status() = default;
  Status(Errc code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return Status(); }
  bool is_ok() const { return code_ == Errc::Ok; }
  explicit operator bool() const { return is_ok(); }
  Errc code() const { return code_; }
  const std::string& message() const { return message_; }
  // "<ErrcName>: <message>", suitable for a log line or GST_ELEMENT_ERROR.
  std::string to_string() const;

 private:
  Errc code_ = Errc::Ok;
  std::string message_;
};

// A value or an error. Movable; T may be move-only.
template <typename T>
class Result {
 public:
  Result(T value) : has_value_(true) { new (&storage_) T(std::move(value)); }  // NOLINT: implicit by design
  Result(Status error) : error_(std::move(error)) {}                            // NOLINT: implicit by design
  Result(Errc code, std::string message) : error_(code, std::move(message)) {}
  Result(Result&& other) noexcept : has_value_(other.has_value_), error_(std::move(other.error_)) {
    if (has_value_) new (&storage_) T(std::move(*other.ptr()));
  }
  Result& operator=(Result&& other) noexcept {
    if (this != &other) {
      reset();
      has_value_ = other.has_value_;
      error_ = std::move(other.error_);
      if (has_value_) new (&storage_) T(std::move(*other.ptr()));
    }
    return *this;
  }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  ~Result() { reset(); }

  bool is_ok() const { return has_value_; }
  explicit operator bool() const { return has_value_; }
  const Status& status() const { return error_; }
  Errc code() const { return error_.code(); }
  T& value() & { return *ptr(); }
  const T& value() const& { return *ptr(); }
  T&& value() && { return std::move(*ptr()); }
  T* operator->() { return ptr(); }
  const T* operator->() const { return ptr(); }
  T& operator*() { return *ptr(); }
  const T& operator*() const { return *ptr(); }

 private:
  T* ptr() { return reinterpret_cast<T*>(&storage_); }
  const T* ptr() const { return reinterpret_cast<const T*>(&storage_); }
  void reset() {
    if (has_value_) ptr()->~T();
    has_value_ = false;
  }
  bool has_value_ = false;
  std::aligned_storage_t<sizeof(T), alignof(T)> storage_;
  Status error_;
};

// Checks a user-supplied segment name: 1..kMaxSegmentNameLength characters of [A-Za-z0-9._-],
// not starting with '.'. Returns InvalidName with the reason otherwise.
Status validate_segment_name(const std::string& name);

// The library never prints. Diagnostics that are not returned as a Status (a corrupt control ring
// the writer reset, a reader reaped) go to this handler; the default drops them.
enum class LogLevel { Debug, Info, Warning, Error };
using LogHandler = void (*)(LogLevel level, const char* message, void* user_data);
void set_log_handler(LogHandler handler, void* user_data);
void log(LogLevel level, const std::string& message);

// CLOCK_MONOTONIC in nanoseconds (QueryPerformanceCounter on Windows): the clock of FrameHeader::publish_ns
// and heartbeats, one for every process of the machine.
uint64_t monotonic_ns();

// ---------------------------------------------------------------------------
// TLV codec. A TLV is an 8-byte header followed by `length` value bytes, padded to 8.
// Used for frame payloads (one data TLV per stream), static metadata and control messages.
// ---------------------------------------------------------------------------

struct TlvHeader {
  uint16_t type;    // TlvType or an application type >= kTlvUserBase
  uint16_t stream;  // stream index for frame payload TLVs; 0 elsewhere
  uint32_t length;  // value bytes, excluding header and padding
};
static_assert(sizeof(TlvHeader) == 8, "TlvHeader is 8 bytes");
static_assert(std::is_trivially_copyable_v<TlvHeader>);

inline constexpr size_t kTlvAlignment = 8;
inline constexpr size_t tlv_padded_size(uint32_t length) {
  return sizeof(TlvHeader) + static_cast<size_t>(align_up(length, kTlvAlignment));
}

enum TlvType : uint16_t {
  kTlvPad = 0,  // padding; skipped by readers

  // Frame payload
  kTlvStreamData = 0x0001,  // the stream's bytes

  // Control plane (reader -> writer)
  kTlvHello = 0x0100,      // value: UTF-8 reader name
  kTlvHeartbeat = 0x0101,  // value: uint64 monotonic ns
  kTlvBye = 0x0102,        // value: empty

  // Static metadata
  kTlvMetaStreamBegin = 0x0200,  // value: empty; starts a stream record
  kTlvMetaName = 0x0201,         // value: UTF-8
  kTlvMetaType = 0x0202,         // value: UTF-8 (the caps string for GStreamer streams)
  kTlvMetaLayout = 0x0203,       // value: UTF-8
  kTlvMetaComponent = 0x0204,    // value: uint16 dtype, uint16 reserved, uint32 count, UTF-8 name
  kTlvMetaExtra = 0x0205,        // value: uint32 key, bytes
  kTlvMetaStreamEnd = 0x0206,    // value: empty

  kTlvUserBase = 0x1000,  // application-defined types start here
};

// A view of one TLV inside a validated buffer.
struct TlvView {
  uint16_t type = 0;
  uint16_t stream = 0;
  const uint8_t* value = nullptr;
  uint32_t length = 0;
};

// Iterates TLVs over untrusted bytes; every header is bounds-checked before its value is exposed.
class TlvReader {
 public:
  TlvReader(const void* data, size_t size) : data_(static_cast<const uint8_t*>(data)), size_(size) {}
  // Returns true and fills `out` with the next non-pad TLV; false at the end or on a malformed TLV
  // (then error() says why).
  bool next(TlvView& out);
  const Status& error() const { return error_; }
  size_t offset() const { return offset_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t offset_ = 0;
  Status error_;
};

// Appends TLVs into a caller-owned buffer of fixed capacity.
class TlvWriter {
 public:
  TlvWriter(void* data, size_t capacity) : data_(static_cast<uint8_t*>(data)), capacity_(capacity) {}
  Status append(uint16_t type, uint16_t stream, const void* value, uint32_t length);
  // Reserves a TLV whose value starts on `alignment` (a power of two, counted from the start of the
  // buffer; pad TLVs are inserted as needed) and returns a pointer to its value for filling in place.
  Result<uint8_t*> reserve(uint16_t type, uint16_t stream, uint32_t length, size_t alignment = kTlvAlignment);
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }

 private:
  uint8_t* data_;
  size_t capacity_;
  size_t size_ = 0;
};

// Finds the first TLV of `type` (and `stream`) in a payload. Returns false if absent or malformed.
bool find_tlv(const void* data, size_t size, uint16_t type, uint16_t stream, TlvView& out);

// ---------------------------------------------------------------------------
// Static metadata: the streams a segment carries.
// ---------------------------------------------------------------------------

enum class DType : uint16_t { Bytes = 0, U8, I8, U16, I16, U32, I32, U64, I64, F32, F64 };

struct Component {
  std::string name;
  DType dtype = DType::Bytes;
  uint32_t count = 1;
  bool operator==(const Component& o) const { return name == o.name && dtype == o.dtype && count == o.count; }
};

struct Extra {
  uint32_t key = 0;
  std::vector<uint8_t> value;
  bool operator==(const Extra& o) const { return key == o.key && value == o.value; }
};

struct StreamInfo {
  std::string name;    // e.g. "video0", "tick"
  std::string type;    // for GStreamer streams: the caps string
  std::string layout;  // free-form description of the bytes (e.g. "row-major RGBA 1920x1080 stride 7680")
  std::vector<Component> components;
  std::vector<Extra> extras;
  bool operator==(const StreamInfo& o) const {
    return name == o.name && type == o.type && layout == o.layout && components == o.components &&
           extras == o.extras;
  }
};

struct Metadata {
  uint64_t generation = 0;  // bumped by every update; 0 = never set
  uint64_t hash = 0;        // FNV-1a 64 of the encoded bytes
  std::vector<StreamInfo> streams;
};

// Encodes streams as metadata TLVs. TooLarge if they do not fit `capacity`.
Result<std::vector<uint8_t>> encode_metadata(const std::vector<StreamInfo>& streams);
// Decodes untrusted metadata bytes; Corrupt with the reason on any malformed record.
Result<std::vector<StreamInfo>> decode_metadata(const void* data, size_t size);
uint64_t fnv1a64(const void* data, size_t size);

// ---------------------------------------------------------------------------
// The shared-memory layout, version 1. docs/layout.md documents every byte; tests/unit pins it.
// Regions, in order: GlobalHeader | MetadataHeader + data | SlotControl[N] | slots | reader region.
// Everything before the reader region is read-only for readers; the reader region starts on a
// page boundary and is mapped read-write by readers.
// ---------------------------------------------------------------------------

enum class SegmentState : uint32_t { Init = 0, Ready = 1, Closed = 2 };

enum FrameFlags : uint32_t {
  kFrameFlagEos = 1u << 0,  // end of stream: no payload; readers forward EOS
};

struct alignas(kCacheLine) GlobalHeader {
  uint64_t magic;                       // kMagic; written once at creation
  uint32_t layout_version;              // kLayoutVersion
  uint32_t header_size;                 // sizeof(GlobalHeader)
  uint64_t total_size;                  // bytes of the whole segment
  uint64_t session_id;                  // random, non-zero, new for every writer
  uint64_t created_realtime_ns;         // CLOCK_REALTIME at creation (for tools)
  uint32_t writer_pid;                  // informational; liveness is the writer lock
  std::atomic<uint32_t> state;          // SegmentState; Ready published with release
  uint64_t metadata_offset;             // MetadataHeader
  uint64_t metadata_capacity;           // bytes of metadata data after MetadataHeader
  uint64_t slot_control_offset;         // SlotControl[slot_count]
  uint32_t slot_count;                  // 3..kMaxSlots
  uint32_t slot_stride;                 // bytes per slot, multiple of kPageSize
  uint64_t slots_offset;                // first slot, page aligned
  uint64_t slot_payload_capacity;       // slot_stride - sizeof(FrameHeader)
  uint64_t reader_region_offset;        // ReaderTableHeader, page aligned
  uint32_t reader_capacity;             // ReaderSlot count
  uint32_t reader_stride;               // sizeof(ReaderSlot) + control_ring_capacity
  uint32_t control_ring_capacity;       // bytes, power of two, >= 256
  uint32_t reader_timeout_ms;           // a live reader whose heartbeat is older is reported stale
  std::atomic<uint64_t> latest;         // (frame_id << 8) | slot; 0 = no frame yet
  std::atomic<uint32_t> commit_futex;   // incremented after every commit; readers futex-wait on it
  uint32_t reserved0;
  std::atomic<uint64_t> frames_committed;
  std::atomic<uint64_t> loans_refused;  // loans refused with NoFreeSlot
  std::atomic<uint64_t> loaned_mask;     // slots loaned to the writer, claimed by fetch_or
  std::atomic<uint64_t> writer_heartbeat_ns;
  uint64_t reserved[11];
};

struct alignas(kCacheLine) MetadataHeader {
  std::atomic<uint64_t> seq;  // seqlock: odd while the writer updates the data
  uint64_t generation;        // written inside the seqlock
  uint64_t hash;              // FNV-1a 64 of data[0..size)
  uint32_t size;              // bytes of encoded metadata
  uint32_t reserved0;
  uint64_t reserved[4];
};

struct alignas(kCacheLine) SlotControl {
  std::atomic<uint64_t> seq;  // per-slot counter: odd while the writer owns the slot, even when readable
  uint64_t reserved[7];
};

struct alignas(kCacheLine) FrameHeader {
  uint64_t frame_id;             // 1, 2, 3... per session
  uint64_t session_id;           // the writer's session
  uint64_t publish_ns;           // CLOCK_MONOTONIC at commit
  uint64_t timestamp_ns;         // application timestamp (capture time, simulation time...)
  uint32_t flags;                // FrameFlags
  uint32_t payload_size;         // bytes of TLVs after this header
  uint64_t metadata_generation;  // the metadata generation this frame was written against
  uint64_t reserved[2];
};

struct alignas(kCacheLine) ReaderTableHeader {
  std::atomic<uint32_t> waiters;  // readers inside futex_wait; the writer skips the wake syscall at 0
  uint32_t reserved0;
  std::atomic<uint64_t> registrations;  // total registrations (for tools)
  uint64_t reserved[6];
};

enum class ReaderState : uint32_t { Free = 0, Claimed = 1, Active = 2 };

struct alignas(kCacheLine) ReaderSlot {
  std::atomic<uint32_t> state;           // ReaderState; Free->Claimed by reader CAS, ->Free only via free_reader
  uint32_t pid;                          // reader's pid (informational)
  std::atomic<uint64_t> reader_id;       // random token of the current owner
  std::atomic<uint64_t> heartbeat_ns;    // reader's monotonic clock at its last heartbeat
  std::atomic<uint64_t> last_frame_id;   // last frame the reader returned
  std::atomic<uint64_t> frames_received;
  std::atomic<uint64_t> frames_skipped;
  std::atomic<uint64_t> held_mask;       // slots this reader holds (zero copy)
  uint64_t registered_ns;
  char name[kReaderNameLength];
  // Control ring (reader produces, writer consumes); data follows the slot.
  std::atomic<uint64_t> ring_head;  // bytes written, by the reader (release)
  std::atomic<uint64_t> ring_tail;  // bytes consumed, by the writer (release)
  std::atomic<uint64_t> ring_dropped;  // messages refused because the ring was full
  uint64_t reserved[13];
};

static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<uint64_t>) == 8 && sizeof(std::atomic<uint32_t>) == 4);
static_assert(std::is_standard_layout_v<GlobalHeader>);
static_assert(sizeof(GlobalHeader) == 256);
static_assert(sizeof(MetadataHeader) == 64);
static_assert(sizeof(SlotControl) == 64);
static_assert(sizeof(FrameHeader) == 64);
static_assert(sizeof(ReaderTableHeader) == 64);
static_assert(sizeof(ReaderSlot) == 256);
static_assert(offsetof(GlobalHeader, state) == 44);
static_assert(offsetof(GlobalHeader, latest) == 120);
static_assert(offsetof(GlobalHeader, commit_futex) == 128);
static_assert(offsetof(ReaderSlot, held_mask) == 48);
static_assert(offsetof(ReaderSlot, name) == 64);
static_assert(offsetof(ReaderSlot, ring_head) == 128);

// Sizes of a segment computed from its parameters (shared by Server and the layout checks).
struct LayoutPlan {
  uint64_t metadata_offset, metadata_capacity;
  uint64_t slot_control_offset, slots_offset;
  uint32_t slot_count, slot_stride;
  uint64_t reader_region_offset;
  uint32_t reader_capacity, reader_stride, control_ring_capacity;
  uint64_t total_size;
};
Result<LayoutPlan> plan_layout(uint32_t slot_count, uint64_t slot_payload_capacity, uint32_t reader_capacity,
                               uint32_t control_ring_capacity, uint64_t metadata_capacity);
// Checks every offset and size of a header against the mapped size; Corrupt/NotShmx/VersionMismatch.
Status validate_header(const GlobalHeader& header, uint64_t mapped_size);

// ---------------------------------------------------------------------------
// Map: a named shared-memory segment mapped into this process. The platform part lives in
// lib/src/platform_posix.cpp (Linux) and lib/src/platform_win32.cpp (Windows) behind lib/src/platform.h.
// ---------------------------------------------------------------------------

class Map {
 public:
  Map() = default;
  ~Map();
  Map(Map&& other) noexcept;
  Map& operator=(Map&& other) noexcept;
  Map(const Map&) = delete;
  Map& operator=(const Map&) = delete;

  // Creates a new segment of `size` bytes (exclusive; fails with LiveWriter/... if it exists) and takes
  // its writer lock. A segment left by a dead writer is unlinked and created anew. `permissions` as
  // for chmod (0600 by default).
  static Result<Map> create(const std::string& name, uint64_t size, uint32_t permissions = 0600);
  // Opens an existing segment, mapped read-write until restrict_writes_below() is called.
  static Result<Map> open(const std::string& name);

  // Remaps [0, offset) read-only, keeping [offset, size) read-write (offset must be page aligned).
  // Readers call it with the reader region offset so that they cannot scribble on frames.
  Status restrict_writes_below(uint64_t offset);

  uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& name() const { return name_; }
  bool is_creator() const { return creator_; }
  bool valid() const { return data_ != nullptr; }

  // Writer lock (held by the creator for its lifetime): is a live writer holding it?
  bool writer_alive() const;
  // Per-reader liveness lock on reader slot `index` (held while the reader is registered).
  Status lock_reader(uint32_t index);
  void unlock_reader(uint32_t index);
  bool reader_alive(uint32_t index) const;
  // True when the name now refers to another segment (or to none): this mapping is stale.
  bool replaced() const;

  // Removes the name (creator only; only if the name still refers to this segment).
  void unlink();
  void close();

 private:
  std::string name_;
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  intptr_t handle_ = -1;  // fd on POSIX; the open object's state on Windows
  uint64_t identity_ = 0; // inode on POSIX; the object id on Windows
  bool creator_ = false;
};

// Lists the shmx segments visible on this machine (names without the OS prefix; on Windows, those
// of the current logon session).
std::vector<std::string> list_segments();

// Blocks while *word == expected (shared across processes when the word is inside a mapped segment)
// for at most timeout_ns; returns false on timeout. Spurious wake-ups are possible.
bool futex_wait(const std::atomic<uint32_t>* word, uint32_t expected, uint64_t timeout_ns);
void futex_wake_all(const std::atomic<uint32_t>* word);

}  // namespace shmx

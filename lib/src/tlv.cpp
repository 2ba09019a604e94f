// SPDX-License-Identifier: MIT
// tlv.cpp: bounds-checked TLV reading and writing over untrusted buffers.
#include "shmx_common.h"

namespace shmx {

bool TlvReader::next(TlvView& out) {
  while (true) {
    if (!error_.is_ok() || offset_ >= size_) return false;
    if (size_ - offset_ < sizeof(TlvHeader)) {
      error_ = Status(Errc::Corrupt, "truncated TLV header at offset " + std::to_string(offset_) + " of " +
                                         std::to_string(size_));
      return false;
    }
    TlvHeader header;
    std::memcpy(&header, data_ + offset_, sizeof header);
    const size_t value_offset = offset_ + sizeof(TlvHeader);
    if (header.length > size_ - value_offset) {
      error_ = Status(Errc::Corrupt, "TLV type " + std::to_string(header.type) + " at offset " +
                                         std::to_string(offset_) + " claims " + std::to_string(header.length) +
                                         " bytes; only " + std::to_string(size_ - value_offset) + " remain");
      return false;
    }
    // The padding after the last value may be cut off by the buffer end; never read past it.
    const size_t padded = tlv_padded_size(header.length);
    offset_ = padded > size_ - offset_ ? size_ : offset_ + padded;
    if (header.type == kTlvPad) continue;
    out.type = header.type;
    out.stream = header.stream;
    out.value = data_ + value_offset;
    out.length = header.length;
    return true;
  }
}

Status TlvWriter::append(uint16_t type, uint16_t stream, const void* value, uint32_t length) {
  auto slot = reserve(type, stream, length, kTlvAlignment);
  if (!slot) return slot.status();
  if (length) std::memcpy(*slot, value, length);
  return Status::ok();
}

Result<uint8_t*> TlvWriter::reserve(uint16_t type, uint16_t stream, uint32_t length, size_t alignment) {
  if (alignment < kTlvAlignment || (alignment & (alignment - 1)) != 0)
    return Status(Errc::InvalidArgument, "TLV alignment " + std::to_string(alignment) + " is not a power of two >= 8");
  // Where the value would start, and the pad TLV (at least a header) needed to move it to the boundary.
  size_t value_at = size_ + sizeof(TlvHeader);
  size_t pad = 0;
  if (value_at % alignment != 0) {
    pad = align_up(value_at, alignment) - value_at;
    if (pad < sizeof(TlvHeader)) pad += alignment;
  }
  const size_t needed = pad + tlv_padded_size(length);
  if (needed > capacity_ - size_) {
    return Status(Errc::TooLarge, "TLV of " + std::to_string(length) + " bytes does not fit: " +
                                      std::to_string(capacity_ - size_) + " of " + std::to_string(capacity_) +
                                      " bytes left");
  }
  if (pad) {
    TlvHeader pad_header{kTlvPad, 0, static_cast<uint32_t>(pad - sizeof(TlvHeader))};
    std::memcpy(data_ + size_, &pad_header, sizeof pad_header);
    size_ += pad;
  }
  TlvHeader header{type, stream, length};
  std::memcpy(data_ + size_, &header, sizeof header);
  uint8_t* value = data_ + size_ + sizeof(TlvHeader);
  const size_t padded = tlv_padded_size(length);
  if (padded > sizeof(TlvHeader) + length) std::memset(value + length, 0, padded - sizeof(TlvHeader) - length);
  size_ += padded;
  return value;
}

bool find_tlv(const void* data, size_t size, uint16_t type, uint16_t stream, TlvView& out) {
  TlvReader reader(data, size);
  TlvView view;
  while (reader.next(view)) {
    if (view.type == type && view.stream == stream) {
      out = view;
      return true;
    }
  }
  return false;
}

}  // namespace shmx

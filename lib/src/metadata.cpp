// SPDX-License-Identifier: MIT
// metadata.cpp: encoding and validating decoding of the static metadata (streams) as TLVs.
#include "shmx_common.h"

namespace shmx {
namespace {

constexpr size_t kComponentFixed = 8;  // uint16 dtype, uint16 reserved, uint32 count
constexpr size_t kExtraFixed = 4;      // uint32 key
constexpr size_t kMaxMetadataBytes = 64u << 20;

void put_tlv(std::vector<uint8_t>& out, uint16_t type, const void* value, size_t length) {
  TlvHeader header{type, 0, static_cast<uint32_t>(length)};
  const size_t at = out.size();
  out.resize(at + tlv_padded_size(header.length), 0);
  std::memcpy(out.data() + at, &header, sizeof header);
  if (length) std::memcpy(out.data() + at + sizeof header, value, length);
}

void put_string(std::vector<uint8_t>& out, uint16_t type, const std::string& s) {
  put_tlv(out, type, s.data(), s.size());
}

Status corrupt(const std::string& why) { return Status(Errc::Corrupt, "metadata: " + why); }

}  // namespace

uint64_t fnv1a64(const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t hash = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < size; ++i) {
    hash ^= p[i];
    hash *= 0x100000001b3ull;
  }
  return hash;
}

Result<std::vector<uint8_t>> encode_metadata(const std::vector<StreamInfo>& streams) {
  std::vector<uint8_t> out;
  size_t total = 0;
  for (const auto& s : streams) {
    total += s.name.size() + s.type.size() + s.layout.size();
    for (const auto& c : s.components) total += c.name.size();
    for (const auto& e : s.extras) total += e.value.size();
  }
  if (total > kMaxMetadataBytes) return Status(Errc::TooLarge, "metadata of " + std::to_string(total) + " bytes");
  for (const auto& s : streams) {
    put_tlv(out, kTlvMetaStreamBegin, nullptr, 0);
    put_string(out, kTlvMetaName, s.name);
    put_string(out, kTlvMetaType, s.type);
    put_string(out, kTlvMetaLayout, s.layout);
    for (const auto& c : s.components) {
      std::vector<uint8_t> value(kComponentFixed + c.name.size());
      const uint16_t dtype = static_cast<uint16_t>(c.dtype);
      std::memcpy(value.data(), &dtype, 2);
      std::memcpy(value.data() + 4, &c.count, 4);
      std::memcpy(value.data() + kComponentFixed, c.name.data(), c.name.size());
      put_tlv(out, kTlvMetaComponent, value.data(), value.size());
    }
    for (const auto& e : s.extras) {
      std::vector<uint8_t> value(kExtraFixed + e.value.size());
      std::memcpy(value.data(), &e.key, 4);
      if (!e.value.empty()) std::memcpy(value.data() + kExtraFixed, e.value.data(), e.value.size());
      put_tlv(out, kTlvMetaExtra, value.data(), value.size());
    }
    put_tlv(out, kTlvMetaStreamEnd, nullptr, 0);
  }
  return out;
}

Result<std::vector<StreamInfo>> decode_metadata(const void* data, size_t size) {
  std::vector<StreamInfo> streams;
  TlvReader reader(data, size);
  TlvView tlv;
  bool open = false;
  while (reader.next(tlv)) {
    const auto text = [&] { return std::string(reinterpret_cast<const char*>(tlv.value), tlv.length); };
    if (tlv.type == kTlvMetaStreamBegin) {
      if (open) return corrupt("stream " + std::to_string(streams.size() - 1) + " has no end record");
      streams.emplace_back();
      open = true;
      continue;
    }
    if (!open) return corrupt("record type " + std::to_string(tlv.type) + " outside a stream");
    StreamInfo& s = streams.back();
    switch (tlv.type) {
      case kTlvMetaName: s.name = text(); break;
      case kTlvMetaType: s.type = text(); break;
      case kTlvMetaLayout: s.layout = text(); break;
      case kTlvMetaComponent: {
        if (tlv.length < kComponentFixed) return corrupt("component record of " + std::to_string(tlv.length) + " bytes");
        uint16_t dtype;
        Component c;
        std::memcpy(&dtype, tlv.value, 2);
        std::memcpy(&c.count, tlv.value + 4, 4);
        if (dtype > static_cast<uint16_t>(DType::F64)) return corrupt("unknown component dtype " + std::to_string(dtype));
        c.dtype = static_cast<DType>(dtype);
        c.name.assign(reinterpret_cast<const char*>(tlv.value) + kComponentFixed, tlv.length - kComponentFixed);
        s.components.push_back(std::move(c));
        break;
      }
      case kTlvMetaExtra: {
        if (tlv.length < kExtraFixed) return corrupt("extra record of " + std::to_string(tlv.length) + " bytes");
        Extra e;
        std::memcpy(&e.key, tlv.value, 4);
        e.value.assign(tlv.value + kExtraFixed, tlv.value + tlv.length);
        s.extras.push_back(std::move(e));
        break;
      }
      case kTlvMetaStreamEnd: open = false; break;
      default: return corrupt("unknown record type " + std::to_string(tlv.type));
    }
  }
  if (!reader.error().is_ok()) return corrupt(reader.error().message());
  if (open) return corrupt("last stream has no end record");
  return streams;
}

}  // namespace shmx

// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmx-caps.h: pure mapping between negotiated GstCaps and the shmx::StreamInfo that carries them.
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <string>

#include "shmx_common.h"

namespace gst_shmx {

// Bytes of a slot reserved beyond the stream bytes: the buffer-info TLV, TLV headers and the
// alignment padding in front of the stream data.
inline constexpr uint64_t kSlotHeadroom = 1024;
// Slot payload for caps whose frame size is not known from the caps (encoded video, audio, ...).
inline constexpr uint64_t kDefaultSlotPayload = 1u << 20;

// Describes one stream for the static metadata: type = the caps string, layout = a human-readable
// description of the bytes, components = what one frame holds. `caps` must be fixed.
// Returns false (and leaves `out` untouched) when the caps are not fixed.
bool stream_info_from_caps(const GstCaps* caps, const std::string& stream_name, shmx::StreamInfo& out);

// Parses the caps of a stream from its StreamInfo::type. Returns nullptr when the text is not
// caps, is empty, is not fixed or names no media type ("type/subtype"): a type written by a library
// writer such as "u64" is not caps.
GstCaps* caps_from_stream_info(const shmx::StreamInfo& info);

// Slot payload bytes needed for frames of these caps: the frame size plus kSlotHeadroom for raw
// video (from GstVideoInfo), kDefaultSlotPayload otherwise. Always a multiple of shmx::kPageSize.
uint64_t slot_payload_for_caps(const GstCaps* caps);

// Slot payload bytes needed for one buffer of `buffer_size` bytes (headroom included, page aligned).
uint64_t slot_payload_for_buffer(uint64_t buffer_size);

}  // namespace gst_shmx

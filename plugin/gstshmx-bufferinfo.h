// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmx-bufferinfo.h: the per-buffer facts (timestamps, offsets, flags, video meta, capture time) carried
// in every frame as an application TLV next to the stream data.
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <vector>

#include "shmx_common.h"

namespace gst_shmx {

// Application TLV types of the plugin (>= shmx::kTlvUserBase).
inline constexpr uint16_t kTlvBufferInfo = shmx::kTlvUserBase + 0x10;  // value: encoded BufferInfo
// Per-stream sequence number in a frame (TLV stream = the stream's index): value = uint64 (host order),
// the count of buffers the writer has received on that stream, starting at 1. A frame carries the
// newest buffer of every stream, so a buffer repeats across frames until its stream has a newer one;
// a reader pushes a stream's buffer only when its sequence number changed (or the frame has none).
inline constexpr uint16_t kTlvStreamSeq = shmx::kTlvUserBase + 0x12;

inline constexpr uint64_t kNoTime = UINT64_MAX;  // GST_CLOCK_TIME_NONE / GST_BUFFER_OFFSET_NONE on the wire

// GstVideoMeta of a buffer: enough to describe padded strides and plane offsets.
struct VideoMetaInfo {
  uint32_t format = 0;  // GstVideoFormat
  uint32_t flags = 0;   // GstVideoFrameFlags
  uint32_t width = 0;
  uint32_t height = 0;
  uint32_t n_planes = 0;  // 1..GST_VIDEO_MAX_PLANES
  uint64_t offset[4] = {};
  int32_t stride[4] = {};
};

// What the reader needs to rebuild a buffer the way the writer had it.
struct BufferInfo {
  uint64_t pts = kNoTime;
  uint64_t dts = kNoTime;
  uint64_t duration = kNoTime;
  uint64_t offset = kNoTime;
  uint64_t offset_end = kNoTime;
  uint32_t flags = 0;  // GstBufferFlags
  // Absolute CLOCK_MONOTONIC time of the PTS / DTS at the writer (writer base time + running time,
  // translated to the monotonic clock); kNoTime when the writer had no clock or no TIME segment.
  uint64_t pts_monotonic_ns = kNoTime;
  uint64_t dts_monotonic_ns = kNoTime;
  bool has_video_meta = false;
  VideoMetaInfo video;
};

// Fills timestamps, offsets, flags and the GstVideoMeta (if any) of `buffer`. The monotonic times are
// set by the caller, who knows the segment and the clock.
BufferInfo buffer_info_from_buffer(GstBuffer* buffer);

// Serialized size of a BufferInfo (fixed for this encoding version).
uint32_t buffer_info_encoded_size();
// Encodes into exactly buffer_info_encoded_size() bytes at `out`.
void encode_buffer_info(const BufferInfo& info, uint8_t* out);
// Decodes untrusted bytes; false if too short, of an unknown version, or with a bad video meta.
bool decode_buffer_info(const uint8_t* data, size_t size, BufferInfo& out);

// Copies timestamps, offsets and flags onto `buffer` (writable) and adds the video meta, if any (a video
// meta the buffer already has is rewritten in place, or removed when the frame has none).
// Timestamps are the original ones; the source replaces them when it maps to its own clock.
// Returns false when the video meta did not fit the buffer and was left out.
bool apply_buffer_info(const BufferInfo& info, GstBuffer* buffer);

}  // namespace gst_shmx

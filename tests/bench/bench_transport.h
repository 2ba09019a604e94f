// SPDX-License-Identifier: MIT
// bench_transport.h: the transports shmx-bench compares, and the pipelines each role builds for them.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace bench {

enum class Family {
  Shmx,     // shmxsink / shmxsrc
  Shm,      // GStreamer's shmsink / shmsrc
  Tcp,      // gdppay ! tcpserversink / tcpclientsrc ! gdpdepay over 127.0.0.1
  ShmxLib,  // the shmx library without GStreamer (the floor of the transport)
};

struct Transport {
  const char* id;  // command-line name
  Family family;
  bool pool_publisher;      // the publisher allocates from the pool the sink proposes (zero copy)
  bool receive_copy;        // shmxsrc copy=true (else the source pushes buffers wrapping held slots)
  const char* description;  // one line for the report
};

// Every transport, in table order.
const std::vector<Transport>& all_transports();
const Transport* find_transport(const std::string& id);

// A frame of the benchmark: raw RGBA video, so that every transport carries the same caps.
struct FrameFormat {
  int width = 32;
  int height = 32;
  size_t bytes() const { return static_cast<size_t>(width) * static_cast<size_t>(height) * 4; }
  std::string caps() const;   // video/x-raw,format=RGBA,...
  std::string label() const;  // "4 KiB", "1 MiB", "1920x1080 RGBA" or "WxH RGBA"
};

// GStreamer element factories a transport needs (empty for ShmxLib).
std::vector<std::string> required_elements(const Transport& transport);

// The publisher's pipeline after its source: the description of the sink part, whose first element
// has the free sink pad. `endpoint` is the segment name or socket path (Tcp binds port 0 and reports
// the port it got).
std::string publisher_sink_description(const Transport& transport, const std::string& endpoint,
                                       const FrameFormat& format);
// The receiver's pipeline up to (excluding) its appsink; its source element is named "source" (the
// receiver sets shmxsrc's `copy` on it).
std::string receiver_source_description(const Transport& transport, const std::string& endpoint);

}  // namespace bench

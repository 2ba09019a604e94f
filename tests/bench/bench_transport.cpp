// SPDX-License-Identifier: MIT
// bench_transport.cpp: the transport table and the pipeline descriptions of each role.
#include "bench_transport.h"

#include <algorithm>

namespace bench {

const std::vector<Transport>& all_transports() {
  static const std::vector<Transport> transports = {
      {"shmx", Family::Shmx, false, false,
       "shmxsink/shmxsrc, copy path: publisher buffers from its own memory (one copy into the slot), "
       "receiver pushes buffers wrapping held slots"},
      {"shmx-zc", Family::Shmx, true, false,
       "shmxsink/shmxsrc, zero copy: publisher buffers from the pool shmxsink proposes, receiver holds "
       "slots"},
      {"shmx-rcopy", Family::Shmx, false, true,
       "shmxsink/shmxsrc, copy on both ends: as shmx, with shmxsrc copy=true"},
      {"shmsink", Family::Shm, false, false,
       "GStreamer shmsink/shmsrc (one copy into the shm area; shmsrc wraps it)"},
      {"tcp", Family::Tcp, false, false, "gdppay ! tcpserversink / tcpclientsrc ! gdpdepay over 127.0.0.1"},
      {"shmx-lib", Family::ShmxLib, false, false,
       "shmx library without GStreamer: Server loan/commit writing the stamp only, Client wait_next(Hold)"},
  };
  return transports;
}

const Transport* find_transport(const std::string& id) {
  const auto& transports = all_transports();
  auto it = std::find_if(transports.begin(), transports.end(),
                         [&](const Transport& transport) { return id == transport.id; });
  return it == transports.end() ? nullptr : &*it;
}

std::string FrameFormat::caps() const {
  return "video/x-raw,format=RGBA,width=" + std::to_string(width) + ",height=" + std::to_string(height) +
         ",framerate=0/1";
}

std::string FrameFormat::label() const {
  if (width == 32 && height == 32) return "4 KiB";
  if (width == 512 && height == 512) return "1 MiB";
  return std::to_string(width) + "x" + std::to_string(height) + " RGBA";
}

std::vector<std::string> required_elements(const Transport& transport) {
  switch (transport.family) {
    case Family::Shmx:
      return {"appsrc", "appsink", "shmxsink", "shmxsrc"};
    case Family::Shm:
      return {"appsrc", "appsink", "shmsink", "shmsrc"};
    case Family::Tcp:
      return {"appsrc", "appsink", "gdppay", "gdpdepay", "tcpserversink", "tcpclientsrc"};
    case Family::ShmxLib:
      return {};
  }
  return {};
}

std::string publisher_sink_description(const Transport& transport, const std::string& endpoint,
                                       const FrameFormat& format) {
  // Every sink: sync=false (publish at once; the publisher paces itself) and async=false (no
  // preroll wait: the publisher may be the only element that is not live).
  switch (transport.family) {
    case Family::Shmx:
      return "shmxsink name=sink segment=" + endpoint + " sync=false async=false";
    case Family::Shm: {
      // Room for several frames so that the writer only blocks when the reader really lags.
      const size_t shm_size = std::max<size_t>(format.bytes() * 6, 2u << 20);
      return "shmsink name=sink socket-path=" + endpoint + " shm-size=" + std::to_string(shm_size) +
             " wait-for-connection=false sync=false async=false";
    }
    case Family::Tcp:
      // tcpserversink never blocks its writer; a client more than 16 buffers behind is resynced to
      // the latest buffer (latest-frame behaviour) instead of letting the queue grow without bound.
      return "gdppay ! tcpserversink name=sink host=127.0.0.1 port=0 sync=false async=false "
             "units-soft-max=16 recover-policy=latest";
    case Family::ShmxLib:
      return "";
  }
  return "";
}

std::string receiver_source_description(const Transport& transport, const std::string& endpoint) {
  switch (transport.family) {
    case Family::Shmx:
      return "shmxsrc name=source segment=" + endpoint;
    case Family::Shm:
      return "shmsrc name=source socket-path=" + endpoint + " is-live=true";
    case Family::Tcp:
      return "tcpclientsrc name=source host=127.0.0.1 port=" + endpoint + " ! gdpdepay";
    case Family::ShmxLib:
      return "";
  }
  return "";
}

}  // namespace bench

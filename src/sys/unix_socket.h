#pragma once
// Local API transport: a unix stream socket carrying one request line and one reply line per
// connection. The server side lives on the EventLoop; a reply may be deferred (waits) and is
// dropped if the client went away.

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "base/status.h"
#include "base/time_source.h"
#include "sys/event_loop.h"

namespace halo::sys {

class LineServer {
 public:
  using ConnId = uint64_t;
  using RequestHandler = std::function<void(ConnId, const std::string& line)>;

  // Binds `path` (a stale socket file is replaced; a live one is an error), mode 0600.
  static Result<std::unique_ptr<LineServer>> listen(EventLoop& loop, const std::string& path,
                                                    RequestHandler handler);
  ~LineServer();

  // Sends `line` and closes the connection. No-op if the client is gone.
  void reply(ConnId conn, const std::string& line);
  // True while the client that sent `conn`'s request is still connected and unanswered.
  bool pending(ConnId conn) const { return conns_.count(conn) != 0; }
  void setClosedHandler(std::function<void(ConnId)> cb) { on_closed_ = std::move(cb); }

 private:
  LineServer(EventLoop& loop, int fd, std::string path, RequestHandler handler);
  void onAccept();
  void onReadable(ConnId id);
  void drop(ConnId id);

  struct Conn {
    int fd;
    EventLoop::Id watch;
    std::string buffer;
    bool request_seen = false;
  };
  EventLoop& loop_;
  int fd_;
  std::string path_;
  EventLoop::Id watch_ = 0;
  RequestHandler handler_;
  std::function<void(ConnId)> on_closed_;
  ConnId next_ = 1;
  std::map<ConnId, Conn> conns_;
};

// Client side: connects, sends `line`, returns the reply line. Unavailable if nothing listens.
// `timeout` bounds the whole exchange; nullopt waits as long as the server needs.
Result<std::string> requestLine(const std::string& path, const std::string& line,
                                std::optional<Millis> timeout);

}  // namespace halo::sys

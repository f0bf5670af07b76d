#include "sys/event_loop.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>

namespace halo::sys {

namespace {
// Ids below this value tag internal fds in epoll's data field.
constexpr uint64_t kEventFdTag = 0;
constexpr uint64_t kSignalFdTag = UINT64_MAX;
}  // namespace

Result<std::unique_ptr<EventLoop>> EventLoop::create(TimeSource& time) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    return errnoStatus("epoll_create1", errno);
  }
  int ev = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (ev < 0) {
    int e = errno;
    close(ep);
    return errnoStatus("eventfd", e);
  }
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.u64 = kEventFdTag;
  epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e);
  return std::unique_ptr<EventLoop>(new EventLoop(time, ep, ev));
}

EventLoop::EventLoop(TimeSource& time, int epoll_fd, int event_fd)
    : time_(time), epoll_fd_(epoll_fd), event_fd_(event_fd) {}

EventLoop::~EventLoop() {
  close(epoll_fd_);
  close(event_fd_);
  if (signal_fd_ >= 0) {
    close(signal_fd_);
  }
}

Result<EventLoop::Id> EventLoop::watchReadable(int fd, Callback cb) {
  const Id id = next_id_++;
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.u64 = id;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &e) < 0) {
    return errnoStatus("epoll_ctl add fd " + std::to_string(fd), errno);
  }
  watches_[id] = Watch{fd, std::move(cb)};
  return id;
}

void EventLoop::unwatch(Id id) {
  auto it = watches_.find(id);
  if (it == watches_.end()) {
    return;
  }
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second.fd, nullptr);
  watches_.erase(it);
}

EventLoop::Id EventLoop::addTimer(Millis delay, Callback cb) {
  const Id id = next_id_++;
  timers_.emplace(time_.monotonicTime() + delay, Timer{id, std::move(cb)});
  return id;
}

void EventLoop::cancelTimer(Id id) {
  for (auto it = timers_.begin(); it != timers_.end(); ++it) {
    if (it->second.id == id) {
      timers_.erase(it);
      return;
    }
  }
}

Status EventLoop::watchSignals(const std::vector<int>& signals, std::function<void(int)> cb) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals) {
    sigaddset(&set, s);
  }
  if (sigprocmask(SIG_BLOCK, &set, nullptr) < 0) {
    return errnoStatus("sigprocmask", errno);
  }
  signal_fd_ = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd_ < 0) {
    return errnoStatus("signalfd", errno);
  }
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.u64 = kSignalFdTag;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, signal_fd_, &e) < 0) {
    return errnoStatus("epoll_ctl signalfd", errno);
  }
  signal_cb_ = std::move(cb);
  return okStatus();
}

void EventLoop::post(Callback cb) {
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    posted_.push_back(std::move(cb));
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(event_fd_, &one, sizeof(one));
}

void EventLoop::drainPosted() {
  uint64_t v;
  while (read(event_fd_, &v, sizeof(v)) > 0) {
  }
  std::vector<Callback> todo;
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    todo.swap(posted_);
  }
  for (auto& cb : todo) {
    cb();
  }
}

void EventLoop::runDueTimers() {
  const MonotonicTime now = time_.monotonicTime();
  // Callbacks may add or cancel timers, so take one due timer at a time.
  while (!timers_.empty() && timers_.begin()->first <= now) {
    Callback cb = std::move(timers_.begin()->second.cb);
    timers_.erase(timers_.begin());
    cb();
  }
}

Status EventLoop::run() {
  epoll_event events[32];
  while (!exit_requested_) {
    int timeout_ms = -1;
    if (!timers_.empty()) {
      auto wait = std::chrono::duration_cast<Millis>(timers_.begin()->first -
                                                     time_.monotonicTime()).count();
      timeout_ms = wait < 0 ? 0 : static_cast<int>(wait + 1);
    }
    int n = epoll_wait(epoll_fd_, events, 32, timeout_ms);
    if (n < 0 && errno != EINTR) {
      return errnoStatus("epoll_wait", errno);
    }
    for (int i = 0; i < n && !exit_requested_; ++i) {
      const uint64_t tag = events[i].data.u64;
      if (tag == kEventFdTag) {
        drainPosted();
      } else if (tag == kSignalFdTag) {
        signalfd_siginfo info;
        while (read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
          if (signal_cb_) {
            signal_cb_(static_cast<int>(info.ssi_signo));
          }
        }
      } else {
        auto it = watches_.find(tag);
        if (it != watches_.end()) {
          Callback cb = it->second.cb;  // copy: the callback may unwatch itself
          cb();
        }
      }
    }
    runDueTimers();
  }
  return okStatus();
}

}  // namespace halo::sys

#pragma once
// Threads that say what they are: the name (at most 15 characters) shows in `top -H`, `perf`
// and /proc/PID/task/*/comm, where an unnamed thread shows only its process's name.

#include <pthread.h>

#include <thread>
#include <utility>

namespace halo {

template <typename F>
std::thread namedThread(const char* name, F&& body) {
  return std::thread([name, body = std::forward<F>(body)]() mutable {
    pthread_setname_np(pthread_self(), name);
    body();
  });
}

}  // namespace halo

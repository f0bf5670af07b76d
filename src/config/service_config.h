#pragma once
// <service> (reference 3.2.3): the module kind and its restart policy.

#include <chrono>
#include <string>

#include "base/time_source.h"

namespace halo::config {

enum class Mode { Mirror, Farm, Light };
// "mirror", "farm", "light".
const char* modeName(Mode mode);

enum class Boot { On, Off, Auto, Ignore };
const char* bootName(Boot boot);

struct ServiceConfig {
  Mode mode = Mode::Light;  // required attribute; the default is never used
  Boot boot = Boot::Ignore;
  Millis boot_delay{0};  // implicit unit s
  bool failover = true;  // mirror only
  // Mirror only: "alone", "lastprim" or a node name of cluster.xml.
  std::string defaultprim = "alone";
  int maxloop = 3;  // automatic actions allowed per loop_interval before a local stop
  Millis loop_interval = std::chrono::hours(24);  // implicit unit h; 0 turns maxloop off
  bool automatic_reboot = false;
  int line = 0;
};

}  // namespace halo::config

#pragma once
// VipOwner: which addresses this module added to the kernel, kept in a small state file so that
// only those are ever removed, even after a crash (keepalived's ownership tracking). An address
// that was present before Halo added it is never recorded, so it is never removed.
//
// State file (JSON, written atomically):
//   {"addresses":[{"address":"198.18.0.100","prefix":24,"interface":"veth0"}]}

#include <string>
#include <vector>

#include "base/status.h"
#include "sys/netlink_addr.h"

namespace halo::sys {

struct OwnedAddress {
  IpAddr address;
  int prefix = 0;
  std::string ifname;
  bool operator==(const OwnedAddress& other) const = default;
};

// The state file's text for a list, and back. Parsing is strict about the fields it needs.
std::string encodeOwnedAddresses(const std::vector<OwnedAddress>& owned);
Result<std::vector<OwnedAddress>> decodeOwnedAddresses(const std::string& text);

class VipOwner {
 public:
  // `state_path` e.g. $RUN/modules/AM/vip.json; its directory must exist.
  explicit VipOwner(std::string state_path) : state_path_(std::move(state_path)) {}

  // Adds the address unless it is already on the interface. The record is written before the
  // add (so a crash right after the add still leaves it recorded) and dropped if the add fails.
  // Returns true when this call added it, false when it was already present (then not recorded,
  // unless an earlier addOwned recorded it).
  Result<bool> addOwned(const std::string& ifname, const IpAddr& addr, int prefix,
                        VipPlacement placement);
  // Removes the address if it is recorded, then drops the record. An unrecorded address is left
  // alone (ok). An address recorded but already gone only loses its record.
  Status removeOwned(const IpAddr& addr);
  // After a crash: removes every recorded address still present, then clears the file.
  Status cleanupLeftovers();
  // What the state file records now (empty when it does not exist).
  Result<std::vector<OwnedAddress>> owned() const;

 private:
  Status save(const std::vector<OwnedAddress>& owned) const;

  std::string state_path_;
};

}  // namespace halo::sys

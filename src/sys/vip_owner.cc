#include "sys/vip_owner.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "sys/files.h"

namespace halo::sys {

namespace {

// A minimal reader for the one JSON shape this file uses: objects of string and integer fields.
class JsonReader {
 public:
  explicit JsonReader(const std::string& text) : text_(text) {}

  void skipSpace() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) {
      ++pos_;
    }
  }
  bool consume(char c) {
    skipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool peek(char c) {
    skipSpace();
    return pos_ < text_.size() && text_[pos_] == c;
  }
  bool readString(std::string& out) {
    if (!consume('"')) {
      return false;
    }
    out.clear();
    while (pos_ < text_.size() && text_[pos_] != '"') {
      if (text_[pos_] == '\\') {
        return false;  // never written by us: names, addresses and digits only
      }
      out.push_back(text_[pos_++]);
    }
    return consume('"');
  }
  bool readInt(int& out) {
    skipSpace();
    const size_t start = pos_;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_])) &&
           pos_ - start < 4) {
      ++pos_;
    }
    if (pos_ == start) {
      return false;
    }
    out = std::stoi(text_.substr(start, pos_ - start));
    return true;
  }
  bool atEnd() {
    skipSpace();
    return pos_ == text_.size();
  }
  size_t pos() const { return pos_; }

 private:
  const std::string& text_;
  size_t pos_ = 0;
};

Status parseError(const JsonReader& r, const std::string& what) {
  return invalidArgument("VIP state file: offset " + std::to_string(r.pos()) + ": " + what);
}

Result<OwnedAddress> parseEntry(JsonReader& r) {
  if (!r.consume('{')) {
    return parseError(r, "expected '{'");
  }
  OwnedAddress o;
  std::string addr_text;
  bool have_prefix = false;
  if (!r.peek('}')) {
    do {
      std::string key;
      if (!r.readString(key) || !r.consume(':')) {
        return parseError(r, "expected \"key\":");
      }
      if (key == "prefix") {
        if (!r.readInt(o.prefix)) {
          return parseError(r, "expected an integer prefix");
        }
        have_prefix = true;
      } else {
        std::string value;
        if (!r.readString(value)) {
          return parseError(r, "expected a string for '" + key + "'");
        }
        if (key == "address") {
          addr_text = value;
        } else if (key == "interface") {
          o.ifname = value;
        }
      }
    } while (r.consume(','));
  }
  if (!r.consume('}')) {
    return parseError(r, "expected '}'");
  }
  HALO_ASSIGN_OR_RETURN(o.address, IpAddr::parse(addr_text));
  if (!have_prefix || o.prefix > o.address.maxPrefix() || o.ifname.empty()) {
    return parseError(r, "entry for " + addr_text + " lacks a valid prefix or interface");
  }
  return o;
}

}  // namespace

std::string encodeOwnedAddresses(const std::vector<OwnedAddress>& owned) {
  std::string out = "{\"addresses\":[";
  for (size_t i = 0; i < owned.size(); ++i) {
    if (i > 0) {
      out += ",";
    }
    out += "{\"address\":\"" + owned[i].address.toString() +
           "\",\"prefix\":" + std::to_string(owned[i].prefix) + ",\"interface\":\"" +
           owned[i].ifname + "\"}";
  }
  out += "]}\n";
  return out;
}

Result<std::vector<OwnedAddress>> decodeOwnedAddresses(const std::string& text) {
  JsonReader r(text);
  std::vector<OwnedAddress> out;
  std::string key;
  if (!r.consume('{') || !r.readString(key) || key != "addresses" || !r.consume(':') ||
      !r.consume('[')) {
    return parseError(r, "expected {\"addresses\":[");
  }
  if (!r.peek(']')) {
    do {
      HALO_ASSIGN_OR_RETURN(OwnedAddress o, parseEntry(r));
      out.push_back(std::move(o));
    } while (r.consume(','));
  }
  if (!r.consume(']') || !r.consume('}') || !r.atEnd()) {
    return parseError(r, "expected ]}");
  }
  return out;
}

Result<std::vector<OwnedAddress>> VipOwner::owned() const {
  if (!pathExists(state_path_)) {
    return std::vector<OwnedAddress>{};
  }
  HALO_ASSIGN_OR_RETURN(std::string text, readFile(state_path_));
  auto decoded = decodeOwnedAddresses(text);
  if (!decoded.ok()) {
    return decoded.status().withPrefix(state_path_);
  }
  return decoded;
}

Status VipOwner::save(const std::vector<OwnedAddress>& owned) const {
  return writeFileAtomic(state_path_, encodeOwnedAddresses(owned), 0600);
}

Result<bool> VipOwner::addOwned(const std::string& ifname, const IpAddr& addr, int prefix,
                                VipPlacement placement) {
  HALO_ASSIGN_OR_RETURN(int ifindex, interfaceIndex(ifname));
  HALO_ASSIGN_OR_RETURN(std::vector<AddrEntry> present, listAddresses(ifindex));
  for (const auto& e : present) {
    if (e.address == addr) {
      return false;  // someone else's (or already ours and recorded): nothing to do
    }
  }
  HALO_ASSIGN_OR_RETURN(std::vector<OwnedAddress> records, owned());
  const OwnedAddress entry{addr, prefix, ifname};
  const bool was_recorded = std::find(records.begin(), records.end(), entry) != records.end();
  if (!was_recorded) {
    records.push_back(entry);
    HALO_RETURN_IF_ERROR(save(records));
  }
  Status st = addAddress(ifindex, addr, prefix, placement);
  if (!st.ok()) {
    if (!was_recorded) {
      records.pop_back();
      (void)save(records);  // the add failed: a stale record would only cost a no-op later
    }
    return st;
  }
  return true;
}

Status VipOwner::removeOwned(const IpAddr& addr) {
  HALO_ASSIGN_OR_RETURN(std::vector<OwnedAddress> records, owned());
  std::vector<OwnedAddress> keep;
  Status result;
  for (const auto& o : records) {
    if (!(o.address == addr)) {
      keep.push_back(o);
      continue;
    }
    auto ifindex = interfaceIndex(o.ifname);
    if (!ifindex.ok()) {
      continue;  // interface gone: the address went with it
    }
    Status st = deleteAddress(*ifindex, o.address, o.prefix);
    if (!st.ok() && st.code() != StatusCode::NotFound) {
      keep.push_back(o);  // still ours and still there: keep the record for a retry
      result = st;
    }
  }
  if (keep.size() != records.size()) {
    HALO_RETURN_IF_ERROR(save(keep));
  }
  return result;
}

Status VipOwner::cleanupLeftovers() {
  HALO_ASSIGN_OR_RETURN(std::vector<OwnedAddress> records, owned());
  if (records.empty()) {
    return okStatus();
  }
  HALO_ASSIGN_OR_RETURN(std::vector<AddrEntry> present, listAddresses());
  std::vector<OwnedAddress> failed;
  Status result;
  for (const auto& o : records) {
    const bool still_there = std::any_of(present.begin(), present.end(), [&o](const AddrEntry& e) {
      return e.address == o.address && e.ifname == o.ifname;
    });
    if (!still_there) {
      continue;
    }
    HALO_ASSIGN_OR_RETURN(int ifindex, interfaceIndex(o.ifname));
    Status st = deleteAddress(ifindex, o.address, o.prefix);
    if (!st.ok() && st.code() != StatusCode::NotFound) {
      failed.push_back(o);
      result = st.withPrefix("removing leftover VIP");
    }
  }
  HALO_RETURN_IF_ERROR(save(failed));
  return result;
}

}  // namespace halo::sys

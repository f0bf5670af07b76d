#pragma once
// Varints (LEB128, 7 bits a byte) and a bounds-checked reader, for the compact encodings of the
// rfs layer (manifests, change logs): every read says whether the bytes held what was asked.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace halo::rfs::codec {

inline void putVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

inline void putBytes(std::string_view s, std::string* out) {
  putVarint(s.size(), out);
  out->append(s);
}

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  size_t remaining() const { return in_.size() - pos_; }
  size_t pos() const { return pos_; }
  bool done() const { return pos_ == in_.size(); }

  bool varint(uint64_t* v) {
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= in_.size()) {
        return false;
      }
      uint8_t b = static_cast<uint8_t>(in_[pos_++]);
      if (shift == 63 && b > 1) {
        return false;  // overflows 64 bits
      }
      result |= uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) {
        *v = result;
        return true;
      }
    }
    return false;
  }

  bool bytes(size_t n, std::string_view* out) {
    if (n > remaining()) {
      return false;
    }
    *out = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }

  // A varint length, then that many bytes.
  bool lengthPrefixed(std::string_view* out) {
    uint64_t n = 0;
    return varint(&n) && n <= remaining() && bytes(static_cast<size_t>(n), out);
  }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

}  // namespace halo::rfs::codec

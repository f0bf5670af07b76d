#pragma once
// Block digests shared by the tree comparison (tree_diff.h) and the reintegration (the primary
// hashes its blocks, the secondary compares): XXH3-128 in canonical (big-endian) byte order, so
// both nodes agree whatever their endianness or xxHash version (XXH3 output is frozen since
// 0.8.0). tree_diff.cc says why XXH3 rather than a cryptographic hash.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace halo::rfs {

using BlockDigest = std::array<uint8_t, 16>;

inline BlockDigest toBlockDigest(XXH128_hash_t h) {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, h);
  BlockDigest d;
  std::memcpy(d.data(), c.digest, d.size());
  return d;
}

inline BlockDigest blockDigest(const void* data, size_t size) {
  return toBlockDigest(XXH3_128bits(data, size));
}

}  // namespace halo::rfs

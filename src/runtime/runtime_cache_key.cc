// Cache keys: SHA-256 (OpenSSL libcrypto) over length-prefixed fields.
#include <openssl/evp.h>

#include <string>

#include "core/check.h"
#include "format/byte_io.h"
#include "kiln/runtime_cache.h"

namespace kiln {
namespace {

// Fetched once: OpenSSL 3 otherwise looks the algorithm up on every EVP_Digest, and the first
// lookup in a process loads the default provider (1.4 ms on the H200 machine's host).
const EVP_MD* sha256_md() {
  static const EVP_MD* md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched ? fetched : EVP_sha256();  // never freed: used until the process ends
  }();
  return md;
}

CacheKey sha256(const std::vector<uint8_t>& message) {
  CacheKey key;
  unsigned int len = 0;
  int ok = EVP_Digest(message.data(), message.size(), key.bytes.data(), &len, sha256_md(), nullptr);
  KILN_CHECK(ok == 1 && len == key.bytes.size());  // only fails without memory
  return key;
}

// u64 lengths, so no field can be long enough to wrap its prefix.
void field(format::ByteWriter& w, std::string_view s) {
  w.u64(s.size());
  w.bytes(s.data(), s.size());
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string CacheKey::to_hex() const {
  static const char kDigits[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 15];
  }
  return out;
}

Result<CacheKey> CacheKey::from_hex(std::string_view hex) {
  CacheKey key;
  if (hex.size() != key.bytes.size() * 2) {
    return invalid_argument("invalid cache key '" + std::string(hex.substr(0, 80)) +
                            "': expected 64 hex digits");
  }
  for (size_t i = 0; i < key.bytes.size(); ++i) {
    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return invalid_argument("invalid cache key '" + std::string(hex) +
                              "': expected 64 hex digits");
    }
    key.bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return key;
}

CacheKey make_cache_key(std::string_view source, std::string_view options, int nvrtc_version,
                        std::string_view arch) {
  format::ByteWriter w;
  field(w, "kiln runtime cache: kernel");
  w.u32(kRuntimeCacheFormatVersion);
  field(w, source);
  field(w, options);
  w.i64(nvrtc_version);
  field(w, arch);
  return sha256(w.buffer());
}

CacheKey make_tuning_key(std::string_view problem, int library_version, std::string_view arch) {
  format::ByteWriter w;
  field(w, "kiln runtime cache: tuning");
  w.u32(kRuntimeCacheFormatVersion);
  field(w, problem);
  w.i64(library_version);
  field(w, arch);
  return sha256(w.buffer());
}

void prepare_cache_keys() {
  CacheKey key;
  unsigned int len = 0;
  const char probe = 0;
  EVP_Digest(&probe, 1, key.bytes.data(), &len, sha256_md(), nullptr);
}

std::string_view to_string(CacheEntryKind kind) {
  switch (kind) {
    case CacheEntryKind::kCubin:
      return "cubin";
    case CacheEntryKind::kTuning:
      return "tuning";
  }
  return "unknown";
}

}  // namespace kiln

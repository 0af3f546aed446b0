// detail/envelope.hpp: the payload a Cached writes to a byte store: a one-line header (format
// version, schema fingerprint, freshness stamps, the key it was written for) and the encoded value.
// Value and stamps travel together, so a hit costs one GET. See docs/redis.md, "Payload".
//
//   LRD1 <fingerprint:16 hex> <written ms> <fresh_until ms> <expires ms> <key length>
//   <key>\n<value>
#pragma once

#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "larder/error.hpp"
#include "larder/store.hpp"

namespace larder::detail {

inline constexpr std::string_view kEnvelopeMagic = "LRD1";

inline std::int64_t to_ms(TimePoint t) noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
inline TimePoint from_ms(std::int64_t ms) noexcept {
  return TimePoint{std::chrono::milliseconds{ms}};
}

inline std::string encode_envelope(std::string_view key, std::uint64_t fingerprint, const Stamps& s,
                                   std::string_view value) {
  std::string out;
  out.reserve(64 + key.size() + value.size());
  // fmt::format, not fmt::format_to(std::back_inserter(out)): see detail::render_integer.
  out += fmt::format("{} {:016x} {} {} {} {} ", kEnvelopeMagic, fingerprint, to_ms(s.written),
                     to_ms(s.fresh_until), to_ms(s.expires), key.size());
  out += key;
  out += '\n';
  out += value;
  return out;
}

struct Envelope {
  Stamps stamps;
  std::string_view value;  // points into the decoded bytes
};

/// Parses bytes written by encode_envelope for `key` with `fingerprint`. Throws DecodeError naming
/// what did not match (garbage, another format version, another schema, another key).
inline Envelope decode_envelope(std::string_view bytes, std::string_view key,
                                std::uint64_t fingerprint) {
  auto fail = [](std::string_view why) {
    throw DecodeError(fmt::format("larder: cached payload rejected: {}", why));
  };
  if (bytes.size() < kEnvelopeMagic.size() + 1 || bytes.substr(0, 4) != kEnvelopeMagic ||
      bytes[4] != ' ')
    fail("not a larder payload (or another format version)");
  std::size_t pos = 5;
  auto field = [&](int base) -> std::uint64_t {
    const char* first = bytes.data() + pos;
    const char* last = bytes.data() + bytes.size();
    std::uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(first, last, v, base);
    if (ec != std::errc{} || ptr == last || *ptr != ' ') fail("malformed header");
    pos = static_cast<std::size_t>(ptr - bytes.data()) + 1;
    return v;
  };
  // A stamp past TimePoint's end (int64 ns: 9223372036854 ms) was never written by
  // encode_envelope; converting it to ns would overflow (undefined) into some other time.
  constexpr auto kMaxMs = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(TimePoint::max().time_since_epoch())
          .count());
  auto stamp = [&] {
    const std::uint64_t ms = field(10);
    if (ms > kMaxMs) fail("a stamp is out of range");
    return from_ms(static_cast<std::int64_t>(ms));
  };
  const std::uint64_t fp = field(16);
  Envelope env;
  env.stamps.written = stamp();
  env.stamps.fresh_until = stamp();
  env.stamps.expires = stamp();
  const std::uint64_t key_len = field(10);
  if (key_len > bytes.size() - pos || bytes.size() - pos - key_len < 1) fail("truncated header");
  if (fp != fingerprint) fail("schema fingerprint differs (another deploy's value type or codec)");
  if (bytes.substr(pos, key_len) != key)
    fail("written for another key (a collision or foreign data)");
  pos += key_len;
  if (bytes[pos] != '\n') fail("malformed header");
  env.value = bytes.substr(pos + 1);
  return env;
}

}  // namespace larder::detail

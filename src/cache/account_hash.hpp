// The hash of an account id, computed on every get (the snapshot table's probe and the shard).
//
// Why not std::hash<std::string_view>: libstdc++'s is a byte-oriented Murmur (std::_Hash_bytes,
// an out-of-line call of ~80 instructions for a 14-character id), a fifth of async_get's hot
// path. This one reads the id in at most a few 8-byte loads and mixes them with 64x64->128-bit
// multiplies (the construction of wyhash and rapidhash): ~20 instructions for ids up to 16
// bytes, every output bit depending on every input bit.
//
// Not keyed: as with std::hash, the ids are the application's (Apollo user ids), not input an
// attacker chooses, and the tables it indexes grow with the accounts, not with collisions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace apollo_oauth::detail {

static_assert(sizeof(std::size_t) == 8, "account_hash is written for 64-bit targets (128-bit products)");

namespace account_hash_detail {

constexpr std::uint64_t k0 = 0x9E3779B97F4A7C15ull;  // 2^64 / golden ratio
constexpr std::uint64_t k1 = 0xBF58476D1CE4E5B9ull;  // splitmix64's multipliers
constexpr std::uint64_t k2 = 0x94D049BB133111EBull;

inline std::uint64_t load64(const char* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline std::uint64_t load32(const char* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// __extension__: a GCC and Clang type, which -Wpedantic would otherwise reject.
__extension__ using uint128 = unsigned __int128;

/// Both halves of the 128-bit product folded, and the factors folded back in: a product with a
/// zero factor is zero whatever the other factor is, so without them an input word that happened
/// to cancel its key would make the other word stop counting (wyhash's "condom" variant).
inline std::uint64_t mix(std::uint64_t a, std::uint64_t b) noexcept {
    const auto product = static_cast<uint128>(a) * b;
    return (a ^ static_cast<std::uint64_t>(product)) ^ (b ^ static_cast<std::uint64_t>(product >> 64));
}

}  // namespace account_hash_detail

inline std::size_t account_hash(std::string_view id) noexcept {
    using namespace account_hash_detail;
    const char* p = id.data();
    const std::size_t n = id.size();
    std::uint64_t seed = k0 ^ (n * k1);
    std::uint64_t a = 0;
    std::uint64_t b = 0;
    if (n <= 16) {
        // Two loads that between them cover every byte (overlapping when n < 16).
        if (n >= 8) {
            a = load64(p);
            b = load64(p + n - 8);
        } else if (n >= 4) {
            a = load32(p);
            b = load32(p + n - 4);
        } else if (n > 0) {
            a = (std::uint64_t{static_cast<unsigned char>(p[0])} << 16) |
                (std::uint64_t{static_cast<unsigned char>(p[n / 2])} << 8) |
                static_cast<unsigned char>(p[n - 1]);
        }
    } else {
        std::size_t i = n;
        while (i > 16) {
            seed = mix(load64(p) ^ k1, load64(p + 8) ^ seed);
            p += 16;
            i -= 16;
        }
        // The last 16 bytes, overlapping what the loop read when n is not a multiple of 16.
        a = load64(id.data() + n - 16);
        b = load64(id.data() + n - 8);
    }
    return static_cast<std::size_t>(mix(k2 ^ n, mix(a ^ k1, b ^ seed)));
}

/// Which of 2^bits partitions (the cache's shards) an account belongs to: the hash's high bits,
/// spread by Fibonacci hashing, because the tables' buckets use its low ones. bits: 0 to 8.
inline std::size_t partition_of(std::size_t hash, unsigned bits) noexcept {
    return bits == 0 ? 0 : static_cast<std::size_t>((hash * account_hash_detail::k0) >> (64 - bits));
}

}  // namespace apollo_oauth::detail

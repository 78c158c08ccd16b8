#include "sansio/packed_rest.hpp"

#include <apollo_oauth/detail/secure_wipe.hpp>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <type_traits>

namespace apollo_oauth::sansio {

namespace {

// The block: every field in the order `each_field` names them, each number as a LEB128 varint
// (signed ones zigzag-encoded), texts as a varint length and their bytes, the scopes as a varint
// count and that many texts. Generations, counters and flags are small, and so are most numbers.
// The block never leaves the process, and only this file writes it, so it is read without checks.
// Its size is not stored either (a few bytes of every idle account): freeing the block walks it.
//
// The served snapshot comes first: a 0 when the keeper holds it (the cache's snapshot slot,
// whose words and fields are exactly the rest's access token, generation, usable-until and
// refresh-at while it rests), or the access token's length plus one, the token, the generation,
// usable-until (whole) and refresh-at (a distance from it).
//
// Every other time point is a distance from one decoded before it, in modular arithmetic (so any
// two points have one): the expiry from usable-until (the margin, a whole minute by default),
// and created-at from the expiry less the lifetime (the moment the request was sent, which is
// created-at itself unless the server said otherwise). A distance is whole seconds, tagged even,
// or seconds tagged odd followed by the nanoseconds left: an Apollo pair's take one or two bytes
// instead of the six to nine of their nanoseconds.

static_assert(std::is_same_v<sys_time::period, std::nano>, "distances are split at 10^9 ticks");
constexpr std::int64_t ticks_per_second = 1'000'000'000;
/// The token type nearly every server issues, packed as one byte.
constexpr std::string_view bearer = "Bearer";

std::uint64_t zigzag(std::int64_t v) noexcept {
    return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
std::int64_t unzigzag(std::uint64_t v) noexcept {
    return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
}

/// A number's bits as they are encoded: unsigned as is, signed zigzagged.
template <class T>
std::uint64_t bits_of(const T& v) noexcept {
    if constexpr (std::is_enum_v<T>) {
        return static_cast<std::uint64_t>(v);
    } else if constexpr (std::is_same_v<T, bool> || std::is_unsigned_v<T>) {
        return v;
    } else {  // a std::chrono::duration
        return zigzag(static_cast<std::int64_t>(v.count()));
    }
}
template <class T>
T from_bits(std::uint64_t bits) noexcept {
    if constexpr (std::is_enum_v<T> || std::is_same_v<T, bool> || std::is_unsigned_v<T>) {
        return static_cast<T>(bits);
    } else {
        return T{static_cast<typename T::rep>(unzigzag(bits))};
    }
}

std::uint64_t ticks_of(sys_time t) noexcept {
    return static_cast<std::uint64_t>(t.time_since_epoch().count());
}
sys_time at_ticks(std::uint64_t ticks) noexcept {
    return sys_time{sys_time::duration{static_cast<sys_time::rep>(ticks)}};
}

/// When the pair's request was sent: its expiry less its lifetime (modular: defined for any values).
sys_time sent_at_of(const token_set& t) noexcept {
    return at_ticks(ticks_of(t.expires_at) - static_cast<std::uint64_t>(t.expires_in.count()) *
                                                 static_cast<std::uint64_t>(ticks_per_second));
}

/// Names every field of account_rest once, in the block's order, for both passes below (encoding,
/// which also measures, and decoding, which also walks): a field added to the rest and not here
/// fails the round-trip test. Each base is decoded before the distances from it.
template <class Pass, class Rest>
void each_field(Pass& pass, Rest& r) {
    auto& t = r.current.tokens;
    pass.served(t.access_token, r.current.generation, r.usable_until, r.refresh_at);
    pass.time_near(t.expires_at, r.usable_until);
    pass.number(t.expires_in);
    pass.time_near(t.created_at, sent_at_of(t));
    pass.number(r.stored_generation);
    pass.number(r.invalidated_generation);
    pass.number(r.refresh_base);
    pass.number(r.save_attempts);
    pass.number(r.current.state);
    pass.number(r.stopped);
    pass.text(t.refresh_token);
    pass.token_type(t.token_type);
    pass.texts(t.scopes);
}

std::string_view view_of(const secret_string& s) noexcept {
    return s.reveal();
}
std::string_view view_of(const std::string& s) noexcept {
    return s;
}

/// Writes the block into `out`, or with `out` null only counts its bytes.
struct encoder {
    std::byte* out = nullptr;
    bool served_by_keeper = false;
    std::size_t size = 0;

    void byte(std::uint8_t b) noexcept {
        if (out != nullptr) {
            out[size] = std::byte{b};
        }
        ++size;
    }
    void varint(std::uint64_t v) noexcept {
        for (; v >= 0x80; v >>= 7) {
            byte(static_cast<std::uint8_t>(v | 0x80));
        }
        byte(static_cast<std::uint8_t>(v));
    }
    void bytes(std::string_view s) noexcept {
        if (out != nullptr && !s.empty()) {
            std::memcpy(out + size, s.data(), s.size());
        }
        size += s.size();
    }
    template <class T>
    void number(const T& v) noexcept {
        varint(bits_of(v));
    }
    void time(sys_time t) noexcept { varint(zigzag(t.time_since_epoch().count())); }
    void time_near(sys_time t, sys_time base) noexcept {
        const auto d = static_cast<std::int64_t>(ticks_of(t) - ticks_of(base));
        const auto seconds = d / ticks_per_second;  // |seconds| < 2^34: the tag bit cannot overflow
        const auto rest = d % ticks_per_second;
        varint(zigzag(seconds) << 1 | (rest != 0 ? 1 : 0));
        if (rest != 0) {
            varint(zigzag(rest));
        }
    }
    template <class Text>
    void text(const Text& s) noexcept {
        varint(view_of(s).size());
        bytes(view_of(s));
    }
    void token_type(const std::string& s) noexcept {
        if (s == bearer) {
            varint(0);
        } else {
            varint(s.size() + 1);
            bytes(s);
        }
    }
    void served(const secret_string& access_token, std::uint64_t generation, sys_time usable_until,
                sys_time refresh_at) noexcept {
        if (served_by_keeper) {
            varint(0);
            return;
        }
        varint(access_token.reveal().size() + 1);
        bytes(access_token.reveal());
        number(generation);
        time(usable_until);
        time_near(refresh_at, usable_until);
    }
    void texts(const std::vector<std::string>& list) noexcept {
        varint(list.size());
        for (const auto& s : list) {
            text(s);
        }
    }
};

/// Reads a block into a rest, or with `values` false only walks it (without allocating).
struct decoder {
    const std::byte* at;
    bool values = true;
    const served_snapshot* kept = nullptr;  ///< what the keeper holds, when the block left it there

    std::uint64_t varint() noexcept {
        std::uint64_t v = 0;
        for (unsigned shift = 0;; shift += 7) {
            const auto b = static_cast<std::uint8_t>(*at++);
            v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
            if ((b & 0x80) == 0) {
                return v;
            }
        }
    }
    std::string_view bytes(std::uint64_t n) noexcept {
        const std::string_view s{reinterpret_cast<const char*>(at), static_cast<std::size_t>(n)};
        at += n;
        return s;
    }
    template <class T>
    void number(T& v) noexcept {
        v = from_bits<T>(varint());
    }
    void time(sys_time& t) noexcept { t = sys_time{sys_time::duration{unzigzag(varint())}}; }
    void time_near(sys_time& t, sys_time base) noexcept {
        const auto tagged = varint();
        const auto seconds = unzigzag(tagged >> 1);
        const auto rest = (tagged & 1) != 0 ? unzigzag(varint()) : 0;
        t = at_ticks(ticks_of(base) +
                     static_cast<std::uint64_t>(seconds) * static_cast<std::uint64_t>(ticks_per_second) +
                     static_cast<std::uint64_t>(rest));
    }
    void text(secret_string& s) {
        const auto v = bytes(varint());
        if (values) {
            s = secret_string(v);
        }
    }
    void text(std::string& s) {
        const auto v = bytes(varint());
        if (values) {
            s.assign(v);
        }
    }
    void token_type(std::string& s) {
        const auto n = varint();
        const auto v = n == 0 ? bearer : bytes(n - 1);
        if (values) {
            s.assign(v);
        }
    }
    void served(secret_string& access_token, std::uint64_t& generation, sys_time& usable_until,
                sys_time& refresh_at) {
        const auto n = varint();
        if (n == 0) {
            if (values) {
                access_token = secret_string(kept->access_token);
                generation = kept->generation;
                usable_until = kept->usable_until;
                refresh_at = kept->refresh_at;
            }
            return;
        }
        const auto v = bytes(n - 1);
        if (values) {
            access_token = secret_string(v);
        }
        number(generation);
        time(usable_until);
        time_near(refresh_at, usable_until);
    }
    void texts(std::vector<std::string>& list) {
        const auto n = varint();
        if (values) {
            list.reserve(static_cast<std::size_t>(n));
        }
        for (std::uint64_t i = 0; i < n; ++i) {
            const auto v = bytes(varint());
            if (values) {
                list.emplace_back(v);
            }
        }
    }
};

std::size_t stored_size(const std::byte* block) noexcept {
    account_rest walked;  // its numbers are written, its texts never assigned: nothing allocates
    decoder d{block, false, nullptr};
    each_field(d, walked);
    return static_cast<std::size_t>(d.at - block);
}

}  // namespace

served_snapshot served_of(const account_rest& rest) noexcept {
    return {.access_token = rest.current.tokens.access_token.reveal(),
            .generation = rest.current.generation,
            .usable_until = rest.usable_until,
            .refresh_at = rest.refresh_at};
}

packed_rest::packed_rest(const account_rest& rest, const served_snapshot* keeper) {
    encoder measure{nullptr, keeper != nullptr && *keeper == served_of(rest)};
    each_field(measure, rest);
    block_ = std::allocator<std::byte>{}.allocate(measure.size);
    encoder write{block_, measure.served_by_keeper};
    each_field(write, rest);
}

packed_rest& packed_rest::operator=(packed_rest&& other) noexcept {
    if (this != &other) {
        reset();
        block_ = other.block_;
        other.block_ = nullptr;
    }
    return *this;
}

bool packed_rest::holds_served_snapshot() const noexcept {
    decoder d{block_, false, nullptr};
    return d.varint() != 0;
}

account_rest packed_rest::unpack(const served_snapshot& kept) const {
    account_rest rest;
    decoder d{block_, true, &kept};
    each_field(d, rest);
    return rest;
}

std::size_t packed_rest::size() const noexcept {
    return block_ == nullptr ? 0 : stored_size(block_);
}

void packed_rest::reset() noexcept {
    if (block_ != nullptr) {
        const auto n = stored_size(block_);
        detail::secure_wipe(block_, n);
        std::allocator<std::byte>{}.deallocate(block_, n);  // sized, wherever the compiler allows
        block_ = nullptr;
    }
}

}  // namespace apollo_oauth::sansio

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
// (signed ones zigzag-encoded), three of the four time points as their distance from the fourth,
// texts as a varint length and their bytes, the scopes as a varint count and that many texts.
// Generations, counters and flags are small, and the time points of one pair lie within its
// lifetime, so most numbers take a byte or a few instead of eight. The block never leaves the
// process, and only this file writes it, so it is read without checks. Its size is not stored
// either (a few bytes of every idle account): freeing the block walks it to find the size.
//
// The access token comes first, its length plus one, or 0 when the block's keeper holds the
// token (the cache's snapshot slot has it already, in its words).

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

/// A time point's distance from `base`, in modular arithmetic: defined for any two points.
std::int64_t distance(sys_time t, sys_time base) noexcept {
    return static_cast<std::int64_t>(static_cast<std::uint64_t>(t.time_since_epoch().count()) -
                                     static_cast<std::uint64_t>(base.time_since_epoch().count()));
}
sys_time at_distance(sys_time base, std::int64_t d) noexcept {
    return sys_time{sys_time::duration{static_cast<sys_time::rep>(
        static_cast<std::uint64_t>(base.time_since_epoch().count()) + static_cast<std::uint64_t>(d))}};
}

/// Names every field of account_rest once, in the block's order, for both passes below (encoding,
/// which also measures, and decoding, which also walks): a field added to the rest and not here
/// fails the round-trip test.
template <class Pass, class Rest>
void each_field(Pass& pass, Rest& r) {
    auto& t = r.current.tokens;
    pass.access_token(t.access_token);
    pass.time(t.expires_at);  // the base of the other three
    pass.time_near(t.created_at, t.expires_at);
    pass.time_near(r.usable_until, t.expires_at);
    pass.time_near(r.refresh_at, t.expires_at);
    pass.number(t.expires_in);
    pass.number(r.current.generation);
    pass.number(r.stored_generation);
    pass.number(r.invalidated_generation);
    pass.number(r.refresh_base);
    pass.number(r.save_attempts);
    pass.number(r.current.state);
    pass.number(r.stopped);
    pass.text(t.refresh_token);
    pass.text(t.token_type);
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
    bool token_kept_elsewhere = false;
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
    void time_near(sys_time t, sys_time base) noexcept { varint(zigzag(distance(t, base))); }
    template <class Text>
    void text(const Text& s) noexcept {
        varint(view_of(s).size());
        bytes(view_of(s));
    }
    void access_token(const secret_string& s) noexcept {
        if (token_kept_elsewhere) {
            varint(0);
        } else {
            varint(s.reveal().size() + 1);
            bytes(s.reveal());
        }
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
    std::string_view kept_token;  ///< the access token, when the keeper holds it

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
    void time_near(sys_time& t, const sys_time& base) noexcept { t = at_distance(base, unzigzag(varint())); }
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
    void access_token(secret_string& s) {
        const auto n = varint();
        const auto v = n == 0 ? kept_token : bytes(n - 1);
        if (values) {
            s = secret_string(v);
        }
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
    decoder d{block, false, {}};
    each_field(d, walked);
    return static_cast<std::size_t>(d.at - block);
}

}  // namespace

packed_rest::packed_rest(const account_rest& rest, access_token_in where) {
    encoder measure{nullptr, where == access_token_in::keeper};
    each_field(measure, rest);
    block_ = std::allocator<std::byte>{}.allocate(measure.size);
    encoder write{block_, measure.token_kept_elsewhere};
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

bool packed_rest::holds_access_token() const noexcept {
    decoder d{block_, false, {}};
    return d.varint() != 0;
}

account_rest packed_rest::unpack(std::string_view kept_access_token) const {
    account_rest rest;
    decoder d{block_, true, kept_access_token};
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

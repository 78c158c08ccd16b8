// An idle account's rest (account_rest) packed into one exact-size heap block.
//
// Why: nearly every account of a large cache is idle, and what it keeps is what it costs. An
// account_rest is 288 bytes whatever its contents (two secret_strings with 64-byte inline buffers,
// a std::string, a vector, four time points, generations and counters). Packed, an Apollo pair
// (two 43-byte tokens, "Bearer", no scope) takes a fifth of that: the numbers are varints, time
// points are distances (whole seconds in a byte or two), "Bearer" is one byte, and the served
// snapshot (access token, generation, usable-until, refresh-at) may be left to the block's
// keeper (the cache keeps the block in the account's snapshot slot, which holds exactly those
// already). The block holds a token: it is wiped before it is freed, as a secret_string is.
#pragma once

#include "sansio/account_fsm.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace apollo_oauth::sansio {

/// What a rest serves (its access token, generation, usable-until and refresh-at): what the
/// keeper of a block (the cache's snapshot slot) may hold for it, and hand back to unpack().
struct served_snapshot {
    std::string_view access_token;
    std::uint64_t generation = 0;
    sys_time usable_until{};
    sys_time refresh_at{};

    bool operator==(const served_snapshot&) const = default;
};

/// What `rest` serves (views into it).
served_snapshot served_of(const account_rest& rest) noexcept;

class packed_rest {
public:
    packed_rest() noexcept = default;
    /// Copies `rest` into one block. When `keeper` is given and holds exactly what `rest` serves
    /// (every field of served_snapshot equal), the block leaves those to the keeper; otherwise it
    /// holds them itself. Throws std::bad_alloc (`rest` is unchanged).
    explicit packed_rest(const account_rest& rest, const served_snapshot* keeper = nullptr);
    packed_rest(packed_rest&& other) noexcept : block_(other.block_) { other.block_ = nullptr; }
    packed_rest& operator=(packed_rest&& other) noexcept;
    packed_rest(const packed_rest&) = delete;
    packed_rest& operator=(const packed_rest&) = delete;
    ~packed_rest() { reset(); }

    explicit operator bool() const noexcept { return block_ != nullptr; }
    /// The block holds what its rest serves, rather than leaving it to the keeper (requires a
    /// block).
    bool holds_served_snapshot() const noexcept;
    /// The rest, as it was packed (requires a block). `kept` is what the keeper holds, used when
    /// the block left the served snapshot to it (ignored when the block holds its own). Throws
    /// std::bad_alloc (the block is unchanged).
    account_rest unpack(const served_snapshot& kept = {}) const;
    /// Bytes the block takes (0 when empty).
    std::size_t size() const noexcept;
    /// Wipes and frees the block.
    void reset() noexcept;

private:
    std::byte* block_ = nullptr;
};

}  // namespace apollo_oauth::sansio

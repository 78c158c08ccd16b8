// An idle account's rest (account_rest) packed into one exact-size heap block.
//
// Why: nearly every account of a large cache is idle, and what it keeps is what it costs. An
// account_rest is 288 bytes whatever its contents (two secret_strings with 64-byte inline buffers,
// a std::string, a vector, four time points, generations and counters). Packed, an Apollo pair
// (two 43-byte tokens, "Bearer", no scope) takes well under half of that: the numbers are varints,
// three time points are stored as distances from the fourth, and the access token may be left to
// the block's keeper (the cache keeps the block in the account's snapshot slot, whose words hold
// that token already). The block holds a token: it is wiped before it is freed, as a
// secret_string is.
#pragma once

#include "sansio/account_fsm.hpp"

#include <cstddef>
#include <string_view>

namespace apollo_oauth::sansio {

/// Where a packed rest's access token is: in the block, or with whoever keeps the block, who
/// hands it back to unpack().
enum class access_token_in { block, keeper };

class packed_rest {
public:
    packed_rest() noexcept = default;
    /// Copies `rest` into one block, without its access token if `where` is keeper. Throws
    /// std::bad_alloc (`rest` is unchanged).
    explicit packed_rest(const account_rest& rest, access_token_in where = access_token_in::block);
    packed_rest(packed_rest&& other) noexcept : block_(other.block_) { other.block_ = nullptr; }
    packed_rest& operator=(packed_rest&& other) noexcept;
    packed_rest(const packed_rest&) = delete;
    packed_rest& operator=(const packed_rest&) = delete;
    ~packed_rest() { reset(); }

    explicit operator bool() const noexcept { return block_ != nullptr; }
    /// The block holds the access token (requires a block).
    bool holds_access_token() const noexcept;
    /// The rest, as it was packed (requires a block). `kept_access_token` is its access token when
    /// the block does not hold it (ignored when it does). Throws std::bad_alloc (the block is
    /// unchanged).
    account_rest unpack(std::string_view kept_access_token = {}) const;
    /// Bytes the block takes (0 when empty).
    std::size_t size() const noexcept;
    /// Wipes and frees the block.
    void reset() noexcept;

private:
    std::byte* block_ = nullptr;
};

}  // namespace apollo_oauth::sansio

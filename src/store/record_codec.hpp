// The file store's record format, as pure functions (no I/O).
//
// One JSON object per file, keys in this order:
//   {"format":1,"account":"...","generation":7,"access_token":"...","token_type":"Bearer",
//    "refresh_token":"...","scopes":["a","b"],"expires_in":2592000,"created_at":1700000000,
//    "expires_at":1702592000,"checksum":"<64 hex>"}
// with ,"state":"reauthorization_required" before the checksum when the grant is known gone.
// followed by a newline. An account id that is not valid UTF-8 (ids are arbitrary bytes, JSON
// strings are not) is stored as "account_hex" instead of "account". Times are Unix seconds,
// rounded down: a time_point comes back at one-second resolution. "checksum" is the lowercase hex
// SHA-256 of the text before the `,"checksum"` member followed by `}`: the record without it, byte
// for byte, so no re-serialisation can change what was hashed.
#pragma once

#include "store/wiped_string.hpp"

#include <apollo_oauth/error.hpp>
#include <apollo_oauth/token_store.hpp>

#include <cstdint>
#include <string_view>

namespace apollo_oauth::store {

inline constexpr int record_format = 1;

/// The largest generation a stored record may carry; a larger one is read as corrupt. Far beyond
/// any real account (a rotation a second for 285 million years), and below the ends the cache's
/// `generation + 1` would wrap at, or a Lua number (a double) stops counting exactly at: the next
/// generation, 2^53, is still exact in the Redis store's functions.
inline constexpr std::uint64_t max_generation = (std::uint64_t{1} << 53) - 1;

/// A record file larger than this is reported as corrupt rather than read.
inline constexpr std::size_t max_record_size = 1 << 20;

/// False when a string field of `record` is not valid UTF-8: it could be written but never read.
bool is_encodable(const stored_tokens& record) noexcept;

/// The refusals of token_store::async_save's contract that every store shares (invalid_argument):
/// a generation not above `expected_generation` (a store never goes back) or past max_generation,
/// or a string that is not valid UTF-8. So a pair one store takes, every store takes.
bool refuses_write(const stored_tokens& record, std::uint64_t expected_generation) noexcept;

/// The record file's text for `record` (precondition: is_encodable), written into `out` (whose
/// storage is reserved once, so no unwiped copy of a token is left behind).
void encode_record(std::string_view account, const stored_tokens& record, wiped_string& out);

/// Whether `text`, encode_record's for `account`, is a record file the store reads back: within
/// max_record_size, and decoded by decode_record (which holds the generation to max_generation and
/// the times to what a time_point holds). One that is not would be written and then never read
/// again: every load, acquire and commit of the account corrupt_record, and the refresh token in it
/// the only live one. So the file store refuses to write it (errc::invalid_argument).
bool reads_back(std::string_view text, std::string_view account);

/// Parses and checks a record file: checksum, format, every field and its type, and that it
/// belongs to `account`. errc::corrupt_record for anything else.
error_code decode_record(std::string_view text, std::string_view account, stored_tokens& out);

}  // namespace apollo_oauth::store

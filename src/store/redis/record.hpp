// An account's hash in Redis, as pure functions: the fields a commit writes, and the decoding of
// an HGETALL reply (a flat array of field, value pairs) back into a stored_tokens. Untrusted
// input: anything but a record this store wrote is errc::corrupt_record (fuzz/targets).
#pragma once

#include "store/redis/resp.hpp"

#include <apollo_oauth/error.hpp>
#include <apollo_oauth/token_store.hpp>

namespace apollo_oauth::redis {

/// Appends access, refresh, type, scopes, expires_in, created_at, expires_at (the commit
/// function's arguments 4 to 10). Times are milliseconds since the Unix epoch.
void append_record_fields(const stored_tokens& record, command& cmd);

/// Whether the hash can hold `record` so that decode_record gives it back: a non-empty access
/// token, scopes that are non-empty and hold no space (the field joins them with spaces), times
/// within decode_record's range, and a generation up to store::max_generation. A commit refuses
/// anything else (errc::invalid_argument) rather than write a record every later read would find
/// corrupt. The refresh token may be empty (a grant without one) and token_type is kept as given,
/// as the file and memory stores keep them.
bool is_storable(const stored_tokens& record);

/// Decodes an HGETALL reply. An empty array (no key) gives nullopt. Every record field must be
/// present, of the right form (format "1", generation >= 1, integers in range, state "ok" or
/// "reauth", a non-empty access token, scopes without empty ones); fields of the refresh in
/// flight are ignored. Errors: errc::corrupt_record.
error_code decode_record(const reply& hgetall, std::optional<stored_tokens>& out);

}  // namespace apollo_oauth::redis

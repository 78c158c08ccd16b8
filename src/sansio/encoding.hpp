// Percent-encoding (RFC 3986), form encoding (WHATWG application/x-www-form-urlencoded),
// base64url (RFC 4648 §5) and scope lists (RFC 6749 §3.3). Pure functions, no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace apollo_oauth::sansio {

/// Keeps RFC 3986 unreserved characters (ALPHA DIGIT - . _ ~), encodes every other byte as %XX
/// (upper-case hex). A space becomes %20.
std::string percent_encode(std::string_view value);

/// As percent_encode, but a space becomes '+' (HTML form encoding, used for request bodies).
std::string form_encode(std::string_view value);

/// Decodes %XX (either case) and, when plus_as_space, '+' as a space. nullopt for a malformed
/// escape ('%' not followed by two hex digits).
std::optional<std::string> percent_decode(std::string_view value, bool plus_as_space);

/// "k1=v1&k2=v2" with form_encode applied to keys and values.
std::string form_body(std::span<const std::pair<std::string_view, std::string_view>> fields);

/// Unpadded base64url.
std::string base64url_encode(std::span<const std::uint8_t> bytes);

/// True when `scope` is a valid RFC 6749 §3.3 scope-token: 1*( %x21 / %x23-5B / %x5D-7E ).
bool is_valid_scope_token(std::string_view scope) noexcept;

/// ASCII case-insensitive equality. Written by hand: Boost.URL 1.81's grammar::ci_is_equal reads
/// one byte past the end of both strings when they differ only in case (found by fuzzing).
bool ascii_iequals(std::string_view a, std::string_view b) noexcept;

/// Space-joined scope list.
std::string join_scopes(const std::vector<std::string>& scopes);

/// Splits on runs of spaces; empty input gives an empty list.
std::vector<std::string> split_scopes(std::string_view scopes);

}  // namespace apollo_oauth::sansio

// Encoding and verifying file store records.
#include "store/record_codec.hpp"

#include "sansio/scrubbed_json.hpp"
#include "store/sha256.hpp"
#include "store/utf8.hpp"

#include <apollo_oauth/account_id.hpp>
#include <apollo_oauth/config.hpp>

#include <boost/algorithm/hex.hpp>
#include <boost/json/serializer.hpp>

#include <openssl/crypto.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <limits>
#include <string>

namespace apollo_oauth::store {
namespace {

constexpr std::string_view checksum_prefix = R"(,"checksum":")";
constexpr std::size_t checksum_digits = 64;
constexpr std::string_view checksum_suffix = R"("})";
constexpr std::size_t trailer_size = checksum_prefix.size() + checksum_digits + checksum_suffix.size();

// Beyond this many seconds from the epoch a time_point's nanosecond count overflows.
constexpr std::int64_t max_unix_seconds = std::numeric_limits<std::int64_t>::max() / 1'000'000'000;

// validate() caps limits::token_body_bytes so that a pair from token responses within it always
// fits in a record. Boost.JSON's serializer escapes only '"', '\\' and control characters, each in
// the shortest form JSON has (\n, \u0001), and the response's parser took them only escaped: a
// string is never longer here than it was in the body. Scopes are the exception: the body's
// "a b" becomes ["a","b"], at most twice as long. A record holds the access token of one response
// (one body), the refresh token of an earlier one when a refresh answers without one (one more),
// and the scopes of a still earlier one when the answers since name none (two bodies' worth: the
// cache keeps them, RFC 6749 §6). The account id, the token type, the numbers and the checksum
// get the rest (record_codec_test writes the worst case out).
constexpr std::size_t record_room_besides_responses = 256 * 1024;
static_assert(4 * max_token_body_bytes + record_room_besides_responses <= max_record_size,
              "a pair from token responses within limits::token_body_bytes must fit in a record");
// The cache's longest id, escaped as JSON at worst (six bytes a control character), takes a small
// part of that rest.
static_assert(6 * max_account_id_bytes <= record_room_besides_responses / 8,
              "an account id the cache takes must leave the rest of the record room to spare");

// Boost.JSON's serializer does the escaping; reading it through a stack chunk keeps the only heap
// copy in `out`.
void append_json_string(std::string& out, std::string_view s) {
    boost::json::serializer sr;
    sr.reset(boost::json::string_view(s.data(), s.size()));
    char chunk[512];
    while (!sr.done()) {
        const auto part = sr.read(chunk, sizeof chunk);
        out.append(part.data(), part.size());
    }
    OPENSSL_cleanse(chunk, sizeof chunk);
}

std::int64_t unix_seconds(std::chrono::system_clock::time_point t) {
    return std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::string account_hex(std::string_view account) {
    std::string out;
    out.reserve(2 * account.size());
    boost::algorithm::hex_lower(account.begin(), account.end(), std::back_inserter(out));
    return out;
}

// An upper bound of the encoded size: a byte becomes at most six (\u00XX), plus quotes and
// separators; the fixed part covers the keys, four numbers and the checksum.
std::size_t encoded_size_bound(std::string_view account, const stored_tokens& r) {
    auto string_bound = [](std::size_t n) { return 6 * n + 3; };
    std::size_t n = 512 + string_bound(account.size()) + string_bound(r.tokens.access_token.size()) +
                    string_bound(r.tokens.token_type.size()) + string_bound(r.tokens.refresh_token.size());
    for (const auto& s : r.tokens.scopes) {
        n += string_bound(s.size());
    }
    return n;
}

template <class T>
bool read_number(const boost::json::object& o, std::string_view key, T& out) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || !(v->is_int64() || v->is_uint64())) {
        return false;
    }
    boost::json::error_code ec;
    out = v->to_number<T>(ec);
    return !ec;
}

const boost::json::string* read_string(const boost::json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v == nullptr ? nullptr : v->if_string();
}

bool read_time(const boost::json::object& o, std::string_view key,
               std::chrono::system_clock::time_point& out) {
    std::int64_t s = 0;
    if (!read_number(o, key, s) || s > max_unix_seconds || s < -max_unix_seconds) {
        return false;
    }
    out = std::chrono::system_clock::time_point(std::chrono::seconds(s));
    return true;
}

bool account_matches(const boost::json::object& o, std::string_view account) {
    if (const auto* plain = read_string(o, "account")) {
        return o.if_contains("account_hex") == nullptr && std::string_view(*plain) == account;
    }
    const auto* hex = read_string(o, "account_hex");
    return hex != nullptr && std::string_view(*hex) == account_hex(account);
}

bool read_fields(const boost::json::object& o, std::string_view account, stored_tokens& out) {
    int format = 0;
    if (!read_number(o, "format", format) || format != record_format || !account_matches(o, account) ||
        !read_number(o, "generation", out.generation) || out.generation > max_generation) {
        return false;
    }
    const auto* access = read_string(o, "access_token");
    const auto* type = read_string(o, "token_type");
    const auto* refresh = read_string(o, "refresh_token");
    const auto* scopes_value = o.if_contains("scopes");
    const auto* scopes = scopes_value == nullptr ? nullptr : scopes_value->if_array();
    if (access == nullptr || type == nullptr || refresh == nullptr || scopes == nullptr) {
        return false;
    }
    out.tokens.access_token = secret_string(std::string_view(*access));
    out.tokens.token_type = std::string(*type);
    out.tokens.refresh_token = secret_string(std::string_view(*refresh));
    out.tokens.scopes.clear();
    for (const auto& s : *scopes) {
        if (!s.is_string()) {
            return false;
        }
        out.tokens.scopes.emplace_back(s.get_string());
    }
    std::int64_t expires_in = 0;
    if (!read_number(o, "expires_in", expires_in) || !read_time(o, "created_at", out.tokens.created_at) ||
        !read_time(o, "expires_at", out.tokens.expires_at)) {
        return false;
    }
    out.tokens.expires_in = std::chrono::seconds(expires_in);
    out.state = record_state::ok;
    if (o.if_contains("state") != nullptr) {
        const auto* state = read_string(o, "state");
        if (state == nullptr || std::string_view(*state) != "reauthorization_required") {
            return false;
        }
        out.state = record_state::reauthorization_required;
    }
    return true;
}

}  // namespace

bool is_encodable(const stored_tokens& r) noexcept {
    const auto& t = r.tokens;
    return is_valid_utf8(t.access_token.reveal()) && is_valid_utf8(t.token_type) &&
           is_valid_utf8(t.refresh_token.reveal()) &&
           std::all_of(t.scopes.begin(), t.scopes.end(),
                       [](const std::string& s) { return is_valid_utf8(s); });
}

bool refuses_write(const stored_tokens& record, std::uint64_t expected_generation) noexcept {
    return record.generation <= expected_generation || record.generation > max_generation ||
           !is_encodable(record);
}

void encode_record(std::string_view account, const stored_tokens& r, wiped_string& out) {
    out.wipe();
    std::string& s = out.value;
    s.reserve(encoded_size_bound(account, r));
    const auto& t = r.tokens;

    s += R"({"format":)";
    s += std::to_string(record_format);
    if (is_valid_utf8(account)) {
        s += R"(,"account":)";
        append_json_string(s, account);
    } else {
        s += R"(,"account_hex":")";
        s += account_hex(account);
        s += '"';
    }
    s += R"(,"generation":)";
    s += std::to_string(r.generation);
    s += R"(,"access_token":)";
    append_json_string(s, t.access_token.reveal());
    s += R"(,"token_type":)";
    append_json_string(s, t.token_type);
    s += R"(,"refresh_token":)";
    append_json_string(s, t.refresh_token.reveal());
    s += R"(,"scopes":[)";
    for (std::size_t i = 0; i < t.scopes.size(); ++i) {
        if (i != 0) {
            s += ',';
        }
        append_json_string(s, t.scopes[i]);
    }
    s += R"(],"expires_in":)";
    s += std::to_string(t.expires_in.count());
    s += R"(,"created_at":)";
    s += std::to_string(unix_seconds(t.created_at));
    s += R"(,"expires_at":)";
    s += std::to_string(unix_seconds(t.expires_at));
    if (r.state == record_state::reauthorization_required) {
        s += R"(,"state":"reauthorization_required")";  // absent: ok (records of before states)
    }
    s += '}';

    const std::string checksum = sha256_hex(s);
    s.pop_back();
    s += checksum_prefix;
    s += checksum;
    s += checksum_suffix;
    s += '\n';
}

bool reads_back(std::string_view text, std::string_view account) {
    stored_tokens back;
    return text.size() <= max_record_size && !decode_record(text, account, back);
}

error_code decode_record(std::string_view text, std::string_view account, stored_tokens& out) {
    const error_code corrupt = make_error_code(errc::corrupt_record);
    if (!text.empty() && text.back() == '\n') {
        text.remove_suffix(1);
    }
    if (text.size() < trailer_size + 2) {
        return corrupt;
    }
    const std::string_view body = text.substr(0, text.size() - trailer_size);
    const std::string_view trailer = text.substr(body.size());
    const std::string_view checksum = trailer.substr(checksum_prefix.size(), checksum_digits);
    if (!trailer.starts_with(checksum_prefix) || !trailer.ends_with(checksum_suffix) ||
        !is_lower_hex(checksum)) {
        return corrupt;
    }
    sha256 h;
    h.update(body);
    h.update("}");
    if (h.hex_digest() != checksum) {
        return corrupt;
    }

    // The checksum only says the bytes are the ones written; the structure is checked in full too.
    sansio::scrubbed_json memory;
    error_code ec;
    const boost::json::value doc = memory.parse(text, ec);
    const auto* o = doc.if_object();
    if (ec || o == nullptr) {
        return corrupt;
    }
    const auto* stored_checksum = read_string(*o, "checksum");
    stored_tokens parsed;
    if (stored_checksum == nullptr || std::string_view(*stored_checksum) != checksum ||
        !read_fields(*o, account, parsed)) {
        return corrupt;
    }
    out = std::move(parsed);
    return {};
}

}  // namespace apollo_oauth::store

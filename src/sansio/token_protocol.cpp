// Token endpoint bodies and the token and profile response parsers.
#include "sansio/token_protocol.hpp"

#include "sansio/encoding.hpp"
#include "sansio/scrubbed_json.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>

namespace apollo_oauth::sansio {
namespace json = boost::json;
using std::chrono::seconds;
using std::chrono::system_clock;

namespace {

// A token lifetime beyond this is clamped: no real server means it, and the expiry arithmetic on
// system_clock (nanoseconds, about ±292 years) must not overflow.
constexpr seconds max_lifetime{10LL * 366 * 24 * 3600};

// created_at values beyond this cannot be represented as a system_clock time point safely.
constexpr std::uint64_t max_unix_seconds = static_cast<std::uint64_t>(
    std::chrono::duration_cast<seconds>(system_clock::duration::max()).count() / 2);

std::string_view view(const json::string& s) noexcept {
    return {s.data(), s.size()};
}

bool is_success(unsigned status) noexcept {
    return status >= 200 && status < 300;
}

void reset_diag(diagnostics& diag, unsigned status) {
    // retry_after is left alone: it comes from a header the caller may already have parsed.
    diag.http_status = status;
    diag.error.clear();
    diag.error_description.clear();
    diag.error_uri.clear();
}

const json::string* string_member(const json::object& o, std::string_view key) {
    const json::value* v = o.if_contains(key);
    return v ? v->if_string() : nullptr;
}

// An RFC 6749 §5.2 error object is one with a string "error"; its texts go to diag.
std::optional<errc> oauth_error(const json::object* o, diagnostics& diag) {
    const json::string* error = o ? string_member(*o, "error") : nullptr;
    if (!error) {
        return std::nullopt;
    }
    diag.error = diagnostic_text(view(*error));
    if (const auto* d = string_member(*o, "error_description")) {
        diag.error_description = diagnostic_text(view(*d));
    }
    if (const auto* u = string_member(*o, "error_uri")) {
        diag.error_uri = diagnostic_text(view(*u));
    }
    return errc_from_oauth_error(diag.error);
}

struct count_field {
    bool present = false;
    bool valid = true;
    std::uint64_t value = 0;
};

// An optional non-negative integer; null counts as absent. A double is accepted when it is finite,
// integral and non-negative (some encoders write every number as a double, and 2592000.0 is still
// an exact count of seconds); a fraction or a negative number is the wrong type.
count_field read_count(const json::object& o, std::string_view key) {
    const json::value* v = o.if_contains(key);
    if (!v || v->is_null()) {
        return {};
    }
    if (const auto* u = v->if_uint64()) {
        return {true, true, *u};
    }
    if (const auto* i = v->if_int64()) {
        return {true, *i >= 0, static_cast<std::uint64_t>(*i >= 0 ? *i : 0)};
    }
    if (const auto* d = v->if_double()) {
        const bool ok = std::isfinite(*d) && *d >= 0 && *d < 0x1p64 && std::trunc(*d) == *d;
        return {true, ok, ok ? static_cast<std::uint64_t>(*d) : 0};
    }
    // A count written as a JSON string of decimal digits ("3599"): some well-known servers send
    // expires_in so (Azure AD's v1 endpoint among them).
    if (const auto* str = v->if_string()) {
        std::uint64_t n = 0;
        const auto [end, ec] = std::from_chars(str->data(), str->data() + str->size(), n);
        return {true, ec == std::errc() && end == str->data() + str->size(), n};  // digits only, in range
    }
    return {true, false, 0};
}

error_code field_error(diagnostics& diag, errc code, std::string_view field) {
    diag.error = field;  // the field's name only: its value may be a token
    return code;
}

// The 2xx path: a JSON object holding the token fields.
//
// Only what a pair cannot be used without fails it: the access token and its type, and a refresh
// token of the wrong type. A 2xx answer to a refresh means the server has rotated the pair and
// revoked the one sent: an answer refused for an informational field would lose the only live
// pair, and the customer would have to authorize again. So an unusable expires_in counts as
// absent (client_config::assumed_lifetime; a token that dies sooner gets a 401, on which the API
// client refreshes once), an unusable created_at as the send time, an unusable scope as the
// requested scopes (RFC 6749 §5.1's reading of an absent one).
error_code read_token_set(const json::object& o, const token_request_context& ctx, token_set& out,
                          diagnostics& diag) {
    const json::value* access = o.if_contains("access_token");
    if (!access) {
        return field_error(diag, errc::missing_field, "access_token");
    }
    // An empty string is no token either; it is reported like any other unusable value.
    const json::string* access_str = access->if_string();
    if (!access_str || access_str->empty()) {
        return field_error(diag, errc::wrong_field_type, "access_token");
    }
    // It will be sent as `Authorization: Bearer <token>`: a CR or LF in it (from a hostile or
    // broken server) would add headers of the server's choosing to every API request.
    if (!is_b64token(view(*access_str))) {
        return field_error(diag, errc::invalid_token_response, "access_token");
    }

    const json::value* type = o.if_contains("token_type");
    if (!type) {
        return field_error(diag, errc::missing_field, "token_type");
    }
    const json::string* type_str = type->if_string();
    if (!type_str) {
        return field_error(diag, errc::wrong_field_type, "token_type");
    }
    // RFC 6749 §5.1: the type is case-insensitive; only Bearer (RFC 6750) is supported.
    if (!ascii_iequals(view(*type_str), "bearer")) {
        return field_error(diag, errc::unsupported_token_type, "token_type");
    }

    count_field expires_in = read_count(o, "expires_in");
    if (!expires_in.valid) {
        expires_in = {};
    }
    count_field created_at = read_count(o, "created_at");
    if (!created_at.valid || created_at.value > max_unix_seconds) {
        created_at = {};
    }

    const json::string* refresh = nullptr;
    if (const json::value* v = o.if_contains("refresh_token"); v && !v->is_null()) {
        refresh = v->if_string();
        if (!refresh) {
            return field_error(diag, errc::wrong_field_type, "refresh_token");
        }
    }
    const json::string* scope = nullptr;
    if (const json::value* v = o.if_contains("scope")) {
        scope = v->if_string();
    }

    token_set t;
    t.access_token = secret_string(view(*access_str));
    t.token_type = "Bearer";
    // An empty refresh_token is treated as absent: RFC 6749 §6 lets a refresh keep the old one.
    if (refresh && !refresh->empty()) {
        t.refresh_token = secret_string(view(*refresh));
    } else if (ctx.previous_refresh_token) {
        t.refresh_token = *ctx.previous_refresh_token;
    }
    // An empty scope string is treated as absent too (RFC 6749 §5.1: omitted when as requested).
    if (scope && !scope->empty()) {
        t.scopes = split_scopes(view(*scope));
    } else {
        t.scopes = ctx.requested_scopes;
    }
    t.expires_in = expires_in.present
                       ? seconds(static_cast<seconds::rep>(std::min<std::uint64_t>(
                             expires_in.value, static_cast<std::uint64_t>(max_lifetime.count()))))
                       : std::min(ctx.assumed_lifetime, max_lifetime);
    t.expires_in = std::max(t.expires_in, std::min(ctx.minimum_lifetime, max_lifetime));
    t.created_at = created_at.present
                       ? system_clock::time_point(seconds(static_cast<seconds::rep>(created_at.value)))
                       : ctx.sent_at;
    t.expires_at = ctx.sent_at + t.expires_in;
    out = std::move(t);
    return {};
}

// A profile field as text: strings as they are, integers in decimal, anything else empty.
std::string text_of(const json::value* v) {
    if (!v) {
        return {};
    }
    if (const auto* s = v->if_string()) {
        return std::string(view(*s));
    }
    if (const auto* i = v->if_int64()) {
        return std::to_string(*i);
    }
    if (const auto* u = v->if_uint64()) {
        return std::to_string(*u);
    }
    return {};
}

}  // namespace

std::string diagnostic_text(std::string_view text) {
    constexpr std::size_t max_bytes = 512;
    if (text.size() <= max_bytes) {
        return std::string(text);
    }
    // Back over at most three continuation bytes (10xxxxxx) to the start of the cut character.
    std::size_t n = max_bytes;
    for (int back = 0; back < 3 && n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80; ++back) {
        --n;
    }
    return std::string(text.substr(0, n));
}

std::string exchange_code_body(const client_credentials& cred, const secret_string& code,
                               std::string_view redirect_uri, const secret_string& code_verifier) {
    const std::pair<std::string_view, std::string_view> fields[] = {
        {"grant_type", "authorization_code"},
        {"code", code.reveal()},
        {"redirect_uri", redirect_uri},
        {"client_id", cred.client_id},
        {"client_secret", cred.client_secret.reveal()},
        {"code_verifier", code_verifier.reveal()},
    };
    return form_body(std::span(fields).first(code_verifier.empty() ? 5 : 6));
}

std::string refresh_body(const client_credentials& cred, const secret_string& refresh_token,
                         std::string_view redirect_uri, const std::vector<std::string>& scopes) {
    const std::string scope = join_scopes(scopes);
    const std::pair<std::string_view, std::string_view> fields[] = {
        {"grant_type", "refresh_token"},
        {"refresh_token", refresh_token.reveal()},
        {"redirect_uri", redirect_uri},
        {"client_id", cred.client_id},
        {"client_secret", cred.client_secret.reveal()},
        {"scope", scope},
    };
    return form_body(std::span(fields).first(scopes.empty() ? 5 : 6));
}

error_code parse_token_response(unsigned status, std::string_view body, const token_request_context& ctx,
                                token_set& out, diagnostics& diag) {
    reset_diag(diag, status);
    scrubbed_json doc;
    error_code parse_ec;
    const json::value jv = doc.parse(body, parse_ec);
    const json::object* o = parse_ec ? nullptr : jv.if_object();

    if (auto code = oauth_error(o, diag)) {
        return *code;
    }
    if (!is_success(status)) {
        return errc::unexpected_status;
    }
    if (!o) {
        return errc::malformed_response;
    }
    return read_token_set(*o, ctx, out, diag);
}

error_code parse_profile_response(unsigned status, std::string_view body, user_profile& out,
                                  diagnostics& diag) {
    reset_diag(diag, status);
    error_code parse_ec;
    const json::value jv = json::parse(body, parse_ec);
    const json::object* o = parse_ec ? nullptr : jv.if_object();

    // 401 and 429 have their own codes whatever the body says; an error object still fills diag.
    const auto oauth = oauth_error(o, diag);
    if (status == 401) {
        return errc::unauthorized;
    }
    if (status == 429) {
        return errc::rate_limited;
    }
    if (oauth) {
        return *oauth;
    }
    if (!is_success(status)) {
        return errc::unexpected_status;
    }
    if (!o) {
        return errc::malformed_response;
    }

    // Apollo does not document the shape: look in "user" first, then at the top level.
    const json::value* user_value = o->if_contains("user");
    const json::object* user = user_value ? user_value->if_object() : nullptr;
    auto find = [&](std::string_view key) -> const json::value* {
        if (user) {
            if (const json::value* v = user->if_contains(key); v && !v->is_null()) {
                return v;
            }
        }
        return o->if_contains(key);
    };
    user_profile p;
    p.id = text_of(find("id"));
    if (p.id.empty()) {
        p.id = text_of(find("user_id"));
    }
    p.email = text_of(find("email"));
    p.name = text_of(find("name"));
    p.team_id = text_of(find("team_id"));
    p.json = std::string(body);
    out = std::move(p);
    return {};
}

}  // namespace apollo_oauth::sansio

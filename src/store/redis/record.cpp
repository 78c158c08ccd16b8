#include "store/redis/record.hpp"

#include "store/record_codec.hpp"

#include <algorithm>
#include <charconv>
#include <string_view>

namespace apollo_oauth::redis {

namespace {

using std::chrono::milliseconds;
using std::chrono::system_clock;

std::int64_t to_ms(system_clock::time_point t) {
    return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

bool parse_int(std::string_view text, std::int64_t& out) {
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, out);
    return !text.empty() && ec == std::errc{} && ptr == end;
}

/// Milliseconds since 1970 within ±292 million years fit a system_clock (nanoseconds: ±292 years);
/// the record keeps them within year 2255.
bool times_in_range(std::int64_t lifetime_s, std::int64_t created_ms, std::int64_t expires_ms) {
    constexpr std::int64_t limit = std::int64_t{9'000'000'000'000};
    return lifetime_s >= 0 && lifetime_s <= limit / 1000 && created_ms >= -limit && created_ms <= limit &&
           expires_ms >= -limit && expires_ms <= limit;
}

std::string join_scopes(const std::vector<std::string>& scopes) {
    std::string joined;
    for (const auto& s : scopes) {
        if (!joined.empty()) {
            joined += ' ';
        }
        joined += s;
    }
    return joined;
}

}  // namespace

bool is_storable(const stored_tokens& record) {
    const token_set& t = record.tokens;
    const bool scopes_joinable = std::none_of(t.scopes.begin(), t.scopes.end(), [](const std::string& scope) {
        return scope.empty() || scope.find(' ') != std::string::npos;
    });
    return !t.access_token.empty() && scopes_joinable && record.generation <= store::max_generation &&
           times_in_range(t.expires_in.count(), to_ms(t.created_at), to_ms(t.expires_at));
}

void append_record_fields(const stored_tokens& record, command& cmd) {
    const token_set& t = record.tokens;
    cmd.arg(t.access_token.reveal())
        .arg(t.refresh_token.reveal())
        .arg(t.token_type)
        .arg(join_scopes(t.scopes))
        .arg(std::to_string(t.expires_in.count()))
        .arg(std::to_string(to_ms(t.created_at)))
        .arg(std::to_string(to_ms(t.expires_at)));
}

error_code decode_record(const reply& hgetall, std::optional<stored_tokens>& out) {
    const error_code corrupt = make_error_code(errc::corrupt_record);
    out.reset();
    if (!hgetall.is_array() || hgetall.elements.size() % 2 != 0) {
        return corrupt;
    }
    if (hgetall.elements.empty()) {
        return {};
    }
    enum field {
        format,
        gen,
        access,
        refresh,
        type,
        scopes,
        expires_in,
        created_at,
        expires_at,
        state,
        count
    };
    static constexpr std::string_view names[count] = {"format",     "gen",    "access",     "refresh",
                                                      "type",       "scopes", "expires_in", "created_at",
                                                      "expires_at", "state"};
    const std::string* values[count] = {};
    for (std::size_t i = 0; i < hgetall.elements.size(); i += 2) {
        const reply& name = hgetall.elements[i];
        const reply& value = hgetall.elements[i + 1];
        if (!name.is_string() || !value.is_string()) {
            return corrupt;
        }
        for (int f = 0; f < count; ++f) {
            if (name.text == names[f]) {
                if (values[f] != nullptr) {
                    return corrupt;  // a hash has each field once: this is no HGETALL of a hash
                }
                values[f] = &value.text;
            }
        }
    }
    for (const auto* v : values) {
        if (v == nullptr) {
            return corrupt;
        }
    }
    std::int64_t generation = 0, lifetime = 0, created = 0, expires = 0;
    if (*values[format] != "1" || !parse_int(*values[gen], generation) || generation < 1 ||
        static_cast<std::uint64_t>(generation) > store::max_generation ||
        !parse_int(*values[expires_in], lifetime) || lifetime < 0 ||
        !parse_int(*values[created_at], created) || !parse_int(*values[expires_at], expires) ||
        values[access]->empty() || (*values[state] != "ok" && *values[state] != "reauth")) {
        return corrupt;
    }
    if (!times_in_range(lifetime, created, expires)) {
        return corrupt;
    }
    stored_tokens record;
    record.generation = static_cast<std::uint64_t>(generation);
    record.state = *values[state] == "ok" ? record_state::ok : record_state::reauthorization_required;
    token_set& t = record.tokens;
    t.access_token = secret_string(std::string_view(*values[access]));
    t.refresh_token = secret_string(std::string_view(*values[refresh]));
    t.token_type = *values[type];
    std::string_view rest = *values[scopes];
    while (!rest.empty()) {
        const auto space = rest.find(' ');
        const auto scope = rest.substr(0, space);
        if (scope.empty()) {
            return corrupt;
        }
        t.scopes.emplace_back(scope);
        rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
        if (space != std::string_view::npos && rest.empty()) {
            return corrupt;  // a trailing space: not what join_scopes writes
        }
    }
    t.expires_in = std::chrono::seconds(lifetime);
    t.created_at =
        system_clock::time_point(std::chrono::duration_cast<system_clock::duration>(milliseconds(created)));
    t.expires_at =
        system_clock::time_point(std::chrono::duration_cast<system_clock::duration>(milliseconds(expires)));
    out = std::move(record);
    return {};
}

}  // namespace apollo_oauth::redis

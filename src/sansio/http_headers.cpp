// Header handling declared in token_protocol.hpp: response header parsing (WWW-Authenticate,
// RFC 6750 §3; Retry-After, RFC 9110 §10.2.3) and the checks on every request header value the
// library builds or is given. Hand-written: Beast parses header fields but not these values, and
// Beast writes whatever field names and values it is handed, CR and LF included.
#include "sansio/encoding.hpp"
#include "sansio/token_protocol.hpp"

#include <algorithm>
#include <array>
#include <charconv>

namespace apollo_oauth::sansio {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

bool iequals(std::string_view a, std::string_view b) noexcept {
    return ascii_iequals(a, b);
}

constexpr auto npos = std::string_view::npos;

bool is_alnum(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// RFC 9110 §5.6.2 tchar.
bool is_tchar(char c) noexcept {
    return is_alnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != npos;
}

// A left-to-right reader over a header value.
class cursor {
public:
    explicit cursor(std::string_view s) noexcept : s_(s) {}

    bool done() const noexcept { return pos_ >= s_.size(); }
    char peek() const noexcept { return done() ? '\0' : s_[pos_]; }

    void skip_ows() noexcept {
        while (!done() && (s_[pos_] == ' ' || s_[pos_] == '\t')) {
            ++pos_;
        }
    }
    bool eat(char c) noexcept {
        if (done() || s_[pos_] != c) {
            return false;
        }
        ++pos_;
        return true;
    }
    bool eat(std::string_view lit) noexcept {
        if (s_.substr(pos_, lit.size()) != lit) {
            return false;
        }
        pos_ += lit.size();
        return true;
    }
    std::size_t position() const noexcept { return pos_; }
    void rewind(std::size_t position) noexcept { pos_ = position; }
    /// Moves to the next ',' or the end.
    void skip_to_comma() noexcept {
        while (!done() && s_[pos_] != ',') {
            ++pos_;
        }
    }
    std::string_view token() noexcept {
        const auto start = pos_;
        while (!done() && is_tchar(s_[pos_])) {
            ++pos_;
        }
        return s_.substr(start, pos_ - start);
    }
    /// RFC 9110 §5.6.4 quoted-string, opening quote already seen. nullopt when unterminated.
    std::optional<std::string> quoted() {
        std::string out;
        while (!done()) {
            const char c = s_[pos_++];
            if (c == '"') {
                return out;
            }
            if (c == '\\') {
                if (done()) {
                    break;
                }
                out += s_[pos_++];
            } else {
                out += c;
            }
        }
        return std::nullopt;
    }
    /// Exactly `n` decimal digits.
    bool digits(int n, int& value) noexcept {
        value = 0;
        for (int i = 0; i < n; ++i) {
            const char c = peek();
            if (c < '0' || c > '9') {
                return false;
            }
            value = value * 10 + (c - '0');
            ++pos_;
        }
        return true;
    }
    /// One of `names`, returning its index.
    template <std::size_t N>
    bool one_of(const std::array<std::string_view, N>& names, int& index) noexcept {
        for (std::size_t i = 0; i < N; ++i) {
            if (eat(names[i])) {
                index = static_cast<int>(i);
                return true;
            }
        }
        return false;
    }

private:
    std::string_view s_;
    std::size_t pos_ = 0;
};

constexpr std::array<std::string_view, 12> months{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr std::array<std::string_view, 7> short_days{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> long_days{"Monday", "Tuesday",  "Wednesday", "Thursday",
                                                    "Friday", "Saturday", "Sunday"};

struct date_parts {
    int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
};

bool time_of_day(cursor& c, date_parts& d) {
    return c.digits(2, d.hour) && c.eat(':') && c.digits(2, d.minute) && c.eat(':') && c.digits(2, d.second);
}

// RFC 9110 §5.6.7: IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", and the obsolete forms a
// recipient must still accept: rfc850-date "Sunday, 06-Nov-94 08:49:37 GMT" and asctime-date
// "Sun Nov  6 08:49:37 1994".
std::optional<date_parts> parse_http_date(std::string_view text, int current_year) {
    int ignored = 0;
    date_parts d;
    {
        cursor c(text);
        if (c.one_of(short_days, ignored) && c.eat(", ") && c.digits(2, d.day) && c.eat(' ') &&
            c.one_of(months, d.month) && c.eat(' ') && c.digits(4, d.year) && c.eat(' ') &&
            time_of_day(c, d) && c.eat(" GMT") && c.done()) {
            return d;
        }
    }
    {
        cursor c(text);
        int yy = 0;
        if (c.one_of(long_days, ignored) && c.eat(", ") && c.digits(2, d.day) && c.eat('-') &&
            c.one_of(months, d.month) && c.eat('-') && c.digits(2, yy) && c.eat(' ') && time_of_day(c, d) &&
            c.eat(" GMT") && c.done()) {
            // A two-digit year more than 50 years in the future is in the past century.
            d.year = current_year / 100 * 100 + yy;
            if (d.year > current_year + 50) {
                d.year -= 100;
            }
            return d;
        }
    }
    {
        cursor c(text);
        if (c.one_of(short_days, ignored) && c.eat(' ') && c.one_of(months, d.month) && c.eat(' ')) {
            const bool day_ok = c.eat(' ') ? c.digits(1, d.day) : c.digits(2, d.day);
            if (day_ok && c.eat(' ') && time_of_day(c, d) && c.eat(' ') && c.digits(4, d.year) && c.done()) {
                return d;
            }
        }
    }
    return std::nullopt;
}

}  // namespace

bool is_b64token(std::string_view token) noexcept {
    std::size_t i = 0;
    while (i < token.size() && (is_alnum(token[i]) || std::string_view("-._~+/").find(token[i]) != npos)) {
        ++i;
    }
    if (i == 0) {
        return false;
    }
    while (i < token.size() && token[i] == '=') {
        ++i;
    }
    return i == token.size();
}

bool is_field_name(std::string_view name) noexcept {
    return !name.empty() && name.size() <= max_field_bytes && std::all_of(name.begin(), name.end(), is_tchar);
}

bool is_safe_field_value(std::string_view value) noexcept {
    return value.size() <= max_field_bytes && value.find_first_of(std::string_view("\r\n\0", 3)) == npos;
}

bool is_reserved_field_name(std::string_view name) noexcept {
    // The framing and the connection are the transport's. Upgrade would invite a 101 the client
    // cannot speak, TE transfer codings it cannot decode, Keep-Alive a connection policy not its own.
    static constexpr std::string_view reserved[] = {"host",       "authorization",     "content-length",
                                                    "connection", "transfer-encoding", "upgrade",
                                                    "te",         "keep-alive"};
    return std::any_of(std::begin(reserved), std::end(reserved),
                       [&](std::string_view r) { return iequals(name, r); });
}

bool is_acceptable_extra_header(std::string_view name, std::string_view value) noexcept {
    // The name must be a token before the reserved check: "Content-Length\t" is not
    // "content-length" to a byte comparison, but it is to a lenient parser downstream.
    return is_field_name(name) && !is_reserved_field_name(name) && is_safe_field_value(value);
}

error_code bearer_field_value(const secret_string& token, secret_string& out) {
    constexpr std::string_view scheme = "Bearer ";
    if (!is_b64token(token.reveal()) || token.size() > max_field_bytes - scheme.size()) {
        return errc::invalid_argument;
    }
    std::string value;
    value.reserve(scheme.size() + token.size());  // one block: no reallocation frees a copy unwiped
    value += scheme;
    value += token.reveal();
    out = secret_string(std::move(value));
    return {};
}

namespace {

struct auth_param {
    std::string_view name;
    std::string value;
};

// RFC 9110 §11.2 auth-param at the cursor: token BWS "=" BWS ( token / quoted-string ). Moves past
// it when there is one; otherwise leaves the cursor where it was.
std::optional<auth_param> read_auth_param(cursor& c) {
    const auto start = c.position();
    const std::string_view name = c.token();
    c.skip_ows();
    if (!name.empty() && c.eat('=')) {
        c.skip_ows();
        if (c.eat('"')) {
            if (auto quoted = c.quoted()) {
                return auth_param{name, std::move(*quoted)};
            }
        } else if (const auto value = c.token(); !value.empty()) {
            return auth_param{name, std::string(value)};
        }
    }
    c.rewind(start);
    return std::nullopt;
}

void keep_bearer_param(const auth_param& param, diagnostics& diag) {
    std::string value = diagnostic_text(param.value);
    if (iequals(param.name, "error")) {
        diag.error = std::move(value);
    } else if (iequals(param.name, "error_description")) {
        diag.error_description = std::move(value);
    } else if (iequals(param.name, "error_uri")) {
        diag.error_uri = std::move(value);
    } else if (iequals(param.name, "scope")) {
        diag.scope = std::move(value);
    }
}

}  // namespace

// RFC 9110 §11.6.1: #challenge, each `auth-scheme [ 1*SP ( token68 / #auth-param ) ]`. A challenge
// ends where a token not followed by "=" begins the next one. The first Bearer challenge is read,
// wherever it stands: `Basic realm="x", Bearer error="insufficient_scope"` is a Bearer
// insufficient_scope, and reading only the first challenge made it a 401 without an error, which
// api_client answers with a refresh (a rotation on every such request).
bool parse_www_authenticate(std::string_view header, diagnostics& diag) {
    cursor c(header);
    bool in_bearer = false;  // the parameters being read are the Bearer challenge's
    for (;;) {
        c.skip_ows();
        while (c.eat(',')) {
            c.skip_ows();
        }
        if (c.done()) {
            return in_bearer;
        }
        if (auto param = read_auth_param(c)) {
            if (in_bearer) {
                keep_bearer_param(*param, diag);
            }
            continue;
        }
        const std::string_view scheme = c.token();
        if (scheme.empty() || in_bearer) {
            return in_bearer;  // malformed input, or the challenge after the Bearer one
        }
        if (!(c.done() || c.peek() == ' ' || c.peek() == '\t' || c.peek() == ',')) {
            return false;  // malformed: nothing after it can be trusted
        }
        in_bearer = iequals(scheme, "Bearer");
        c.skip_ows();
        const auto after_scheme = c.position();
        if (!c.done() && c.peek() != ',' && !read_auth_param(c)) {
            c.skip_to_comma();  // a token68 (credentials-like data), which has no commas
        } else {
            c.rewind(after_scheme);
        }
    }
}

std::optional<seconds> parse_retry_after(std::string_view value, system_clock::time_point now) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
        value.remove_prefix(1);
    }
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
        value.remove_suffix(1);
    }
    if (value.empty()) {
        return std::nullopt;
    }
    if (value.front() >= '0' && value.front() <= '9') {
        seconds::rep n = 0;
        const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (ec == std::errc::result_out_of_range && end == value.data() + value.size()) {
            return max_retry_after;  // all digits, just too many of them
        }
        if (ec != std::errc{} || end != value.data() + value.size()) {
            return std::nullopt;
        }
        return std::min(seconds(n), max_retry_after);
    }

    namespace chr = std::chrono;
    const chr::year_month_day today{chr::floor<chr::days>(now)};
    const auto d = parse_http_date(value, static_cast<int>(today.year()));
    if (!d) {
        return std::nullopt;
    }
    const chr::year_month_day date{chr::year(d->year), chr::month(static_cast<unsigned>(d->month + 1)),
                                   chr::day(static_cast<unsigned>(d->day))};
    if (!date.ok() || d->hour > 23 || d->minute > 59 || d->second > 60) {
        return std::nullopt;
    }
    // In seconds, not in system_clock's nanoseconds: years 0001 to 9999 do not fit those (found
    // by fuzzing: "Thu, 01 Jan 0985 ..." overflowed). Rounding `now` down rounds the delay up.
    const chr::sys_seconds when =
        chr::sys_days(date) + chr::hours(d->hour) + chr::minutes(d->minute) + seconds(d->second);
    const auto delay = when - chr::floor<seconds>(now);
    return std::clamp(delay, seconds::zero(), max_retry_after);
}

}  // namespace apollo_oauth::sansio

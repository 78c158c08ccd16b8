// URL checks and building on Boost.URL: endpoints, redirect URIs, the authorize URL, callbacks.
#include "sansio/url.hpp"

#include "sansio/encoding.hpp"

#include <apollo_oauth/detail/secure_wipe.hpp>

#include <boost/url/ipv4_address.hpp>
#include <boost/url/ipv6_address.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>
#include <charconv>

namespace apollo_oauth::sansio {
namespace urls = boost::urls;

namespace {

bool ci_equal(std::string_view a, std::string_view b) noexcept {
    return ascii_iequals(a, b);
}

// The host as a client connects to it: brackets stripped from IPv6, nothing percent-encoded (an
// internationalised name must be given in its ASCII form), no IPvFuture.
std::optional<std::string> plain_host(const urls::url_view& u) {
    switch (u.host_type()) {
        case urls::host_type::name:
        case urls::host_type::ipv4:
        case urls::host_type::ipv6:
            break;
        default:
            return std::nullopt;
    }
    const std::string_view host = u.encoded_host_address();
    if (host.empty() || host.find('%') != std::string_view::npos) {
        return std::nullopt;
    }
    return std::string(host);
}

// The port as a decimal string: the scheme's default when absent or empty, nullopt when invalid.
std::optional<std::string> effective_port(const urls::url_view& u) {
    const std::string_view port = u.has_port() ? std::string_view(u.port()) : std::string_view();
    if (port.empty()) {
        switch (u.scheme_id()) {
            case urls::scheme::https:
                return "443";
            case urls::scheme::http:
                return "80";
            default:
                return std::nullopt;
        }
    }
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || end != port.data() + port.size() || value == 0 || value > 65535) {
        return std::nullopt;
    }
    return std::to_string(value);
}

// RFC 3986 §3.3: after an authority the path is empty or starts with '/'. Boost.URL 1.81 accepts
// "https://[::1]:https://x/" as authority "[::1]:" and path "https://x/" (found by fuzzing); such
// a path would become an absolute-form request target.
bool has_abempty_path(const urls::url_view& u) noexcept {
    const std::string_view path = u.encoded_path();
    return path.empty() || path.front() == '/';
}

// Everything parse_https_url checks except the fragment, which the caller decides about.
boost::system::result<https_target> to_https_target(const urls::url_view& u) {
    const error_code bad = errc::invalid_url;
    if (u.scheme_id() != urls::scheme::https || !u.has_authority() || u.has_userinfo() ||
        !has_abempty_path(u)) {
        return bad;
    }
    auto host = plain_host(u);
    auto port = effective_port(u);
    if (!host || !port) {
        return bad;
    }
    https_target t{std::move(*host), std::move(*port), std::string(u.encoded_path())};
    if (t.target.empty()) {
        t.target = "/";
    }
    if (u.has_query()) {
        t.target += '?';
        t.target += u.encoded_query();
    }
    return t;
}

// Appends `params` to the query that starts at `query_start` (npos: there is none yet) of `url`.
void append_query(std::string& url, std::size_t query_start, std::string_view params) {
    if (query_start == std::string::npos) {
        url += '?';
    } else if (url.back() != '?' && url.back() != '&') {
        url += '&';
    }
    url += params;
}

}  // namespace

std::string host_header(std::string_view host, std::string_view port) {
    std::string out;
    const bool ipv6 = host.find(':') != std::string_view::npos;
    out.reserve(host.size() + port.size() + 3);
    if (ipv6) {
        out += '[';
    }
    out += host;
    if (ipv6) {
        out += ']';
    }
    if (port != "443") {
        out += ':';
        out += port;
    }
    return out;
}

std::string https_target::host_header() const {
    return sansio::host_header(host, port);
}

boost::system::result<https_target> parse_https_url(std::string_view url) {
    auto u = urls::parse_uri(url);
    if (!u || u->has_fragment()) {
        return error_code(errc::invalid_url);
    }
    return to_https_target(*u);
}

error_code check_authorize_base(std::string_view url) {
    auto u = urls::parse_uri(url);
    if (!u) {
        return errc::invalid_url;
    }
    auto t = to_https_target(*u);
    return t ? error_code() : t.error();
}

bool is_loopback_host(std::string_view host) noexcept {
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    if (ci_equal(host, "localhost")) {
        return true;
    }
    if (auto v4 = urls::parse_ipv4_address(host)) {
        return v4->is_loopback();
    }
    if (auto v6 = urls::parse_ipv6_address(host)) {
        return v6->is_loopback();
    }
    return false;
}

error_code check_redirect_uri(std::string_view uri, bool allow_loopback_http) {
    // RFC 6749 §3.1.2: an absolute URI without a fragment.
    auto u = urls::parse_uri(uri);
    if (!u || u->has_fragment() || !u->has_authority() || u->has_userinfo()) {
        return errc::invalid_url;
    }
    const auto scheme = u->scheme_id();
    if (scheme != urls::scheme::https && scheme != urls::scheme::http) {
        return errc::insecure_redirect_uri;
    }
    auto host = plain_host(*u);
    if (!host || !effective_port(*u)) {
        return errc::invalid_url;
    }
    if (scheme == urls::scheme::http && !(allow_loopback_http && is_loopback_host(*host))) {
        return errc::insecure_redirect_uri;
    }
    return {};
}

boost::system::result<std::string> build_authorize_url(std::string_view base, std::string_view client_id,
                                                       std::string_view redirect_uri,
                                                       const std::vector<std::string>& scopes,
                                                       std::string_view state,
                                                       std::optional<std::string_view> code_challenge) {
    if (auto ec = check_authorize_base(base)) {
        return ec;
    }
    for (const auto& s : scopes) {
        if (!is_valid_scope_token(s)) {
            return error_code(errc::invalid_argument);
        }
    }

    // Built by hand rather than with urls::url::params(): Boost.URL leaves sub-delims, ':' and '/'
    // unencoded in a query and has no notion of a query inside a fragment, and Apollo's page
    // wants both every value fully encoded and the query after "#/oauth/authorize".
    std::string params = "client_id=" + percent_encode(client_id);
    params += "&redirect_uri=" + percent_encode(redirect_uri);
    params += "&response_type=code";
    if (!scopes.empty()) {
        params += "&scope=" + percent_encode(join_scopes(scopes));
    }
    params += "&state=" + percent_encode(state);
    if (code_challenge) {
        params += "&code_challenge=" + percent_encode(*code_challenge);
        params += "&code_challenge_method=S256";
    }

    // base parsed as a URI, so its first '#' starts the fragment and the first '?' before it the
    // query (RFC 6749 §3.1: an existing query is kept).
    std::string url(base);
    const auto hash = url.find('#');
    const auto query_start = hash == std::string::npos ? url.find('?') : url.find('?', hash);
    append_query(url, query_start, params);
    return url;
}

namespace {

// Calls `each(encoded_name, encoded_value)` for every parameter of an encoded query, split by hand
// rather than with encoded_params(): Boost.URL 1.81 iterates the parameters of an empty query
// followed by a fragment ("...?#x") past the end of the URL (found by fuzzing, a
// heap-buffer-overflow on a view that is not NUL-terminated). Stops when `each` returns false.
template <class Each>
bool for_each_parameter(std::string_view query, Each each) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        const auto eq = pair.find('=');
        if (!each(pair.substr(0, eq),
                  eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1))) {
            return false;
        }
    }
    return true;
}

std::string decoded_or_raw(std::string_view encoded) {
    auto decoded = percent_decode(encoded, true);
    return decoded ? std::move(*decoded) : std::string(encoded);
}

}  // namespace

callback_params::~callback_params() {
    if (code) {
        detail::wipe(*code);
    }
}

boost::system::result<callback_params> parse_callback(std::string_view url) {
    const error_code bad = errc::invalid_callback;
    auto u = urls::parse_uri(url);  // also rejects malformed escapes and raw spaces
    if (!u || !u->has_authority() || !has_abempty_path(*u)) {
        return bad;
    }
    callback_params out;
    out.base = std::string(u->scheme()) + "://" + std::string(u->encoded_authority()) +
               std::string(u->encoded_path());

    const std::string_view query = u->has_query() ? std::string_view(u->encoded_query()) : std::string_view();
    const bool parsed =
        for_each_parameter(query, [&](std::string_view encoded_key, std::string_view encoded_value) {
            auto key = percent_decode(encoded_key, true);
            if (!key) {
                return false;
            }
            std::optional<std::string>* field = nullptr;
            if (*key == "code") {
                field = &out.code;
            } else if (*key == "state") {
                field = &out.state;
            } else if (*key == "error") {
                field = &out.error;
            } else if (*key == "error_description") {
                field = &out.error_description;
            } else if (*key == "error_uri") {
                field = &out.error_uri;
            } else {
                // The application's (its redirect URI's query) or the server's business.
                out.others.emplace_back(std::move(*key), decoded_or_raw(encoded_value));
                return true;
            }
            if (field->has_value()) {
                return false;  // RFC 6749 §3.1: a parameter must not appear twice
            }
            auto value = percent_decode(encoded_value, true);
            if (!value) {
                return false;
            }
            *field = std::move(*value);
            return true;
        });
    if (!parsed) {
        return bad;
    }
    return out;
}

bool same_redirect_location(std::string_view callback_base, std::string_view redirect_uri) {
    auto a = urls::parse_uri(callback_base);
    auto b = urls::parse_uri(redirect_uri);
    if (!a || !b || !a->has_authority() || !b->has_authority() || !has_abempty_path(*a) ||
        !has_abempty_path(*b)) {
        return false;
    }
    const auto port_a = effective_port(*a);
    const auto port_b = effective_port(*b);
    auto path = [](const urls::url_view& u) {
        const std::string_view p = u.encoded_path();
        return p.empty() ? std::string_view("/") : p;
    };
    return ci_equal(a->scheme(), b->scheme()) && ci_equal(a->encoded_host(), b->encoded_host()) &&
           a->has_userinfo() == b->has_userinfo() && a->encoded_userinfo() == b->encoded_userinfo() &&
           port_a && port_b && *port_a == *port_b && path(*a) == path(*b);
}

bool keeps_redirect_query(const callback_params& callback, std::string_view redirect_uri) {
    auto r = urls::parse_uri(redirect_uri);
    if (!r) {
        return false;
    }
    if (!r->has_query()) {
        return true;
    }
    auto unmatched = callback.others;  // each callback parameter answers one of the URI's
    return for_each_parameter(r->encoded_query(), [&](std::string_view key, std::string_view value) {
        if (key.empty() && value.empty()) {
            return true;  // "a=1&&b=2": nothing to keep, and a server that rebuilds the query drops it
        }
        const auto match = std::find(unmatched.begin(), unmatched.end(),
                                     std::pair{decoded_or_raw(key), decoded_or_raw(value)});
        if (match == unmatched.end()) {
            return false;
        }
        unmatched.erase(match);
        return true;
    });
}

}  // namespace apollo_oauth::sansio

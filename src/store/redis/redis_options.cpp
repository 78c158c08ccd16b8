// redis_options: printing (never the password) and parsing redis:// and rediss:// URLs with
// Boost.URL.
#include <apollo_oauth/redis_token_store.hpp>

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <charconv>
#include <ostream>

namespace apollo_oauth {

std::ostream& operator<<(std::ostream& os, const redis_options& o) {
    os << (o.use_tls ? "rediss://" : "redis://");
    if (!o.user.empty()) {
        os << o.user << '@';
    }
    os << o.host << ':' << o.port << '/' << o.database << " prefix=" << o.key_prefix
       << " min_replicas=" << o.min_replicas << " password=" << o.password;
    return os;
}

namespace {

template <class Int>
bool parse_number(std::string_view text, Int& out) {
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return !text.empty() && ec == std::errc{} && ptr == text.data() + text.size();
}

}  // namespace

error_code parse_redis_url(std::string_view text, redis_options& out) {
    const error_code invalid = make_error_code(errc::invalid_url);
    const auto parsed = boost::urls::parse_absolute_uri(text);
    if (!parsed) {
        return invalid;
    }
    const boost::urls::url_view url = *parsed;
    redis_options result = out;
    if (url.scheme() == "redis") {
        result.use_tls = false;
    } else if (url.scheme() == "rediss") {
        result.use_tls = true;
    } else {
        return invalid;
    }
    if (!url.has_authority() || url.host().empty() || url.has_fragment()) {
        return invalid;
    }
    // The host as written, without IPv6 brackets: what a resolver takes.
    if (url.host_type() == boost::urls::host_type::ipv6) {
        result.host = url.host_address();
    } else {
        result.host = url.host();  // percent-decoded
    }
    if (url.has_port()) {
        std::uint16_t port = 0;
        if (!parse_number(url.port(), port) || port == 0) {
            return invalid;
        }
        result.port = port;
    } else {
        result.port = 6379;
    }
    if (url.has_userinfo()) {
        result.user = url.user();
        if (url.has_password()) {
            result.password = secret_string(url.password());  // the decoded temporary is wiped
        }
    }
    // The URL names a whole location: a port or database it leaves out is the default, not what
    // the options held before.
    result.database = 0;
    std::string_view path = url.encoded_path();
    if (!path.empty() && path != "/") {
        if (path.front() != '/' || !parse_number(path.substr(1), result.database)) {
            return invalid;
        }
    }
    for (const auto param : url.params()) {
        if (param.key == "key_prefix" && param.has_value) {
            if (param.value.find_first_of("{}") != std::string::npos) {
                return invalid;
            }
            result.key_prefix = param.value;
        } else if (param.key == "min_replicas" && param.has_value) {
            if (!parse_number(std::string_view(param.value), result.min_replicas)) {
                return invalid;
            }
        } else {
            return invalid;
        }
    }
    out = std::move(result);
    return {};
}

}  // namespace apollo_oauth

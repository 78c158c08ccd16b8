// Requests to and responses from Apollo's REST API (https://api.apollo.io/v1/...).
#pragma once

// Boost 1.81's core string_view (behind beast's verb) streams without including <ostream>.
#include <ostream>

#include <boost/beast/http/verb.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace apollo_oauth {

using header_list = std::vector<std::pair<std::string, std::string>>;

/// An aggregate: build it in its own statement (designated initializers welcome), not as a braced
/// temporary inside a `co_await` expression, which g++ 12 miscompiles (docs/api.md, "Call forms
/// and g++ 12"); or use the overloads taking method, target and body as arguments.
struct api_request {
    boost::beast::http::verb method = boost::beast::http::verb::get;
    /// Path and query, appended to endpoints::api_base: "/v1/tasks/bulk_create".
    std::string target{};
    std::string body{};
    /// Sent when the body is not empty, unless `headers` has a Content-Type of its own: that one is
    /// sent instead. CR, LF or NUL in it: errc::invalid_argument.
    std::string content_type = "application/json";
    /// Extra headers: names are RFC 9110 tokens, values hold no CR, LF or NUL. Host,
    /// Authorization, Content-Length, Connection, Transfer-Encoding, Upgrade, TE and Keep-Alive
    /// (any case) are the library's. Anything else: errc::invalid_argument, and nothing is sent.
    header_list headers{};
};

struct api_response {
    unsigned status = 0;
    header_list headers;
    std::string body;

    /// First header with this name (case-insensitive), if any.
    std::optional<std::string_view> header(std::string_view name) const noexcept;
};

}  // namespace apollo_oauth

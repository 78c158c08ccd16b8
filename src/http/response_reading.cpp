// Response parser limits and in-memory parsing.
#include "http/response_reading.hpp"

#include <apollo_oauth/config.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

#include <algorithm>
#include <cstdint>

namespace apollo_oauth::http {

namespace beast = boost::beast;

// The bound keeps every field a server can send, trailers included, below what Beast can hold:
// a trailer's value is shorter than the buffer, less the last chunk's line ("0\r\n") and the
// field's and the section's ends.
static_assert(read_buffer_limit(max_header_bytes) - 3 - 1 - 2 - 2 <= 65'533,
              "a field that fits in the read buffer must fit in a Beast field");

void apply_response_limits(response_parser& parser, std::size_t header_limit, std::size_t body_limit,
                           bool head_request) {
    parser.header_limit(static_cast<std::uint32_t>(header_limit));
    parser.body_limit(body_limit);
    if (head_request) {
        parser.skip(true);
    }
}

error_code parse_response(std::string_view bytes, std::size_t header_limit, std::size_t body_limit,
                          response& out) {
    response_parser parser;
    apply_response_limits(parser, header_limit, body_limit, /*head_request=*/false);
    parser.eager(true);
    const std::size_t buffer_limit = read_buffer_limit(header_limit);
    error_code ec;
    while (!parser.is_done()) {
        const std::size_t offered = std::min(bytes.size(), buffer_limit);
        const auto used = parser.put(boost::asio::buffer(bytes.data(), offered), ec);
        if (ec == beast::http::error::need_more) {
            ec = {};
        } else if (ec) {
            return ec;
        }
        if (used == 0 && offered == buffer_limit) {
            return beast::http::error::buffer_overflow;  // the transport's buffer is full
        }
        if (used == 0) {
            // Everything there is has been offered: the stream ends here. With no byte at all
            // that is end_of_stream, as beast::http::read reports it (put_eof asserts on it).
            if (!parser.got_some()) {
                return beast::http::error::end_of_stream;
            }
            parser.put_eof(ec);
            if (ec) {
                return ec;
            }
            break;
        }
        bytes.remove_prefix(used);
    }
    out = parser.release();
    return {};
}

sansio::http_answer answer_of(const response& res) {
    sansio::http_answer answer{.status = res.result_int(), .body = res.body()};
    if (auto it = res.find(beast::http::field::retry_after); it != res.end()) {
        answer.retry_after = it->value();
    }
    answer.www_authenticate = bearer_challenge_field(res);
    return answer;
}

std::optional<std::string_view> bearer_challenge_field(const response& res) {
    auto [field, end] = res.equal_range(beast::http::field::www_authenticate);
    for (; field != end; ++field) {
        if (diagnostics unused; sansio::parse_www_authenticate(field->value(), unused)) {
            return field->value();
        }
    }
    return std::nullopt;
}

}  // namespace apollo_oauth::http

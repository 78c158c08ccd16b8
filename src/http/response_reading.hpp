// How the transport reads a response: the parser's limits, and the same parse over bytes held in
// memory (for the fuzz targets and tests, which must see exactly what the transport would).
#pragma once

#include "http/transport.hpp"
#include "sansio/response_classification.hpp"

#include <boost/beast/http/parser.hpp>

#include <cstddef>
#include <optional>
#include <string_view>

namespace apollo_oauth::http {

using response_parser = boost::beast::http::response_parser<boost::beast::http::string_body>;

/// The most bytes a connection's read buffer holds unconsumed for a response whose header may
/// take `header_limit`: the header, and 4 KiB more. Why a bound at all: Beast's parser limits the
/// header and the body's data, but it needs a chunk's size line (chunk extensions included) and a
/// chunked body's trailer fields whole in the buffer, and bounds neither, so a server could make
/// the buffer grow without end; and a trailer field past 65,533 bytes makes Beast throw from
/// inside the read, where no handler catches it. Past this bound the read fails with
/// http::error::buffer_overflow instead. A chunk's data and a body are consumed as they come, so
/// they never need the room. config.hpp's max_header_bytes keeps the bound under 64 KiB.
constexpr std::size_t read_buffer_limit(std::size_t header_limit) noexcept {
    return header_limit + 4 * 1024;
}

/// Sets the header and body limits (and, for a HEAD request, that no body follows).
void apply_response_limits(response_parser& parser, std::size_t header_limit, std::size_t body_limit,
                           bool head_request);

/// Parses one complete response held in `bytes` with those limits, offering the parser at most
/// read_buffer_limit bytes it has not consumed, as a connection's buffer does; the end of `bytes`
/// is the end of the stream. Errors: Beast's parse errors, http::error::partial_message when
/// incomplete, http::error::buffer_overflow where the transport's read would overflow.
error_code parse_response(std::string_view bytes, std::size_t header_limit, std::size_t body_limit,
                          response& out);

/// The parts of `res` the client's classification reads (views into `res`).
sansio::http_answer answer_of(const response& res);

/// The first WWW-Authenticate field of `res` holding a Bearer challenge (a view into `res`), or
/// nothing. A server may send several fields (RFC 9110 §11.6.1), and the Bearer one need not be
/// the first.
std::optional<std::string_view> bearer_challenge_field(const response& res);

}  // namespace apollo_oauth::http

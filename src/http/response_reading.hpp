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

/// Sets the header and body limits (and, for a HEAD request, that no body follows).
void apply_response_limits(response_parser& parser, std::size_t header_limit, std::size_t body_limit,
                           bool head_request);

/// Parses one complete response held in `bytes` with those limits; the end of `bytes` is the end
/// of the stream. Errors: Beast's parse errors, http::error::partial_message when incomplete.
error_code parse_response(std::string_view bytes, std::size_t header_limit, std::size_t body_limit,
                          response& out);

/// The parts of `res` the client's classification reads (views into `res`).
sansio::http_answer answer_of(const response& res);

/// The first WWW-Authenticate field of `res` holding a Bearer challenge (a view into `res`), or
/// nothing. A server may send several fields (RFC 9110 §11.6.1), and the Bearer one need not be
/// the first.
std::optional<std::string_view> bearer_challenge_field(const response& res);

}  // namespace apollo_oauth::http

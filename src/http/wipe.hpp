// Zeroing the transient copies of secrets the transport makes: request bodies (client secret,
// code, refresh token), the Authorization header (access token), response bodies (new tokens) and
// the connection's read buffer. secret_string wipes the originals; these are the copies that a
// request or response holds until it is freed, or that a read buffer frees as it grows.
#pragma once

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <apollo_oauth/detail/secure_wipe.hpp>
#include <apollo_oauth/detail/wiping_allocator.hpp>

#include <string>

namespace apollo_oauth::http {

using apollo_oauth::detail::wipe;

/// Zeroes the body and the Authorization value of a request that has been sent.
inline void wipe_secrets(boost::beast::http::request<boost::beast::http::string_body>& req) noexcept {
    wipe(req.body());
    if (auto it = req.find(boost::beast::http::field::authorization); it != req.end()) {
        // The value lives in the field's own allocation, which erase() would free unwiped.
        const auto value = it->value();
        detail::secure_wipe(const_cast<char*>(value.data()), value.size());
    }
}

/// std::allocator, except that a block is zeroed before it is given back (defined with the public
/// headers, detail/wiping_allocator.hpp, since the command-line tool uses it too).
using detail::wiping_allocator;

/// A connection's read buffer: what it frees (on growth, or with the connection) is zeroed.
using read_buffer = boost::beast::basic_flat_buffer<wiping_allocator<char>>;

/// Zeroes the free space of a read buffer (the bytes of responses already consumed), which stays
/// allocated while the connection is idle. Bytes not consumed yet (a pipelined next response)
/// are kept.
inline void wipe_consumed(read_buffer& buffer) noexcept {
    if (buffer.size() == 0 && buffer.capacity() != 0) {
        const auto spare = buffer.prepare(buffer.capacity());
        detail::secure_wipe(spare.data(), spare.size());
    }
}

}  // namespace apollo_oauth::http

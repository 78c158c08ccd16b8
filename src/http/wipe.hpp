// Zeroing the transient copies of secrets the transport makes: request bodies (client secret,
// code, refresh token), the Authorization header (access token), response bodies (new tokens) and
// the connection's read buffer. secret_string wipes the originals; these are the copies that a
// request or response holds until it is freed.
#pragma once

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <openssl/crypto.h>

#include <string>

namespace apollo_oauth::http {

/// Zeroes every byte `s` owns (capacity, not only size) and empties it.
inline void wipe(std::string& s) noexcept {
    if (s.capacity() != 0) {
        OPENSSL_cleanse(s.data(), s.capacity());
    }
    s.clear();
}

/// Zeroes the body and the Authorization value of a request that has been sent.
inline void wipe_secrets(boost::beast::http::request<boost::beast::http::string_body>& req) noexcept {
    wipe(req.body());
    if (auto it = req.find(boost::beast::http::field::authorization); it != req.end()) {
        // The value lives in the field's own allocation, which erase() would free unwiped.
        const auto value = it->value();
        OPENSSL_cleanse(const_cast<char*>(value.data()), value.size());
    }
}

/// Zeroes the free space of a read buffer (the bytes of responses already consumed). Bytes not
/// consumed yet (a pipelined next response) are kept.
inline void wipe_consumed(boost::beast::flat_buffer& buffer) noexcept {
    if (buffer.size() == 0 && buffer.capacity() != 0) {
        const auto spare = buffer.prepare(buffer.capacity());
        OPENSSL_cleanse(spare.data(), spare.size());
    }
}

}  // namespace apollo_oauth::http

// Request -> what to send back: the emulator's endpoints and the faults that replace or disturb
// their answers. No sockets here; http_server carries the plan out.
#pragma once

#include "emulator/consent_page.hpp"
#include "emulator/state.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>

namespace apollo_oauth::emulator::detail {

using request = boost::beast::http::request<boost::beast::http::string_body>;
using response = boost::beast::http::response<boost::beast::http::string_body>;

struct reply {
    enum class action {
        send,              ///< write `message`
        reset,             ///< drop the connection with an RST instead
        stall_headers,     ///< write nothing, keep the connection open
        stall_body,        ///< write the header and half of the body, then nothing
        stall_mid_header,  ///< write the first half of the header, then nothing
        small_chunks,      ///< write `message` chunked, its body in 16-byte chunks
        /// write the header (chunked), then 1 KiB chunks, one per `interval`, until the peer goes
        endless_chunks,
        /// write the header (a Content-Length far beyond the body), then a byte per `interval`
        /// (none after the first when `interval` is 0) until the peer goes
        trickle_body,
        /// write the header (chunked), then `message`'s body as it stands (chunks already
        /// framed, hostile ones included), then close the connection
        framed_chunks,
        /// write `message` and then `trailing`, the bytes of an unsolicited second response:
        /// in one write (one TLS record; `message` is padded to a multiple of 512 bytes
        /// already), or with `trailing_in_own_record` in two writes sent as one TCP segment
        trailing_response,
    };
    action what = action::send;
    std::chrono::milliseconds delay{0};     ///< wait this long before acting
    std::chrono::milliseconds interval{0};  ///< endless_chunks and trickle_body
    /// Written before anything else, even before `delay`: the interim (1xx) responses' bytes.
    std::string interim;
    bool reset_after_interim = false;  ///< then an RST instead of `what`
    std::string trailing;              ///< trailing_response's second response
    bool trailing_in_own_record = false;
    response message;
    /// Keeps counters::refreshes_in_flight up until the answer is sent (or given up on).
    refresh_in_flight in_flight;
};

/// Answers one request. Faults that disturb delivery (latency, reset, stall_*) leave the request
/// processed — tokens rotate even if the answer never arrives, like a response lost on the way —
/// while faults that replace the answer (every other request fault) mean the endpoint never ran.
/// Connection faults never get here (the listener handles them).
/// `consent` holds the consent page's pending decisions (server_config::consent_page).
reply handle_request(const request& req, oauth_state& state, consent_book& consent);

/// The answer to a request that could not be parsed (e.g. a body over the limit); closes.
response bad_request(unsigned status, unsigned version);

}  // namespace apollo_oauth::emulator::detail

// The authorization code that a browser's redirect brings to `apollo-oauth login`'s loopback HTTPS
// listener (tools/apollo_oauth_cli/login_listener.cpp) is wiped from every block freed on the
// listener's thread, by operator delete (the listener's read buffer, the parsed request's target
// and fields, the URL given to the judge) or by OpenSSL (CRYPTO_free: its TLS record buffers),
// while it serves the browser, while the wait ends and while the listener and its io_context are
// destroyed, on each path a request with the code can take (the scenario, argv[1]):
// - `served`: GET /callback?code=...&state=... is judged to settle the login: 200;
// - `refused`: the judge refuses it, as login does a redirect with another state (an old tab, a
//   forged request): 400, the connection kept alive, then closed by the browser; login cancelled;
// - `not_found`: the code comes to another path: 404, kept alive, closed by the browser; cancelled;
// - `malformed`: the request line is read (its target stored in the request), then a header line
//   without a colon: the read fails, the connection is dropped unanswered; cancelled;
// - `cut_short`: the request stops in its header and the browser shuts the connection down: the
//   read fails with the request's bytes in the read buffer; cancelled;
// - `timeout`: the request stops in its header and the browser keeps the connection open: the
//   wait times out, and the connection's coroutine (read buffer and all) is destroyed with the
//   io_context, as login's are.
//
// The listener waits as login waits (run_to_completion: the io_context is stopped as soon as the
// wait ends, whatever connection is still open), on the main thread with every free recorded
// (copied aside as it is freed) and afterwards searched for the code; a client on a thread of its
// own (whose frees are not recorded: `recording` is per thread) plays the browser. Before the
// listener wiped its own buffers, 4 blocks freed by operator delete held the code after `served`:
// any block holding it fails the test. Deliberate unwiped copies, freed both ways, must be found:
// the recording works.
#include "login_listener.hpp"
#include "run.hpp"
#include "self_signed.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <future>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "openssl_freed_blocks.hpp"

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

const std::string code = "c0de-listener-heap-scan-6f1e2d3c4b5a69788796a5b4c3d2e1f0";

struct scenario {
    std::string_view name;
    std::string request;      ///< what the browser sends, the code in it
    bool read_answer;         ///< the browser reads the answer's status line
    bool hold_open;           ///< the browser keeps the connection until the listener is gone
    bool refuse;              ///< the judge refuses the redirect (another state)
    std::string_view answer;  ///< what the browser's status line must start with ("" when not read)
    bool judged;              ///< the judge must see the code
    bool settles;             ///< the wait must end with a settled login
    std::chrono::seconds wait;
};

const std::string callback_request = "GET /callback?code=" + code + "&state=some-state HTTP/1.1\r\n";

const scenario scenarios[] = {
    {"served", callback_request + "Host: 127.0.0.1\r\nConnection: close\r\n\r\n", true, false, false,
     "HTTP/1.1 200 OK", true, true, std::chrono::seconds(30)},
    {"refused", callback_request + "Host: 127.0.0.1\r\n\r\n", true, false, true, "HTTP/1.1 400 Bad Request",
     true, false, std::chrono::seconds(30)},
    {"not_found", "GET /elsewhere?code=" + code + "&state=some-state HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
     true, false, false, "HTTP/1.1 404 Not Found", false, false, std::chrono::seconds(30)},
    {"malformed", callback_request + "Host 127.0.0.1\r\n\r\n", true, false, false,
     "reading the answer: ", false, false, std::chrono::seconds(30)},
    {"cut_short", callback_request + "Host: 127.0.", false, false, false, "", false, false,
     std::chrono::seconds(30)},
    {"timeout", callback_request + "Host: 127.0.", false, true, false, "", false, false,
     std::chrono::seconds(2)},
};

// The browser: one HTTPS request, the answer's status line read (when `s.read_answer`; the error
// when there is none), the connection kept until `released` (when `s.hold_open`), then a TLS
// shutdown, which waits for the listener to end its side. Returns the status line, "" when not
// read, or what went wrong.
std::string browse(tcp::endpoint listener, const scenario& s, std::shared_future<void> released) {
    try {
        asio::io_context ioc;
        ssl::context tls(ssl::context::tls_client);
        tls.set_verify_mode(ssl::verify_none);  // the listener's self-signed certificate
        ssl::stream<tcp::socket> stream(ioc, tls);
        stream.next_layer().connect(listener);
        stream.handshake(ssl::stream_base::client);
        asio::write(stream, asio::buffer(s.request));
        std::string answer;
        boost::system::error_code ec;
        if (s.read_answer) {
            char chunk[512];
            while (answer.find("\r\n") == std::string::npos) {
                const std::size_t n = stream.read_some(asio::buffer(chunk), ec);
                if (ec) {
                    return "reading the answer: " + ec.message();
                }
                answer.append(chunk, n);
            }
        }
        if (s.hold_open) {
            released.wait();
            stream.next_layer().close(ec);  // the listener is gone: nobody to shut TLS down with
            return {};
        }
        stream.shutdown(ec);  // the listener's close_notify, or its end of the connection
        return answer.substr(0, answer.find("\r\n"));
    } catch (const std::exception& e) {
        return e.what();
    }
}

// Records an unwiped copy of the code freed by operator delete and one freed by OpenSSL: both
// must be found.
int found_in_unwiped_copies() {
    const int before = heap_scan::recorded_blocks_holding(code);
    heap_scan::recording = true;
    {
        void* copy = ::operator new(code.size());  // called: a new-expression's allocation may be elided
        std::memcpy(copy, code.data(), code.size());
        ::operator delete(copy);
        void* openssl_copy = OPENSSL_malloc(code.size());
        std::memcpy(openssl_copy, code.data(), code.size());
        OPENSSL_free(openssl_copy);
    }
    heap_scan::recording = false;
    return heap_scan::recorded_blocks_holding(code) - before;
}

}  // namespace

int main(int argc, char** argv) {
    if (!heap_scan::hook_openssl_frees()) {
        std::puts("login_listener_heap_scan: OpenSSL allocated before its frees could be hooked");
        return 2;
    }
    const std::string_view name = argc > 1 ? argv[1] : "served";
    const scenario* chosen = nullptr;
    for (const auto& s : scenarios) {
        chosen = s.name == name ? &s : chosen;
    }
    if (chosen == nullptr) {
        std::printf("login_listener_heap_scan: no scenario named %.*s\n", static_cast<int>(name.size()),
                    name.data());
        return 2;
    }
    const scenario& s = *chosen;

    const auto certificate = apollo_oauth::cli::make_self_signed_certificate();
    int judged = 0;
    bool judged_the_code = false;
    std::optional<bool> settled;
    std::string status_line;
    std::promise<void> release;
    const std::shared_future<void> released = release.get_future().share();
    std::thread browser;
    {
        asio::io_context ioc;
        std::optional<apollo_oauth::cli::login_listener> listener;
        listener.emplace(ioc, tcp::endpoint(asio::ip::address_v4::loopback(), 0), certificate.cert_pem,
                         certificate.key_pem, "https://127.0.0.1", "/callback",
                         [&](std::string_view url) -> apollo_oauth::cli::callback_verdict {
                             // (No copy of the code made here: its blocks would be found.)
                             ++judged;
                             judged_the_code = url.find(code) != std::string_view::npos;
                             if (s.refuse) {
                                 return {400, "This redirect does not belong to the pending login.\n", false};
                             }
                             return {200, "received\n", true};
                         });
        heap_scan::recording = true;
        browser = std::thread([&, at = listener->local_endpoint()] {
            status_line = browse(at, s, released);
            if (!s.settles && !s.hold_open) {
                // The browser is done, and the listener with it (each ending is read to its end
                // above): cancel the wait, as a Ctrl-C does.
                asio::post(ioc, [&] { listener->stop(); });
            }
        });
        settled = apollo_oauth::cli::run_to_completion<bool>(
            ioc, [&](asio::any_io_executor) { return listener->async_wait_for_callback(s.wait); });
        listener.reset();  // its TLS context with it
        // The io_context frees what it still holds (a connection still open, its coroutine and
        // buffers) as it is destroyed, still recorded.
    }
    heap_scan::recording = false;
    release.set_value();
    browser.join();

    const int by_openssl = heap_scan::recorded_blocks_holding(code, "CRYPTO_free");
    const int by_delete = heap_scan::recorded_blocks_holding(code, "operator delete");
    const std::size_t recorded = heap_scan::recorded_count;
    const bool overflow = heap_scan::recorded_overflow;
    const int found_in_controls = found_in_unwiped_copies();

    const bool answered_as_expected =
        s.answer.empty() ? status_line.empty() : status_line.starts_with(s.answer);
    std::printf(
        "login_listener_heap_scan %.*s: the browser got \"%s\" (expected: %s); the judge saw the code: %s; "
        "the wait settled: %s; blocks recorded: %zu%s; unwiped blocks holding the code freed by "
        "CRYPTO_free: %d, by operator delete: %d; found in the control copies: %d of 2\n",
        static_cast<int>(s.name.size()), s.name.data(), status_line.c_str(),
        s.answer.empty() ? "nothing read" : std::string(s.answer).c_str(), judged_the_code ? "yes" : "no",
        settled ? (*settled ? "yes" : "no (timed out or cancelled)") : "no (still waiting)", recorded,
        overflow ? " (table full: some missed)" : "", by_openssl, by_delete, found_in_controls);
    heap_scan::forget_recorded();
    return answered_as_expected && judged == (s.judged ? 1 : 0) && judged_the_code == s.judged &&
                   settled == s.settles && !overflow && by_openssl == 0 && by_delete == 0 &&
                   found_in_controls == 2
               ? 0
               : 1;
}

// The authorization code that a browser's redirect brings to `apollo-oauth login`'s loopback HTTPS
// listener (tools/apollo_oauth_cli/login_listener.cpp) is wiped from every block OpenSSL frees
// (CRYPTO_free: its TLS record buffers) on the listener's thread, while it serves the redirect and
// while it is destroyed. OpenSSL decrypts a record in its read buffer and, unless the listener's
// context has SSL_OP_CLEANSE_PLAINTEXT, frees that buffer with the request line in it, code
// included (as soon as it is empty: asio sets SSL_MODE_RELEASE_BUFFERS).
//
// A client on a thread of its own (whose frees are not recorded: `recording` is per thread) sends
// GET /callback?code=...&state=... over TLS, as a browser does; the listener answers 200 and ends
// its wait. Every block freed on the listener's thread is recorded (copied aside as it is freed)
// and afterwards searched for the code. Only OpenSSL's blocks are checked here: what the
// listener's own buffers (beast's read buffer, the request's fields, the URL given to the judge)
// free is counted and printed, not checked (they are not wiped). A deliberate unwiped copy freed
// by OPENSSL_free must be found: the recording works.
#include "login_listener.hpp"
#include "self_signed.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <thread>

#include "openssl_freed_blocks.hpp"

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

const std::string code = "c0de-listener-heap-scan-6f1e2d3c4b5a69788796a5b4c3d2e1f0";

// The browser: one HTTPS request for the redirect URI, the answer's status line read, a clean
// TLS shutdown. Returns the status line, or what went wrong.
std::string deliver_redirect(tcp::endpoint listener) {
    try {
        asio::io_context ioc;
        ssl::context tls(ssl::context::tls_client);
        tls.set_verify_mode(ssl::verify_none);  // the listener's self-signed certificate
        ssl::stream<tcp::socket> stream(ioc, tls);
        stream.next_layer().connect(listener);
        stream.handshake(ssl::stream_base::client);
        const std::string request =
            "GET /callback?code=" + code +
            "&state=some-state HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        asio::write(stream, asio::buffer(request));
        std::string answer;
        char chunk[512];
        boost::system::error_code ec;
        while (answer.find("\r\n") == std::string::npos) {
            const std::size_t n = stream.read_some(asio::buffer(chunk), ec);
            if (ec) {
                return "reading the answer: " + ec.message();
            }
            answer.append(chunk, n);
        }
        stream.shutdown(ec);  // the listener's close_notify, or its end of the connection
        return answer.substr(0, answer.find("\r\n"));
    } catch (const std::exception& e) {
        return e.what();
    }
}

}  // namespace

int main() {
    if (!heap_scan::hook_openssl_frees()) {
        std::puts("login_listener_heap_scan: OpenSSL allocated before its frees could be hooked");
        return 2;
    }
    const auto certificate = apollo_oauth::cli::make_self_signed_certificate();
    bool judged_the_code = false;
    std::optional<bool> settled;
    std::string status_line;
    {
        asio::io_context ioc;
        std::optional<apollo_oauth::cli::login_listener> listener;
        listener.emplace(ioc, tcp::endpoint(asio::ip::address_v4::loopback(), 0), certificate.cert_pem,
                         certificate.key_pem, "https://127.0.0.1", "/callback",
                         [&](const std::string& url) -> apollo_oauth::cli::callback_verdict {
                             // (No copy of the code made here: its blocks would be counted.)
                             judged_the_code = url.find(code) != std::string::npos;
                             return {200, "received\n", true};
                         });
        heap_scan::recording = true;
        // A guard, not a wait: the redirect settles it at once.
        asio::co_spawn(ioc, listener->async_wait_for_callback(std::chrono::seconds(30)),
                       [&](std::exception_ptr e, bool result) {
                           if (e) {
                               std::rethrow_exception(e);
                           }
                           settled = result;
                       });
        std::thread browser([&, at = listener->local_endpoint()] { status_line = deliver_redirect(at); });
        ioc.run();  // until the listener has answered and shut its connection down
        browser.join();
        listener.reset();  // its TLS context with it
        // What the io_context still holds is freed as it goes, still recorded.
    }
    heap_scan::recording = false;

    const int by_openssl = heap_scan::recorded_blocks_holding(code, "CRYPTO_free");
    const int by_delete = heap_scan::recorded_blocks_holding(code, "operator delete");
    const std::size_t recorded = heap_scan::recorded_count;

    // The control: an unwiped copy of the code freed by OPENSSL_free while recording is found.
    heap_scan::recording = true;
    {
        void* copy = OPENSSL_malloc(code.size());
        std::memcpy(copy, code.data(), code.size());
        OPENSSL_free(copy);
    }
    heap_scan::recording = false;
    const int found_in_control = heap_scan::recorded_blocks_holding(code, "CRYPTO_free") - by_openssl;

    std::printf(
        "login_listener_heap_scan: the browser got \"%s\"; the judge saw the code: %s; the wait settled: "
        "%s; blocks recorded: %zu%s; unwiped blocks holding the code freed by CRYPTO_free: %d (by "
        "operator delete, not checked here: %d); found in the control copy: %d\n",
        status_line.c_str(), judged_the_code ? "yes" : "no",
        settled ? (*settled ? "yes" : "no (timed out)") : "no (still waiting)", recorded,
        heap_scan::recorded_overflow ? " (table full: some missed)" : "", by_openssl, by_delete,
        found_in_control);
    heap_scan::forget_recorded();
    return status_line == "HTTP/1.1 200 OK" && judged_the_code && settled == true &&
                   !heap_scan::recorded_overflow && by_openssl == 0 && found_in_control == 1
               ? 0
               : 1;
}

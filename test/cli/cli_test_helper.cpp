// Small tools for test/cli/cli_tests.sh, so that the test needs neither curl, python nor jq:
//   cli_test_helper get (--cacert FILE | --pin-sha256 FINGERPRINT) URL
//       plays the browser: one HTTPS GET with verification on (a CA file, or the certificate's
//       SHA-256 fingerprint as login prints it); prints the status, then the Location (or "-")
//   cli_test_helper get-with-huge-trailer (--cacert FILE | --pin-sha256 FINGERPRINT) URL
//       as get, but the GET carries a chunked body whose trailer field is 70,000 bytes (past what
//       Beast can hold in a field); prints the status, or "none" when no answer could be read
//   cli_test_helper json [FIELD]      reads one JSON document on stdin; exit 1 when it is not JSON;
//       prints FIELD ("a.b" descends into objects; strings raw, the rest as JSON)
//   cli_test_helper free-port         prints a TCP port of 127.0.0.1 that was free a moment ago
//   cli_test_helper make-cert CERT KEY  writes a self-signed certificate for 127.0.0.1 and its key
//   cli_test_helper refuse-scope CERT KEY SCOPE [STATUS]
//       a resource server as RFC 6750 §3.1 describes one: prints its port, then answers every
//       request with STATUS (default 403; some servers send 401), WWW-Authenticate: Bearer
//       error="insufficient_scope", scope="SCOPE" and the error repeated in a JSON body (as
//       Doorkeeper does); runs until killed
//   cli_test_helper hold-proxy CERT KEY UPSTREAM_CA UPSTREAM_ORIGIN
//       a token endpoint that answers late, on the test's word: prints its port; for each
//       connection reads one request, forwards it at once to UPSTREAM_ORIGIN (https, verified
//       with UPSTREAM_CA), reads the answer, prints "held METHOD TARGET", then waits for a line on
//       stdin before it passes the answer on (Connection: close); exits at the end of stdin
#include "self_signed.hpp"

#include <ostream>  // before beast's verb.hpp

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include <openssl/x509.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

std::string fingerprint(X509* cert) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    X509_digest(cert, EVP_sha256(), digest, &size);
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned int i = 0; i < size; ++i) {
        out += (i ? ":" : "");
        out += hex[digest[i] >> 4];
        out += hex[digest[i] & 15];
    }
    return out;
}

using tls_stream = ssl::stream<tcp::socket>;

// `request` over a new connection `stream` (its verification set up) to host:port: SNI, TCP, TLS
// handshake, Host and Connection: close set, the answer read. Throws.
template <class Body>
http::response<http::string_body> round_trip(asio::io_context& ioc, tls_stream& stream,
                                             const std::string& host, const std::string& port,
                                             http::request<Body>& request) {
    SSL_set_tlsext_host_name(stream.native_handle(), host.c_str());
    tcp::resolver resolver(ioc);
    asio::connect(stream.next_layer(), resolver.resolve(host, port));
    stream.handshake(ssl::stream_base::client);
    request.set(http::field::host, host + ":" + port);
    request.set(http::field::connection, "close");
    http::write(stream, request);
    boost::beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(stream, buffer, response);
    return response;
}

// The GET with a 70,000-byte trailer, written as raw bytes (Beast's serializer writes no trailer):
// the status of the answer, or 0 when none could be read (a server that closes with unread bytes
// sends a reset, which may overtake its answer).
unsigned send_huge_trailer(asio::io_context& ioc, tls_stream& stream, const std::string& host,
                           const std::string& port, const std::string& target) {
    SSL_set_tlsext_host_name(stream.native_handle(), host.c_str());
    tcp::resolver resolver(ioc);
    asio::connect(stream.next_layer(), resolver.resolve(host, port));
    stream.handshake(ssl::stream_base::client);
    const std::string bytes = "GET " + target + " HTTP/1.1\r\nHost: " + host + ":" + port +
                              "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\nX-Trailer: " +
                              std::string(70'000, 't') + "\r\n\r\n";
    boost::system::error_code ec;
    asio::write(stream, asio::buffer(bytes), ec);
    boost::beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(stream, buffer, response, ec);
    return ec ? 0 : response.result_int();
}

int get(const std::string& mode, const std::string& anchor, const std::string& url_text,
        bool huge_trailer = false) {
    auto url = boost::urls::parse_uri(url_text);
    if (!url || url->scheme() != "https") {
        std::cerr << "not an https URL\n";
        return 2;
    }
    const std::string host = url->host_address();
    const std::string port = url->has_port() ? std::string(url->port()) : "443";
    std::string target = std::string(url->encoded_path());
    if (target.empty()) {
        target = "/";
    }
    if (url->has_query()) {
        target += "?" + std::string(url->encoded_query());
    }

    asio::io_context ioc;
    ssl::context ctx(ssl::context::tls_client);
    ctx.set_verify_mode(ssl::verify_peer);
    if (mode == "--cacert") {
        ctx.load_verify_file(anchor);
    }
    tls_stream stream(ioc, ctx);
    if (mode == "--cacert") {
        stream.set_verify_callback(ssl::host_name_verification(host));
    } else {
        // Pinned: the leaf must be exactly the certificate whose fingerprint the tool printed.
        stream.set_verify_callback([anchor](bool, ssl::verify_context& vc) {
            X509* cert = X509_STORE_CTX_get_current_cert(vc.native_handle());
            return X509_STORE_CTX_get_error_depth(vc.native_handle()) != 0 || fingerprint(cert) == anchor;
        });
    }
    if (huge_trailer) {
        const unsigned status = send_huge_trailer(ioc, stream, host, port, target);
        std::cout << (status == 0 ? std::string("none") : std::to_string(status)) << "\n";
        return 0;
    }
    http::request<http::empty_body> request{http::verb::get, target, 11};
    const auto response = round_trip(ioc, stream, host, port, request);
    std::cout << response.result_int() << "\n";
    const auto location = response.find(http::field::location);
    std::cout << (location == response.end() ? std::string("-") : std::string(location->value())) << "\n";
    return 0;
}

int json_field(const std::string& field) {
    const std::string text{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
    boost::system::error_code ec;
    boost::json::value value = boost::json::parse(text, ec);
    if (ec) {
        std::cerr << "not JSON: " << ec.message() << "\n";
        return 1;
    }
    if (field.empty()) {
        return 0;
    }
    const boost::json::value* at = &value;
    std::istringstream path(field);
    for (std::string part; std::getline(path, part, '.');) {
        const auto* object = at->if_object();
        if (!object || !object->contains(part)) {
            std::cerr << "no field " << field << "\n";
            return 1;
        }
        at = &object->at(part);
    }
    if (const auto* s = at->if_string()) {
        std::cout << std::string(*s) << "\n";
    } else {
        std::cout << boost::json::serialize(*at) << "\n";
    }
    return 0;
}

int free_port() {
    asio::io_context ioc;
    tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    std::cout << acceptor.local_endpoint().port() << "\n";
    return 0;
}

int make_cert(const std::string& cert_path, const std::string& key_path) {
    const auto cert = apollo_oauth::cli::make_self_signed_certificate();
    std::ofstream(cert_path) << cert.cert_pem;
    std::ofstream(key_path) << cert.key_pem;
    return 0;
}

// A TLS server (CERT, KEY) on a free port of 127.0.0.1, which it prints first: reads one request
// per connection and hands it to `answer(stream, request)`, until that returns false. A client that
// gives up or does not trust it is skipped.
template <class Answer>
int serve_requests(const std::string& cert_path, const std::string& key_path, Answer answer) {
    asio::io_context ioc;
    ssl::context ctx(ssl::context::tls_server);
    ctx.use_certificate_chain_file(cert_path);
    ctx.use_private_key_file(key_path, ssl::context::pem);
    tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    std::cout << acceptor.local_endpoint().port() << std::endl;
    for (;;) {
        tls_stream stream(acceptor.accept(), ctx);
        boost::system::error_code ec;
        stream.handshake(ssl::stream_base::server, ec);
        boost::beast::flat_buffer buffer;
        http::request<http::string_body> request;
        if (!ec) {
            http::read(stream, buffer, request, ec);
        }
        if (ec) {
            continue;
        }
        if (!answer(stream, request)) {
            return 0;
        }
    }
}

int refuse_scope(const std::string& cert_path, const std::string& key_path, const std::string& scope,
                 unsigned status) {
    return serve_requests(cert_path, key_path, [&](tls_stream& stream, const http::request<http::string_body>&) {
        http::response<http::string_body> response{static_cast<http::status>(status), 11};
        response.set(http::field::www_authenticate,
                     "Bearer realm=\"example\", error=\"insufficient_scope\", scope=\"" + scope + "\"");
        response.set(http::field::content_type, "application/json");
        response.set(http::field::connection, "close");
        response.body() =
            R"({"error":"insufficient_scope","error_description":"The request requires higher privileges."})";
        response.prepare_payload();
        boost::system::error_code ec;
        http::write(stream, response, ec);
        stream.shutdown(ec);
        return true;
    });
}

// The answer to a refresh is what a lost answer would lose: the server rotated on receipt, so while
// it is held, the old pair is revoked and the new one exists only here.
int hold_proxy(const std::string& cert_path, const std::string& key_path, const std::string& upstream_ca,
               const std::string& upstream_origin) {
    const auto origin = boost::urls::parse_uri(upstream_origin);
    if (!origin) {
        std::cerr << "not a URL\n";
        return 2;
    }
    const std::string host = origin->host_address();
    const std::string port = origin->has_port() ? std::string(origin->port()) : "443";
    asio::io_context ioc;
    ssl::context client_ctx(ssl::context::tls_client);
    client_ctx.set_verify_mode(ssl::verify_peer);
    client_ctx.load_verify_file(upstream_ca);
    return serve_requests(
        cert_path, key_path, [&](tls_stream& client, http::request<http::string_body>& request) {
            tls_stream upstream(ioc, client_ctx);
            upstream.set_verify_callback(ssl::host_name_verification(host));
            auto response = round_trip(ioc, upstream, host, port, request);
            boost::system::error_code ec;
            upstream.shutdown(ec);
            std::cout << "held " << request.method_string() << " " << request.target() << std::endl;
            if (std::string line; !std::getline(std::cin, line)) {
                return false;
            }
            response.set(http::field::connection, "close");
            response.prepare_payload();
            http::write(client, response, ec);  // the client may be gone (a second signal)
            client.shutdown(ec);
            return true;
        });
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    try {
        if (args.size() == 4 && args[0] == "get" && (args[1] == "--cacert" || args[1] == "--pin-sha256")) {
            return get(args[1], args[2], args[3]);
        }
        if (args.size() == 4 && args[0] == "get-with-huge-trailer" &&
            (args[1] == "--cacert" || args[1] == "--pin-sha256")) {
            return get(args[1], args[2], args[3], /*huge_trailer=*/true);
        }
        if (!args.empty() && args.size() <= 2 && args[0] == "json") {
            return json_field(args.size() == 2 ? args[1] : "");
        }
        if (args.size() == 1 && args[0] == "free-port") {
            return free_port();
        }
        if ((args.size() == 4 || args.size() == 5) && args[0] == "refuse-scope") {
            return refuse_scope(args[1], args[2], args[3],
                                args.size() == 5 ? static_cast<unsigned>(std::stoul(args[4])) : 403);
        }
        if (args.size() == 5 && args[0] == "hold-proxy") {
            return hold_proxy(args[1], args[2], args[3], args[4]);
        }
        if (args.size() == 3 && args[0] == "make-cert") {
            return make_cert(args[1], args[2]);
        }
    } catch (const std::exception& e) {
        std::cerr << "cli_test_helper: " << e.what() << "\n";
        return 1;
    }
    std::cerr
        << "usage: cli_test_helper get (--cacert FILE|--pin-sha256 FP) URL | json [FIELD] | free-port | "
           "make-cert CERT KEY | refuse-scope CERT KEY SCOPE [STATUS] | hold-proxy CERT KEY UPSTREAM_CA "
           "UPSTREAM_ORIGIN\n";
    return 2;
}

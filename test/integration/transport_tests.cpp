// Keep-alive reuse and the per-host connection cap, observed from the emulator's side.
#include <boost/asio/as_tuple.hpp>
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <string>

#include <fcntl.h>

#include "fixture.hpp"

using namespace apollo_oauth;
using apollo_oauth::test::emulator_fixture;
namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

namespace {

api_request small_post() {
    api_request req;
    req.method = boost::beast::http::verb::post;
    req.target = "/v1/tasks/bulk_create";
    req.body = R"({"tasks":[]})";
    return req;
}

struct socket_count {
    int open = 0;
    int inherited_by_exec = 0;  // without FD_CLOEXEC
};

/// The sockets this process holds, read from /proc/self/fd.
socket_count sockets_of_this_process() {
    socket_count n;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
        std::error_code ec;
        const auto target = std::filesystem::read_symlink(entry.path(), ec);
        if (ec || !target.string().starts_with("socket:")) {
            continue;  // gone meanwhile (the iterator's own descriptor), or not a socket
        }
        const int flags = ::fcntl(std::stoi(entry.path().filename().string()), F_GETFD);
        ++n.open;
        n.inherited_by_exec += flags >= 0 && (flags & FD_CLOEXEC) == 0;
    }
    return n;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(transport, emulator_fixture)

// A host process that forks and execs (a worker pool, a subprocess per job) must not hand its
// Apollo connections or the embedded emulator's listener to the child: the connection would outlive
// the library's close, and the port its listener. Asio 1.81 opens sockets without SOCK_CLOEXEC;
// the exchange opens its own, and the emulator marks its listener and each connection it accepts.
BOOST_AUTO_TEST_CASE(no_socket_of_the_client_or_the_emulator_is_inherited_by_an_exec) {
    client c{ioc.get_executor(), config()};
    const auto tokens = obtain_tokens(c);  // a pooled connection stays open, and its server side
    const auto n = sockets_of_this_process();
    BOOST_TEST(n.open >= 3);  // the listener, and both ends of the pooled connection
    BOOST_TEST(n.inherited_by_exec == 0);
}

BOOST_AUTO_TEST_CASE(sequential_requests_reuse_one_connection) {
    client c{ioc.get_executor(), config()};
    const auto tokens = obtain_tokens(c);  // consent() + the exchange: two connections
    const auto before = server.stats().connections_accepted;
    const int ok = run([&]() -> awaitable<int> {
        int statuses_ok = 0;
        for (int i = 0; i < 20; ++i) {
            auto res = co_await c.async_api_request(tokens.access_token, small_post(), use_awaitable);
            statuses_ok += res.status == 200;
        }
        co_await c.async_get_profile(tokens.access_token, use_awaitable);
        co_return statuses_ok;
    });
    BOOST_TEST(ok == 20);
    BOOST_TEST(server.stats().connections_accepted == before);  // all on the exchange's connection
}

BOOST_AUTO_TEST_CASE(concurrency_is_capped_per_host) {
    auto cfg = config();
    cfg.pool.max_connections_per_host = 3;
    client c{ioc.get_executor(), cfg};
    const auto tokens = obtain_tokens(c);
    const auto before = server.stats().connections_accepted;
    int ok = 0;
    for (int i = 0; i < 64; ++i) {
        c.async_api_request(tokens.access_token, small_post(),
                            [&](error_code ec, api_response res) { ok += !ec && res.status == 200; });
    }
    ioc.run();
    BOOST_TEST(ok == 64);
    BOOST_TEST(server.stats().connections_accepted - before <= 2u);  // 3 in all, one already open
}

BOOST_AUTO_TEST_CASE(a_connection_closed_by_a_fault_is_replaced) {
    client c{ioc.get_executor(), config()};
    const auto tokens = obtain_tokens(c);
    server.inject({.what = emulator::fault::kind::reset, .where = emulator::route::api});
    auto [ec1, r1] = run([&]() -> awaitable<std::tuple<error_code, api_response>> {
        co_return co_await c.async_api_request(tokens.access_token, small_post(),
                                               asio::as_tuple(use_awaitable));
    });
    BOOST_TEST(ec1.failed());  // a POST is not re-sent
    auto [ec2, r2] = run([&]() -> awaitable<std::tuple<error_code, api_response>> {
        co_return co_await c.async_api_request(tokens.access_token, small_post(),
                                               asio::as_tuple(use_awaitable));
    });
    BOOST_TEST(!ec2);
    BOOST_TEST(r2.status == 200u);
}

// An idempotent request is re-sent once when a reused keep-alive connection turns out closed
// before any response byte (the server closed it while idle). An interim response is a response
// byte: the server has the request (here it even processed it), so a connection that ends after
// one is not that race, and a GET is not sent again.
BOOST_AUTO_TEST_CASE(a_connection_that_ends_after_an_interim_response_is_not_retried) {
    client c{ioc.get_executor(), config()};
    const auto tokens = obtain_tokens(c);  // the API request below reuses the exchange's connection
    server.inject({.what = emulator::fault::kind::interim_response,
                   .where = emulator::route::api,
                   .status = 103,
                   .reset_after_interim = true});
    const auto before = server.stats().api_requests;
    auto [ec, res] = run([&]() -> awaitable<std::tuple<error_code, api_response>> {
        co_return co_await c.async_api_request(tokens.access_token, boost::beast::http::verb::get, "/v1/ping",
                                               asio::as_tuple(use_awaitable));
    });
    BOOST_TEST(ec == asio::error::connection_reset);
    BOOST_TEST(server.stats().api_requests - before == 1u);
}

BOOST_AUTO_TEST_SUITE_END()

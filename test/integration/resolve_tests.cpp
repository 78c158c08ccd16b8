// A name lookup that hangs: the resolve deadline and a cancellation end the request at once, while
// getaddrinfo is still stuck. Asio runs getaddrinfo on a thread of its own and cannot interrupt
// it (resolver::cancel() stops only a lookup not yet started), and a DNS server that does not
// answer keeps glibc there for 5 s a try; the exchange used to wait for it whatever the deadline.
//
// getaddrinfo is replaced in this test binary (localhost_addresses.cpp): for hung_host it blocks
// until the test lets it go (at the end of the test, so the resolver's thread can finish); while a
// test asks for it, "localhost" has the addresses the test gives it; every other name goes to libc.
//
// And a name with several addresses: each is tried in turn within the connect deadline.
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture.hpp"
#include "localhost_addresses.hpp"

namespace {

constexpr const char* hung_host = "hung-dns.test";

std::mutex hung_mutex;
std::condition_variable hung_changed;
bool hung_entered = false;   // guarded by hung_mutex: a lookup of hung_host is blocked
bool hung_released = false;  // guarded by hung_mutex: it may return

// This binary's own name (the rest: localhost_addresses.cpp): a lookup of hung_host blocks until
// the test lets it go, then fails as a DNS server that never answered makes it.
std::optional<int> hung_lookup(const char* node) {
    if (std::strcmp(node, hung_host) != 0) {
        return std::nullopt;
    }
    std::unique_lock lock{hung_mutex};
    hung_entered = true;
    hung_changed.notify_all();
    hung_changed.wait(lock, [] { return hung_released; });
    return EAI_AGAIN;
}

[[maybe_unused]] const bool hung_lookup_installed = (apollo_oauth::test::lookup_hook = &hung_lookup, true);

}  // namespace

namespace {

using namespace apollo_oauth;
namespace asio = boost::asio;
using namespace std::chrono_literals;
using test::localhost_lookups;
using test::localhost_resolving_to;
using test::without_ipv6;

/// Lookups of hung_host block from its making to its end, when they are let go.
struct hung_lookups {
    hung_lookups() {
        const std::lock_guard lock{hung_mutex};
        hung_entered = false;
        hung_released = false;
    }
    ~hung_lookups() {
        const std::lock_guard lock{hung_mutex};
        hung_released = true;
        hung_changed.notify_all();
    }
    hung_lookups(const hung_lookups&) = delete;
    hung_lookups& operator=(const hung_lookups&) = delete;

    void wait_until_one_is_blocked() {
        std::unique_lock lock{hung_mutex};
        hung_changed.wait(lock, [] { return hung_entered; });
    }
    bool one_is_blocked() {
        const std::lock_guard lock{hung_mutex};
        return hung_entered && !hung_released;
    }
};

/// A listener on 127.0.0.4:`port` whose accept queue is full: the kernel drops a connect's SYN,
/// so the connect hangs until its deadline.
struct hanging_listener {
    explicit hanging_listener(std::uint16_t port) {
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        ::inet_pton(AF_INET, "127.0.0.4", &address.sin_addr);
        const auto* as_sockaddr = reinterpret_cast<const sockaddr*>(&address);
        listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        BOOST_REQUIRE(listener >= 0);
        BOOST_REQUIRE(::bind(listener, as_sockaddr, sizeof address) == 0);
        BOOST_REQUIRE(::listen(listener, 0) == 0);
        for (int i = 0; i < 4; ++i) {  // the queue holds one; the rest are the SYNs it drops
            const int filler = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            BOOST_REQUIRE(filler >= 0);
            (void)::connect(filler, as_sockaddr, sizeof address);
            fillers.push_back(filler);
        }
    }
    ~hanging_listener() {
        for (const int fd : fillers) {
            ::close(fd);
        }
        ::close(listener);
    }
    hanging_listener(const hanging_listener&) = delete;
    hanging_listener& operator=(const hanging_listener&) = delete;

    int listener = -1;
    std::vector<int> fillers;
};

const secret_string token{"resolve-test-token"};

struct resolve_fixture : test::emulator_fixture {
    client_config hung_config(std::chrono::milliseconds resolve_deadline) const {
        auto c = config();
        c.endpoints.api_base = std::string("https://") + hung_host;
        c.timeouts.resolve = resolve_deadline;
        return c;
    }

    /// The emulator by its name: the certificate names localhost too.
    client_config by_name_config() const {
        auto c = config();
        c.endpoints.api_base = "https://localhost:" + std::to_string(server.port());
        return c;
    }

    /// Runs ioc until `outcome` is set; gives up after a quiet 10 s (the failure before the fix:
    /// the request waited for the lookup, which this test lets go only at its end).
    void run_until_set(const std::optional<error_code>& outcome) {
        while (!outcome && ioc.run_one_for(10s) != 0) {
        }
    }

    /// GET /v1/ping through `c`, run until it completes: its error (nullopt if it never did), and
    /// the response's status in `status` when given.
    std::optional<error_code> ping(client& c, unsigned* status = nullptr) {
        std::optional<error_code> outcome;
        c.async_api_request(token, boost::beast::http::verb::get, "/v1/ping",
                            [&](error_code ec, api_response r) {
                                outcome = ec;
                                if (status != nullptr) {
                                    *status = r.status;
                                }
                            });
        run_until_set(outcome);
        return outcome;
    }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(resolve, resolve_fixture)

BOOST_AUTO_TEST_CASE(a_lookup_that_hangs_ends_at_the_resolve_deadline) {
    hung_lookups hung;
    client c{ioc.get_executor(), hung_config(100ms)};
    const auto outcome = ping(c);
    BOOST_TEST(hung.one_is_blocked());  // the lookup started, and has not returned
    BOOST_REQUIRE(outcome.has_value());
    BOOST_TEST(*outcome == asio::error::timed_out);
}

BOOST_AUTO_TEST_CASE(a_lookup_that_hangs_ends_at_a_cancellation) {
    hung_lookups hung;
    client c{ioc.get_executor(), hung_config(60s)};
    std::optional<error_code> outcome;
    asio::cancellation_signal cancel;
    c.async_api_request(
        token, boost::beast::http::verb::get, "/v1/ping",
        asio::bind_cancellation_slot(cancel.slot(), [&](error_code ec, api_response) { outcome = ec; }));
    ioc.poll();  // the exchange's steps up to the lookup, which its own thread then runs
    hung.wait_until_one_is_blocked();
    cancel.emit(asio::cancellation_type::terminal);  // nothing runs ioc meanwhile: this thread owns it
    run_until_set(outcome);
    BOOST_TEST(hung.one_is_blocked());
    BOOST_REQUIRE(outcome.has_value());
    BOOST_TEST(*outcome == asio::error::operation_aborted);
}

// The exchange tries the lookup's addresses itself, in order (each on a socket it opens
// close-on-exec, which Asio's range connect cannot): a refusing first address is passed over.
BOOST_AUTO_TEST_CASE(a_name_whose_first_addresses_refuse_is_reached_at_the_next) {
    const localhost_resolving_to three{{"127.0.0.2", "127.0.0.3", "127.0.0.1"}};
    client c{ioc.get_executor(), by_name_config()};
    unsigned status = 0;
    const auto outcome = ping(c, &status);
    BOOST_TEST(localhost_lookups == 1);
    BOOST_REQUIRE(outcome.has_value());
    BOOST_TEST(!*outcome, outcome->message());
    BOOST_TEST(status == 404u);  // the emulator answered (a path it does not serve)
}

// Every address refuses: the request fails with the last address's error, at once.
BOOST_AUTO_TEST_CASE(a_name_whose_every_address_refuses_fails_with_connection_refused) {
    const localhost_resolving_to two{{"127.0.0.2", "127.0.0.3"}};
    client c{ioc.get_executor(), by_name_config()};
    const auto outcome = ping(c);
    BOOST_TEST(localhost_lookups == 1);
    BOOST_REQUIRE(outcome.has_value());
    BOOST_TEST(*outcome == asio::error::connection_refused, outcome->message());
}

// An address whose family has no socket here (IPv6 on a kernel without it) is passed over too.
BOOST_AUTO_TEST_CASE(an_address_this_host_has_no_socket_for_is_passed_over) {
    const without_ipv6 no_ipv6;
    const localhost_resolving_to both{{"::1", "127.0.0.1"}};
    client c{ioc.get_executor(), by_name_config()};
    const auto outcome = ping(c);
    BOOST_TEST(localhost_lookups == 1);
    BOOST_REQUIRE(outcome.has_value());
    BOOST_TEST(!*outcome, outcome->message());
}

// The connect deadline is for all the addresses together: an address that never answers uses it
// up, and the next is not tried (the request is over at its deadline, not one per address).
BOOST_AUTO_TEST_CASE(the_connect_deadline_covers_every_address) {
    const hanging_listener hangs{server.port()};
    const localhost_resolving_to two{{"127.0.0.4", "127.0.0.1"}};
    auto cfg = by_name_config();
    cfg.timeouts.connect = 300ms;
    client c{ioc.get_executor(), cfg};
    const auto accepted_before = server.stats().connections_accepted;
    const auto outcome = ping(c);
    BOOST_REQUIRE(outcome.has_value());
    BOOST_TEST(*outcome == asio::error::timed_out, outcome->message());
    BOOST_TEST(server.stats().connections_accepted == accepted_before);  // 127.0.0.1 never tried
}

// A cancellation while a later address's connect hangs ends the request, and no address after it
// is tried. (Emitted by a timer: the refusing first address is done within it, and whenever it
// lands, the outcome must be operation_aborted with nothing connected.)
BOOST_AUTO_TEST_CASE(a_cancellation_during_a_later_address_ends_the_request) {
    const hanging_listener hangs{server.port()};
    const localhost_resolving_to three{{"127.0.0.2", "127.0.0.4", "127.0.0.1"}};
    client c{ioc.get_executor(), by_name_config()};  // the connect deadline: 10 s
    const auto accepted_before = server.stats().connections_accepted;
    std::optional<error_code> outcome;
    asio::cancellation_signal cancel;
    c.async_api_request(
        token, boost::beast::http::verb::get, "/v1/ping",
        asio::bind_cancellation_slot(cancel.slot(), [&](error_code ec, api_response) { outcome = ec; }));
    asio::steady_timer later{ioc, 300ms};
    later.async_wait([&](error_code) { cancel.emit(asio::cancellation_type::terminal); });
    const auto started = std::chrono::steady_clock::now();
    run_until_set(outcome);
    BOOST_REQUIRE(outcome.has_value());
    BOOST_TEST(*outcome == asio::error::operation_aborted, outcome->message());
    BOOST_TEST(localhost_lookups == 1);
    BOOST_TEST(server.stats().connections_accepted == accepted_before);
    BOOST_TEST((std::chrono::steady_clock::now() - started < 10s));  // not at the connect deadline
}

BOOST_AUTO_TEST_SUITE_END()

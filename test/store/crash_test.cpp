// Crash safety: a writer process SIGKILLed at random points of its saves never leaves a torn or
// unreadable record, only the last completed generation or the one it was writing.
#include "child_process.hpp"
#include "store_test_support.hpp"

#include <apollo_oauth/token_store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <csignal>
#include <map>
#include <random>
#include <sstream>

#include <sys/wait.h>

namespace apollo_oauth::store_test {
namespace {

constexpr int accounts = 3;

// What the writer said about one account during a round.
struct progress {
    std::uint64_t done = 0;   // last generation reported saved
    std::uint64_t begun = 0;  // last generation it started to save
};

void parse(const std::string& line, std::map<std::string, progress>& state) {
    std::istringstream in(line);
    std::string what, account;
    std::uint64_t g = 0;
    BOOST_REQUIRE_MESSAGE(in >> what >> account >> g, "unexpected writer output: " << line);
    auto& p = state.at(account);
    if (what == "begin") {
        BOOST_TEST(g == p.done + 1, account << ": began " << g << " after " << p.done);
        p.begun = g;
    } else {
        BOOST_REQUIRE(what == "done");
        BOOST_TEST(g == p.begun);
        p.done = g;
    }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(crash_safety)

BOOST_AUTO_TEST_CASE(killed_writer_leaves_old_or_new_record) {
    temp_dir dir;
    const auto records = dir.path() / "tokens";
    const auto seed = std::random_device{}();
    BOOST_TEST_MESSAGE("crash_safety seed " << seed);
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> dones_before_kill(1, 12), spin_us(0, 3000);

    std::map<std::string, std::uint64_t> stored;  // generation verified after the previous round
    for (int i = 0; i < accounts; ++i) {
        stored["account-" + std::to_string(i)] = 0;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    int rounds = 0, in_flight_kept = 0, in_flight_lost = 0;
    for (; rounds < 200 && (rounds < 20 || std::chrono::steady_clock::now() < deadline); ++rounds) {
        std::map<std::string, progress> state;
        for (const auto& [account, g] : stored) {
            state[account] = {g, g};
        }
        child_process writer({TOKEN_STORE_WRITER, records.string(), std::to_string(accounts)});
        for (int dones = 0, target = dones_before_kill(rng); dones < target;) {
            const auto line = writer.read_line();
            BOOST_REQUIRE_MESSAGE(line, "the writer stopped early");
            parse(*line, state);
            dones += line->starts_with("done ") ? 1 : 0;
        }
        // Spinning, not sleeping: this only moves the kill to a random point of the writer's work.
        const auto kill_at = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us(rng));
        while (std::chrono::steady_clock::now() < kill_at) {
        }
        writer.kill();
        const int status = writer.wait();
        BOOST_REQUIRE_MESSAGE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                              "the writer failed by itself");
        while (const auto line = writer.read_line()) {
            parse(*line, state);
        }
        // A killed writer leaves at most its one in-flight temporary file; older ones are gone.
        BOOST_TEST(count_temp_files(records) <= 1u);

        boost::asio::io_context ioc;
        auto store = make_file_token_store(ioc.get_executor(), records);
        for (auto& [account, p] : state) {
            const auto loaded = load(*store, ioc, account);
            BOOST_REQUIRE_MESSAGE(!loaded.ec,
                                  account << ": " << loaded.ec.message() << " in round " << rounds);
            const std::uint64_t g = loaded.record ? loaded.record->generation : 0;
            const bool in_flight = p.begun != p.done;
            BOOST_TEST((g == p.done || (in_flight && g == p.begun)),
                       account << " holds " << g << ", done " << p.done << ", begun " << p.begun);
            if (loaded.record) {
                const std::string prefix = "access-" + account + "-g" + std::to_string(g) + "-";
                BOOST_TEST(loaded.record->tokens.access_token.reveal().starts_with(prefix));
                BOOST_TEST(loaded.record->tokens.access_token.size() >= 2000u);
            }
            if (in_flight) {
                ++(g == p.begun ? in_flight_kept : in_flight_lost);
            }
            stored[account] = g;
        }
        store.reset();
        BOOST_TEST(count_temp_files(records) == 0u);  // the new store removed the writer's leftovers
    }
    BOOST_TEST_MESSAGE("crash_safety: " << rounds << " rounds; in-flight saves kept " << in_flight_kept
                                        << ", lost " << in_flight_lost);
    BOOST_TEST(rounds >= 20);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace apollo_oauth::store_test

// Compare-and-set under contention: store objects sharing a directory, in one process and across
// processes. Exactly one save wins each generation.
#include "child_process.hpp"
#include "store_test_support.hpp"

#include <apollo_oauth/token_store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <map>
#include <mutex>
#include <thread>

#include <sys/wait.h>

namespace apollo_oauth::store_test {

BOOST_AUTO_TEST_SUITE(races)

// Two store objects (two private threads) over one directory, saves initiated from several
// threads at once: per generation, one wins and the others see generation_conflict.
BOOST_AUTO_TEST_CASE(one_winner_per_generation_between_store_objects) {
    temp_dir dir;
    const auto records = dir.path() / "tokens";
    boost::asio::io_context ioc;
    const std::shared_ptr<token_store> stores[] = {make_file_token_store(ioc.get_executor(), records),
                                                   make_file_token_store(ioc.get_executor(), records)};
    constexpr int contenders = 6;
    for (std::uint64_t g = 0; g < 25; ++g) {
        std::mutex m;
        std::map<int, error_code> outcomes;
        std::vector<std::thread> threads;
        for (int c = 0; c < contenders; ++c) {
            threads.emplace_back([&, c] {
                stores[c % 2]->async_save("acct", make_record(g + 1, "contender" + std::to_string(c)), g,
                                          [&, c](error_code ec) {
                                              const std::lock_guard lock(m);
                                              outcomes[c] = ec;
                                          });
            });
        }
        for (auto& t : threads) {
            t.join();
        }
        ioc.restart();
        ioc.run();
        BOOST_REQUIRE(outcomes.size() == std::size_t{contenders});
        int winner = -1;
        for (const auto& [c, ec] : outcomes) {
            if (!ec) {
                BOOST_TEST(winner == -1, "generation " << g + 1 << " won twice");
                winner = c;
            } else {
                BOOST_TEST(ec == errc::generation_conflict);
            }
        }
        BOOST_REQUIRE(winner != -1);
        const auto loaded = load(*stores[g % 2], ioc, "acct");
        BOOST_REQUIRE(loaded.record);
        check_same(*loaded.record, make_record(g + 1, "contender" + std::to_string(winner)));
    }
    BOOST_TEST(count_temp_files(records) == 0u);
}

// Processes share nothing but the directory, so only the flock keeps two of them from reading
// the same generation and both writing the next one.
BOOST_AUTO_TEST_CASE(one_winner_per_generation_between_processes) {
    temp_dir dir;
    const auto records = dir.path() / "tokens";
    constexpr std::uint64_t last = 60;
    std::vector<std::unique_ptr<child_process>> racers;
    for (int i = 0; i < 3; ++i) {
        racers.push_back(std::make_unique<child_process>(
            std::vector<std::string>{TOKEN_STORE_WRITER, "--race", records.string(), "acct",
                                     std::to_string(last), "racer" + std::to_string(i)}));
    }
    std::map<std::uint64_t, int> wins;  // generation -> how many racers won it
    for (auto& racer : racers) {
        while (const auto line = racer->read_line()) {
            BOOST_REQUIRE(line->starts_with("won "));
            ++wins[std::stoull(line->substr(4))];
        }
        const int status = racer->wait();
        BOOST_TEST((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    }
    BOOST_TEST(wins.size() == last);
    for (const auto& [g, count] : wins) {
        BOOST_TEST(count == 1, "generation " << g << " won " << count << " times");
    }
    boost::asio::io_context ioc;
    auto store = make_file_token_store(ioc.get_executor(), records);
    const auto loaded = load(*store, ioc, "acct");
    BOOST_TEST(!loaded.ec);
    BOOST_REQUIRE(loaded.record);
    BOOST_TEST(loaded.record->generation == last);
    BOOST_TEST(count_temp_files(records) == 0u);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace apollo_oauth::store_test

// Failed writes: store_failure, the previous record intact, no temporary file left, and the next
// save after the cause is gone succeeds. Both causes work as root, which ignores permission bits.
#include "store/record_files.hpp"
#include "store_test_support.hpp"

#include <apollo_oauth/token_store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <csignal>
#include <fstream>

#include <sys/resource.h>

namespace apollo_oauth::store_test {
namespace {

struct failure_fixture : file_store_fixture {
    stored_tokens first = make_record(1, "first", 6000);

    failure_fixture() { BOOST_REQUIRE(!save(*store, ioc, "acct", first, 0)); }

    void check_first_intact() {
        const auto loaded = load(*store, ioc, "acct");
        BOOST_TEST(!loaded.ec);
        BOOST_REQUIRE(loaded.record);
        check_same(*loaded.record, first);
        BOOST_TEST(count_temp_files(records) == 0u);
    }

    void check_recovered() {
        const stored_tokens second = make_record(2, "second", 6000);
        BOOST_TEST(!save(*store, ioc, "acct", second, 1));
        const auto loaded = load(*store, ioc, "acct");
        BOOST_REQUIRE(loaded.record);
        check_same(*loaded.record, second);
    }
};

// Limits the size of files this process writes (RLIMIT_FSIZE binds root too). With SIGXFSZ
// ignored, a write past the limit fails with EFBIG instead of killing the process.
class file_size_limit {
public:
    explicit file_size_limit(rlim_t bytes) {
        ::getrlimit(RLIMIT_FSIZE, &old_);
        old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
        rlimit limited = old_;
        limited.rlim_cur = bytes;
        BOOST_REQUIRE(::setrlimit(RLIMIT_FSIZE, &limited) == 0);
    }
    ~file_size_limit() {
        ::setrlimit(RLIMIT_FSIZE, &old_);
        std::signal(SIGXFSZ, old_handler_);
    }
    file_size_limit(const file_size_limit&) = delete;
    file_size_limit& operator=(const file_size_limit&) = delete;

private:
    rlimit old_{};
    void (*old_handler_)(int) = nullptr;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(write_failures)

// The directory is moved away and a regular file put at its path: opening it fails (ENOTDIR).
BOOST_FIXTURE_TEST_CASE(directory_replaced_by_a_file, failure_fixture) {
    const auto away = dir.path() / "tokens.away";
    std::filesystem::rename(records, away);
    write_file(records, "not a directory");
    BOOST_TEST(save(*store, ioc, "acct", make_record(2, "lost", 6000), 1) == errc::store_failure);
    BOOST_TEST(load(*store, ioc, "acct").ec == errc::store_failure);
    BOOST_TEST(read_file(records) == "not a directory");
    BOOST_TEST(count_temp_files(away) == 0u);

    std::filesystem::remove(records);
    std::filesystem::rename(away, records);
    check_first_intact();
    check_recovered();
}

// The temporary file is created but the write fails halfway (EFBIG).
BOOST_FIXTURE_TEST_CASE(write_fails_halfway, failure_fixture) {
    {
        const file_size_limit limit(4096);  // the record is about 12 KB
        BOOST_TEST(save(*store, ioc, "acct", make_record(2, "lost", 6000), 1) == errc::store_failure);
    }
    check_first_intact();
    check_recovered();
}

// Holder "a" holds the lease of generation 1 with its request marked sent; then it dies, and
// "b" asks: what "b" is told says whether the "sent" mark survived what the test did between.
struct sent_lease_fixture : failure_fixture {
    sent_lease_fixture() {
        BOOST_REQUIRE((acquire(*store, "a").what == lease_outcome::kind::granted));
        BOOST_REQUIRE(
            !step([&](auto h) { store->async_mark_sent("acct", "a", 1, lease_ttl, std::move(h)); }));
    }

    lease_outcome acquire(token_store& s, const std::string& holder) {
        lease_outcome out;
        error_code result = boost::asio::error::would_block;
        s.async_acquire("acct", holder, 1, lease_ttl, [&](error_code ec, lease_outcome o) {
            result = ec;
            out = std::move(o);
        });
        ioc.restart();
        ioc.run();
        BOOST_TEST(!result);
        return out;
    }

    template <class Initiate>
    error_code step(Initiate initiate) {
        error_code result = boost::asio::error::would_block;
        initiate([&](error_code ec) { result = ec; });
        ioc.restart();
        ioc.run();
        return result;
    }

    lease_outcome successor_after_the_holder_dies() {
        store.reset();  // the kernel drops its lock
        const auto successor = make_file_token_store(ioc.get_executor(), records);
        return acquire(*successor, "b");
    }

    static constexpr std::chrono::milliseconds lease_ttl{30'000};
};

// A lease rewritten while writes fail (a full disk; here no write may grow any file) keeps what it
// said. A renewal used to truncate the lease file and then write it: the failed write left it
// empty, and once the holder died, its successor was not told that the holder had marked its
// request sent, and would send the refresh token that request may have spent.
BOOST_FIXTURE_TEST_CASE(a_lease_rewrite_that_fails_keeps_the_sent_mark, sent_lease_fixture) {
    {
        const file_size_limit no_writes(0);
        BOOST_TEST(step([&](auto h) { store->async_renew("acct", "a", 1, lease_ttl, std::move(h)); }) ==
                   errc::store_failure);
    }
    const auto granted = successor_after_the_holder_dies();
    BOOST_TEST((granted.what == lease_outcome::kind::granted));
    BOOST_TEST(granted.previous_holder_sent);
}

// Scenario: "a" marks its request sent and dies; "b" is granted, told, and gives the lease back
// (its refresh failed before it was sent, say) while writes fail, so that its release cannot
// rewrite the lease. The release emptied the file then, and "c", granted next, was told nothing and
// sent at once the refresh token that "a"'s request may have spent: the grant revoked. The file is
// cut to a byte that is no lease instead, which "c" takes for a mark of an unknown sender.
BOOST_FIXTURE_TEST_CASE(a_release_that_fails_to_rewrite_the_lease_keeps_a_silent_senders_mark,
                        sent_lease_fixture) {
    store.reset();  // "a" dies: the kernel drops its lock
    const auto b = make_file_token_store(ioc.get_executor(), records);
    const auto granted = acquire(*b, "b");
    BOOST_TEST_REQUIRE((granted.what == lease_outcome::kind::granted));
    BOOST_TEST_REQUIRE(granted.previous_holder_sent);
    {
        const file_size_limit no_writes(0);
        BOOST_TEST(!step([&](auto h) { b->async_release("acct", "b", std::move(h)); }));
    }
    const auto c = make_file_token_store(ioc.get_executor(), records);
    const auto next = acquire(*c, "c");
    BOOST_TEST_REQUIRE((next.what == lease_outcome::kind::granted));
    BOOST_TEST(next.previous_holder_sent);
}

// A lease text ends at its padding line: what a longer text left past a shorter one (a holder
// with a long name killed between the write and the cut) is never read as part of it. Here the
// leftover says "acquired" after a holder's "sent".
BOOST_FIXTURE_TEST_CASE(a_lease_text_ends_at_its_padding, sent_lease_fixture) {
    {
        std::ofstream lease(records / (store::account_key("acct") + ".lease"), std::ios::app);
        lease << "holder=a\ngeneration=1\nphase=acquired\n";
    }
    const auto granted = successor_after_the_holder_dies();
    BOOST_TEST((granted.what == lease_outcome::kind::granted));
    BOOST_TEST(granted.previous_holder_sent);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace apollo_oauth::store_test

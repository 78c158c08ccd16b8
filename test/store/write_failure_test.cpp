// Failed writes: store_failure, the previous record intact, no temporary file left, and the next
// save after the cause is gone succeeds. Both causes work as root, which ignores permission bits.
#include "store_test_support.hpp"

#include <apollo_oauth/token_store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <csignal>

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

BOOST_AUTO_TEST_SUITE_END()

}  // namespace apollo_oauth::store_test

// A commit whose directory fsync failed after the rename, retried: the retry finds its own record
// and must make it durable before it reports success. The failure is injected by interposing
// fsync for this test binary (the store library is linked into it): only directories, only while
// a test asks for it.
#include "store_test_support.hpp"

#include <apollo_oauth/token_store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cerrno>

#include <dlfcn.h>
#include <sys/stat.h>

namespace {

/// Directory fsyncs still to fail with EIO; 0: none (the default for every other test).
std::atomic<int> directory_syncs_to_fail{0};

}  // namespace

extern "C" int fsync(int fd) {
    using real_fsync = int (*)(int);
    static const auto real = reinterpret_cast<real_fsync>(::dlsym(RTLD_NEXT, "fsync"));
    struct stat st {};
    if (directory_syncs_to_fail.load() > 0 && ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) &&
        directory_syncs_to_fail.fetch_sub(1) > 0) {
        errno = EIO;
        return -1;
    }
    return real(fd);
}

namespace apollo_oauth::store_test {
namespace {

error_code commit(token_store& store, boost::asio::io_context& ioc, const stored_tokens& record,
                  std::uint64_t expected) {
    error_code result = make_error_code(errc::shutting_down);  // overwritten when it completes
    bool done = false;
    store.async_commit("acct", "holder", record, expected, [&](error_code ec) {
        result = ec;
        done = true;
    });
    ioc.restart();
    ioc.run();
    BOOST_REQUIRE(done);
    return result;
}

BOOST_FIXTURE_TEST_SUITE(directory_sync, file_store_fixture)

BOOST_AUTO_TEST_CASE(a_retried_commit_succeeds_only_once_its_record_is_durable) {
    BOOST_REQUIRE(!save(*store, ioc, "acct", make_record(1, "first"), 0));
    const stored_tokens second = make_record(2, "second");

    directory_syncs_to_fail = 1;
    BOOST_TEST(commit(*store, ioc, second, 1) == errc::store_failure);  // renamed, not synced
    // The retry finds its own record in place: not a success while it cannot be made durable.
    directory_syncs_to_fail = 1;
    BOOST_TEST(commit(*store, ioc, second, 1) == errc::store_failure);
    BOOST_TEST(directory_syncs_to_fail.load() == 0);  // the injected failure was met
    // Once the directory syncs, the retry succeeds, and the record is the committed one.
    BOOST_TEST(!commit(*store, ioc, second, 1));
    const auto loaded = load(*store, ioc, "acct");
    BOOST_TEST(!loaded.ec);
    BOOST_REQUIRE(loaded.record);
    check_same(*loaded.record, second);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace apollo_oauth::store_test

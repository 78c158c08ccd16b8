// A commit whose directory fsync failed after the rename, retried: the retry finds its own record
// and must make it durable before it reports success; and a directory the store creates is synced
// into its parent. fsync is interposed for this test binary (the store library is linked into
// it): it fails directories' syncs, and records which directories were synced, only while a test
// asks for it.
#include "store_test_support.hpp"

#include <apollo_oauth/private_files.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <set>
#include <utility>

#include <dlfcn.h>
#include <sys/stat.h>

namespace {

/// Directory fsyncs still to fail, with directory_sync_errno; 0: none (the default for every
/// other test).
std::atomic<int> directory_syncs_to_fail{0};
std::atomic<int> directory_sync_errno{EIO};
/// When not 0, only the directory of this inode has its syncs failed.
std::atomic<ino_t> only_directory{0};

/// While set, the (device, inode) of every directory synced is kept in synced_directories.
std::atomic<bool> recording_directory_syncs{false};
std::mutex synced_directories_mutex;
std::set<std::pair<dev_t, ino_t>> synced_directories;

}  // namespace

extern "C" int fsync(int fd) {
    using real_fsync = int (*)(int);
    static const auto real = reinterpret_cast<real_fsync>(::dlsym(RTLD_NEXT, "fsync"));
    struct stat st {};
    if (directory_syncs_to_fail.load() > 0 && ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) &&
        (only_directory.load() == 0 || only_directory.load() == st.st_ino) &&
        directory_syncs_to_fail.fetch_sub(1) > 0) {
        errno = directory_sync_errno.load();
        return -1;
    }
    const int result = real(fd);
    if (result == 0 && recording_directory_syncs.load() && ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        const std::lock_guard lock(synced_directories_mutex);
        synced_directories.emplace(st.st_dev, st.st_ino);
    }
    return result;
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

bool was_synced(const std::filesystem::path& p) {
    struct stat st {};
    BOOST_REQUIRE(::stat(p.c_str(), &st) == 0);
    const std::lock_guard lock(synced_directories_mutex);
    return synced_directories.count({st.st_dev, st.st_ino}) == 1;
}

/// Records the directories synced while it lives.
struct recording_syncs {
    recording_syncs() {
        const std::lock_guard lock(synced_directories_mutex);
        synced_directories.clear();
        recording_directory_syncs = true;
    }
    ~recording_syncs() { recording_directory_syncs = false; }
    recording_syncs(const recording_syncs&) = delete;
    recording_syncs& operator=(const recording_syncs&) = delete;
};

// A power cut after the first save must not take the new directory away with the record synced
// into it: every directory the store made is synced into its parent.
BOOST_AUTO_TEST_CASE(a_directory_the_store_makes_is_synced_into_its_parent) {
    load(*store, ioc, "acct");  // the fixture's store has made its own directory
    const temp_dir root;
    const auto created = root.path() / "new" / "parents";
    const auto made_records = created / "tokens";
    const recording_syncs recording;  // before the store, which makes its directory at once
    auto made_store = make_file_token_store(ioc.get_executor(), made_records);
    BOOST_REQUIRE(!save(*made_store, ioc, "acct", make_record(1, "first"), 0));
    BOOST_TEST(was_synced(root.path()));          // holds "new"
    BOOST_TEST(was_synced(root.path() / "new"));  // holds "parents"
    BOOST_TEST(was_synced(created));              // holds "tokens"
    BOOST_TEST(was_synced(made_records));         // holds the record
}

// The directory's entry is synced before the first record counts, even when the sync after its
// mkdir failed (the store's start-up made it; the save finds it there) or another process made it.
BOOST_AUTO_TEST_CASE(a_failed_sync_of_a_new_directory_is_made_good_before_the_first_save) {
    load(*store, ioc, "acct");  // the fixture's store has made its own directory
    const temp_dir root;
    const auto made_records = root.path() / "tokens";
    const recording_syncs recording;
    directory_syncs_to_fail = 1;  // the start-up's sync of root, after its mkdir of "tokens"
    auto made_store = make_file_token_store(ioc.get_executor(), made_records);
    BOOST_REQUIRE(!save(*made_store, ioc, "acct", make_record(1, "first"), 0));
    BOOST_TEST(directory_syncs_to_fail.load() == 0);  // the injected failure was met
    BOOST_TEST(was_synced(root.path()));
}

// A token directory mounted on a file system of its own, whose parent's cannot sync a directory
// (EINVAL: a read-only image; EROFS): the entry is as durable as it will ever be, and that is no
// failure of every save.
BOOST_AUTO_TEST_CASE(a_parent_that_cannot_be_synced_is_no_failure) {
    load(*store, ioc, "acct");  // the fixture's store has made its own directory
    const temp_dir root;
    struct stat st {};
    BOOST_REQUIRE(::stat(root.path().c_str(), &st) == 0);
    for (const int unsupported : {EINVAL, EROFS}) {
        const auto made_records = root.path() / ("tokens-" + std::to_string(unsupported));
        only_directory = st.st_ino;
        directory_sync_errno = unsupported;
        directory_syncs_to_fail = 1000;  // every sync of the parent
        auto made_store = make_file_token_store(ioc.get_executor(), made_records);
        const error_code saved = save(*made_store, ioc, "acct", make_record(1, "first"), 0);
        const bool parent_sync_failed = directory_syncs_to_fail.load() < 1000;
        directory_syncs_to_fail = 0;
        directory_sync_errno = EIO;
        only_directory = 0;
        BOOST_TEST(parent_sync_failed);
        BOOST_TEST(!saved, "the parent's fsync failing with errno " << unsupported);
    }
}

// make_private_directory, as the command-line tool calls it: "a/b/" is the directory "a/b",
// whose entry is in "a".
BOOST_AUTO_TEST_CASE(a_directory_named_with_a_trailing_slash_is_synced_into_its_parent) {
    const temp_dir root;
    std::filesystem::create_directory(root.path() / "x");  // so that "x/tokens/" is made as named
    const recording_syncs recording;
    BOOST_REQUIRE(!make_private_directory(root.path() / "x" / "tokens/"));
    BOOST_TEST(was_synced(root.path() / "x"));
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace apollo_oauth::store_test

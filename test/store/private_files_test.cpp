// private_files.hpp: the public face of the store's atomic 0600 write, as other programs (the
// apollo-oauth tool) use it.
#include "store_test_support.hpp"

#include <apollo_oauth/private_files.hpp>

#include <boost/test/unit_test.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <iterator>

namespace apollo_oauth::store_test {
namespace {

std::size_t entries_in(const std::filesystem::path& dir) {
    return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator(dir), {}));
}

// Sets the umask for one scope.
struct umask_scope {
    explicit umask_scope(mode_t mask) : old(::umask(mask)) {}
    ~umask_scope() { ::umask(old); }
    mode_t old;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(private_files)

BOOST_AUTO_TEST_CASE(replaced_whole_with_mode_exactly_0600_whatever_the_umask) {
    temp_dir dir;
    for (const mode_t mask : {mode_t(0), mode_t(0277)}) {  // 0277 would make it 0400 without fchmod
        const umask_scope scope(mask);
        BOOST_TEST(!replace_private_file(dir.path(), "note.json", "first"));
        BOOST_TEST(mode_of(dir.path() / "note.json") == 0600u);
        BOOST_TEST(!replace_private_file(dir.path(), "note.json", "second, longer"));
        BOOST_TEST(read_file(dir.path() / "note.json") == "second, longer");
        BOOST_TEST(mode_of(dir.path() / "note.json") == 0600u);
        BOOST_TEST(entries_in(dir.path()) == 1u);  // no temporary file left behind
        std::filesystem::remove(dir.path() / "note.json");
    }
}

// One rule with the file store and make_private_directory: a symbolic link in the directory's place
// is followed (it was refused here alone, so a token directory on a link worked for the store but
// not for the tool's pending file), and the directory it leads to must be private; the file itself
// is never written through a link.
BOOST_AUTO_TEST_CASE(a_link_to_a_private_directory_is_followed_never_a_link_in_the_files_place) {
    temp_dir dir;
    const auto real = dir.path() / "real";
    std::filesystem::create_directory(real);
    std::filesystem::permissions(real, std::filesystem::perms::owner_all);
    std::filesystem::create_directory_symlink(real, dir.path() / "link");
    BOOST_TEST(!replace_private_file(dir.path() / "link", "note.json", "through the link"));
    BOOST_TEST(read_file(real / "note.json") == "through the link");

    write_file(dir.path() / "elsewhere", "untouched");
    std::filesystem::create_symlink(dir.path() / "elsewhere", real / "linked.json");
    BOOST_TEST(!replace_private_file(dir.path() / "link", "linked.json", "replaces the link"));
    BOOST_TEST(!std::filesystem::is_symlink(real / "linked.json"));
    BOOST_TEST(read_file(real / "linked.json") == "replaces the link");
    BOOST_TEST(read_file(dir.path() / "elsewhere") == "untouched");

    const auto shared = dir.path() / "shared";
    std::filesystem::create_directory(shared);
    ::chmod(shared.c_str(), 0770);
    std::filesystem::create_directory_symlink(shared, dir.path() / "shared-link");
    BOOST_TEST(replace_private_file(dir.path() / "shared-link", "note.json", "x") == errc::store_failure);
    BOOST_TEST(replace_private_file(shared, "note.json", "x") == errc::store_failure);
    BOOST_TEST(entries_in(shared) == 0u);
}

BOOST_AUTO_TEST_CASE(directories_made_0700_with_parents_and_shared_ones_refused) {
    const umask_scope open_umask(0);
    temp_dir dir;
    const auto deep = dir.path() / "a" / "b";
    BOOST_TEST(!make_private_directory(deep));
    BOOST_TEST(mode_of(dir.path() / "a") == 0700u);
    BOOST_TEST(mode_of(deep) == 0700u);
    BOOST_TEST(!make_private_directory(deep));  // existing and private: fine

    ::chmod(deep.c_str(), 0770);
    BOOST_TEST(make_private_directory(deep) == errc::store_failure);
}

BOOST_AUTO_TEST_CASE(account_stem_is_the_file_stores_key) {
    BOOST_TEST(file_store_account_stem("alice") ==
               "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90");
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace apollo_oauth::store_test

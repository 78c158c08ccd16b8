// Helpers shared by the token store tests.
#pragma once

#include <apollo_oauth/error.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <sys/stat.h>

namespace apollo_oauth {

// Lets BOOST_TEST print an errc operand of a failed comparison.
inline std::ostream& boost_test_print_type(std::ostream& os, errc e) {
    return os << make_error_code(e);
}

}  // namespace apollo_oauth

namespace apollo_oauth::store_test {

// Account ids and damaged records hold NUL bytes.
using namespace std::string_literals;

/// A fresh directory (mkdtemp) under the system temporary directory, removed with its contents.
class temp_dir {
public:
    temp_dir();
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    const std::filesystem::path& path() const noexcept { return path_; }

private:
    std::filesystem::path path_;
};

/// Sets the umask for one scope. A umask of 0 shows any mode the store forgot to restrict; one
/// that takes the owner's bits, a file the store created but forgot to make 0600.
class umask_guard {
public:
    explicit umask_guard(mode_t mask) : old_(::umask(mask)) {}
    ~umask_guard() { ::umask(old_); }
    umask_guard(const umask_guard&) = delete;
    umask_guard& operator=(const umask_guard&) = delete;

private:
    mode_t old_;
};

/// A file store over "tokens" in a fresh directory.
struct file_store_fixture {
    temp_dir dir;
    std::filesystem::path records = dir.path() / "tokens";
    boost::asio::io_context ioc;
    std::shared_ptr<token_store> store = make_file_token_store(ioc.get_executor(), records);
};

/// A record with every field set (times at whole seconds, the file store's resolution); the
/// tokens carry `tag` and the generation, padded to `token_size` bytes.
stored_tokens make_record(std::uint64_t generation, std::string_view tag, std::size_t token_size = 40);

/// Every field of `actual` equals the one of `expected`.
void check_same(const stored_tokens& actual, const stored_tokens& expected);

struct load_result {
    error_code ec;
    std::optional<stored_tokens> record;
};

/// Runs one operation to completion on `ioc` (the store's executor), checking that it completed.
load_result load(token_store& store, boost::asio::io_context& ioc, const std::string& account);
error_code save(token_store& store, boost::asio::io_context& ioc, const std::string& account,
                stored_tokens record, std::uint64_t expected_generation);
error_code commit(token_store& store, boost::asio::io_context& ioc, const std::string& account,
                  const std::string& holder, stored_tokens record, std::uint64_t expected_generation);

/// The file names in `dir`, sorted.
std::vector<std::string> list_files(const std::filesystem::path& dir);
/// How many of them are the store's temporary files.
std::size_t count_temp_files(const std::filesystem::path& dir);

/// The path of an account's record file in `dir`.
std::filesystem::path record_path(const std::filesystem::path& dir, std::string_view account);

std::string read_file(const std::filesystem::path& p);
void write_file(const std::filesystem::path& p, std::string_view bytes);

/// stat's permission bits (07777) of `p`.
unsigned mode_of(const std::filesystem::path& p);

/// Set while a test initiates an operation, on the initiating thread only: a handler that sees it
/// set ran inline.
inline thread_local bool initiating = false;

}  // namespace apollo_oauth::store_test

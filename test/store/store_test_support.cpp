// Helpers shared by the token store tests.
#include "store_test_support.hpp"

#include "store/record_files.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

#include <stdlib.h>
#include <sys/stat.h>

namespace apollo_oauth::store_test {

temp_dir::temp_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "apollo_store_XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error("mkdtemp failed");
    }
    path_ = pattern;
}

temp_dir::~temp_dir() {
    std::error_code ec;
    // A test may leave a directory without write permission behind: give it back first.
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all, ec);
    std::filesystem::remove_all(path_, ec);
}

stored_tokens make_record(std::uint64_t generation, std::string_view tag, std::size_t token_size) {
    auto token = [&](std::string_view kind) {
        std::string t = std::string(kind) + "-" + std::string(tag) + "-g" + std::to_string(generation) + "-";
        while (t.size() < token_size) {
            t += static_cast<char>('a' + t.size() % 26);
        }
        return secret_string(std::move(t));
    };
    stored_tokens r;
    r.generation = generation;
    r.tokens.access_token = token("access");
    r.tokens.refresh_token = token("refresh");
    r.tokens.token_type = "Bearer";
    r.tokens.scopes = {"read_user_profile", "contacts_search", "app_scopes \"quoted\" \\ \xc3\xa9"};
    // Times that differ by generation, without overflowing nanoseconds at generations near 2^53.
    const auto offset = static_cast<long>(generation % 1'000'000);
    r.tokens.expires_in = std::chrono::seconds(2'592'000 + offset);
    r.tokens.created_at = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000 + offset));
    r.tokens.expires_at = r.tokens.created_at + r.tokens.expires_in + std::chrono::seconds(3);
    return r;
}

void check_same(const stored_tokens& actual, const stored_tokens& expected) {
    BOOST_TEST(actual.generation == expected.generation);
    BOOST_TEST(actual.tokens.access_token.reveal() == expected.tokens.access_token.reveal());
    BOOST_TEST(actual.tokens.refresh_token.reveal() == expected.tokens.refresh_token.reveal());
    BOOST_TEST(actual.tokens.token_type == expected.tokens.token_type);
    BOOST_TEST(actual.tokens.scopes == expected.tokens.scopes, boost::test_tools::per_element());
    BOOST_TEST(actual.tokens.expires_in.count() == expected.tokens.expires_in.count());
    BOOST_TEST(actual.tokens.created_at.time_since_epoch().count() ==
               expected.tokens.created_at.time_since_epoch().count());
    BOOST_TEST(actual.tokens.expires_at.time_since_epoch().count() ==
               expected.tokens.expires_at.time_since_epoch().count());
}

namespace {

// Initiates with `initiating` set, then runs `ioc` until it runs out of work; the handler must
// have set `done` by then.
template <class Initiate>
void initiate_and_run(boost::asio::io_context& ioc, const bool& done, Initiate initiate) {
    initiating = true;
    initiate();
    initiating = false;
    ioc.restart();
    ioc.run();
    BOOST_REQUIRE(done);
}

}  // namespace

load_result load(token_store& store, boost::asio::io_context& ioc, const std::string& account) {
    load_result result;
    bool done = false;
    initiate_and_run(ioc, done, [&] {
        store.async_load(account, [&](error_code ec, std::optional<stored_tokens> record) {
            BOOST_TEST(!initiating);
            result = {ec, std::move(record)};
            done = true;
        });
    });
    return result;
}

error_code save(token_store& store, boost::asio::io_context& ioc, const std::string& account,
                stored_tokens record, std::uint64_t expected_generation) {
    error_code result;
    bool done = false;
    initiate_and_run(ioc, done, [&] {
        store.async_save(account, std::move(record), expected_generation, [&](error_code ec) {
            BOOST_TEST(!initiating);
            result = ec;
            done = true;
        });
    });
    return result;
}

error_code commit(token_store& store, boost::asio::io_context& ioc, const std::string& account,
                  const std::string& holder, stored_tokens record, std::uint64_t expected_generation) {
    error_code result;
    bool done = false;
    initiate_and_run(ioc, done, [&] {
        store.async_commit(account, holder, std::move(record), expected_generation, [&](error_code ec) {
            BOOST_TEST(!initiating);
            result = ec;
            done = true;
        });
    });
    return result;
}

std::vector<std::string> list_files(const std::filesystem::path& dir) {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
}

std::size_t count_temp_files(const std::filesystem::path& dir) {
    const auto names = list_files(dir);
    return static_cast<std::size_t>(std::count_if(names.begin(), names.end(), [](const std::string& n) {
        return store::temp_file_key(n).has_value();
    }));
}

std::filesystem::path record_path(const std::filesystem::path& dir, std::string_view account) {
    return dir / store::record_file_name(store::account_key(account));
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) {
        throw std::runtime_error("cannot read " + p.string());
    }
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::filesystem::path& p, std::string_view bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) {
        throw std::runtime_error("cannot write " + p.string());
    }
}

unsigned mode_of(const std::filesystem::path& p) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) {
        throw std::runtime_error("cannot stat " + p.string());
    }
    return st.st_mode & 07777;
}

}  // namespace apollo_oauth::store_test

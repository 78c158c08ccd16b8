#include "secret_log.hpp"

#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>

namespace apollo_oauth::test::secret_log {

namespace {

std::mutex mutex;
std::set<std::string>& secrets() {
    static std::set<std::string> all;
    return all;
}

// At the end of the run, writes the secrets to $APOLLO_OAUTH_SECRETS_FILE (one a line) when set.
struct writer {
    writer() = default;
    ~writer() {
        const char* path = std::getenv("APOLLO_OAUTH_SECRETS_FILE");
        if (!path) {
            return;
        }
        std::lock_guard lock{mutex};
        std::ofstream out{path, std::ios::trunc};
        for (const auto& s : secrets()) {
            out << s << '\n';
        }
    }
};

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(writer);

void record_all(const std::vector<std::string>& list) {
    std::lock_guard lock{mutex};
    secrets().insert(list.begin(), list.end());
}

void note(std::string_view line) {
    std::lock_guard lock{mutex};
    std::cout << "[note] " << line << std::endl;
}

}  // namespace apollo_oauth::test::secret_log

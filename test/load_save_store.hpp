// load_save_store: a token store as an application would write one over its own database, with
// async_load and async_save only (a map under a mutex; async_save compare-and-set on the
// generation, as token_store.hpp's contract asks), every coordination operation left to
// token_store's defaults. Used by the store tests (test/store/default_lease_test.cpp) and the
// cache's (test/integration/cache_custom_store_tests.cpp).
#pragma once

#include <apollo_oauth/token_store.hpp>

#include <boost/asio/post.hpp>

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace apollo_oauth::test {

class load_save_store final : public token_store {
public:
    explicit load_save_store(boost::asio::any_io_executor ex) : ex_(std::move(ex)) {}

    void async_load(std::string account, load_handler handler) override {
        std::optional<stored_tokens> record;
        {
            const std::lock_guard lock{mutex_};
            if (const auto it = records_.find(account); it != records_.end()) {
                record = it->second;
            }
            if (hold_next_load_) {
                hold_next_load_ = false;
                held_.emplace_back(std::move(record), std::move(handler));
                return;
            }
        }
        boost::asio::post(ex_, [handler = std::move(handler), record = std::move(record)]() mutable {
            std::move(handler)(error_code{}, std::move(record));
        });
    }

    void async_save(std::string account, stored_tokens record, std::uint64_t expected_generation,
                    save_handler handler) override {
        error_code ec;
        {
            const std::lock_guard lock{mutex_};
            const auto it = records_.find(account);
            const std::uint64_t stored = it == records_.end() ? 0 : it->second.generation;
            if (record.generation <= expected_generation) {
                ec = errc::invalid_argument;  // a store never goes back
            } else if (stored != expected_generation) {
                ec = errc::generation_conflict;
            } else {
                records_.insert_or_assign(std::move(account), std::move(record));
            }
        }
        boost::asio::post(ex_, [handler = std::move(handler), ec]() mutable { std::move(handler)(ec); });
    }

    boost::asio::any_io_executor get_executor() const override { return ex_; }

    /// The generation stored for `account` (0: none).
    std::uint64_t stored_generation(const std::string& account) const {
        const std::lock_guard lock{mutex_};
        const auto it = records_.find(account);
        return it == records_.end() ? 0 : it->second.generation;
    }

    /// The next load reads the record at once, but answers only at release_held_loads(): a load
    /// whose answer is on its way while other operations run.
    void hold_next_load() {
        const std::lock_guard lock{mutex_};
        hold_next_load_ = true;
    }

    /// Answers the held loads with what they read.
    void release_held_loads() {
        std::vector<std::pair<std::optional<stored_tokens>, load_handler>> held;
        {
            const std::lock_guard lock{mutex_};
            held.swap(held_);
        }
        for (auto& [record, handler] : held) {
            boost::asio::post(ex_, [handler = std::move(handler), record = std::move(record)]() mutable {
                std::move(handler)(error_code{}, std::move(record));
            });
        }
    }

private:
    boost::asio::any_io_executor ex_;
    mutable std::mutex mutex_;
    std::map<std::string, stored_tokens> records_;
    bool hold_next_load_ = false;
    std::vector<std::pair<std::optional<stored_tokens>, load_handler>> held_;
};

}  // namespace apollo_oauth::test

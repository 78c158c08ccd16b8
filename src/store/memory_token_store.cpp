// make_memory_token_store: records in a map under a mutex.
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/post.hpp>

#include <mutex>
#include <unordered_map>

namespace apollo_oauth {
namespace {

class memory_token_store final : public token_store {
public:
    explicit memory_token_store(boost::asio::any_io_executor ex) : ex_(std::move(ex)) {}

    void async_load(std::string account, load_handler handler) override {
        std::optional<stored_tokens> record;
        {
            const std::lock_guard lock(mutex_);
            if (const auto it = records_.find(account); it != records_.end()) {
                record = it->second;  // a copy: the caller may change it without touching the store
            }
        }
        boost::asio::post(ex_, [handler = std::move(handler), record = std::move(record)]() mutable {
            std::move(handler)(error_code{}, std::move(record));
        });
    }

    void async_save(std::string account, stored_tokens record, std::uint64_t expected_generation,
                    save_handler handler) override {
        const error_code ec = compare_and_set(std::move(account), std::move(record), expected_generation);
        boost::asio::post(ex_, [handler = std::move(handler), ec]() mutable { std::move(handler)(ec); });
    }

    boost::asio::any_io_executor get_executor() const override { return ex_; }

private:
    error_code compare_and_set(std::string account, stored_tokens record, std::uint64_t expected_generation) {
        // Generations only grow: otherwise a record could come back to an old generation and let
        // a writer holding that old pair overwrite it.
        if (record.generation <= expected_generation) {
            return make_error_code(errc::invalid_argument);
        }
        const std::lock_guard lock(mutex_);
        const auto it = records_.find(account);
        const std::uint64_t stored = it == records_.end() ? 0 : it->second.generation;
        if (stored != expected_generation) {
            return make_error_code(errc::generation_conflict);
        }
        if (it == records_.end()) {
            records_.emplace(std::move(account), std::move(record));
        } else {
            it->second = std::move(record);
        }
        return {};
    }

    boost::asio::any_io_executor ex_;
    std::mutex mutex_;
    std::unordered_map<std::string, stored_tokens> records_;
};

}  // namespace

std::shared_ptr<token_store> make_memory_token_store(boost::asio::any_io_executor ex) {
    return std::make_shared<memory_token_store>(std::move(ex));
}

}  // namespace apollo_oauth

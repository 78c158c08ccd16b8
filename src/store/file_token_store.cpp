// make_file_token_store: record_directory's blocking calls moved to a private thread.
#include "store/record_directory.hpp"

#include <apollo_oauth/detail/async_support.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

namespace apollo_oauth {
namespace {

class file_token_store final : public token_store {
public:
    file_token_store(boost::asio::any_io_executor ex, std::filesystem::path directory)
        : ex_(std::move(ex)), directory_(std::move(directory)) {
        // Queued first, so it is done before any load or save of this store. Best effort: an
        // exception escaping a task would end the worker thread.
        boost::asio::post(worker_, [this] {
            try {
                directory_.prepare();
            } catch (...) {
            }
        });
    }

    // Every queued operation still runs (and posts its handler) before the thread is joined;
    // operations hold a raw `this` for that reason, and never the last reference to the store,
    // which would make the worker join itself.
    ~file_token_store() override { worker_.join(); }

    void async_load(std::string account, load_handler handler) override {
        boost::asio::post(worker_, [this, work = tracked_executor(), account = std::move(account),
                                    handler = std::move(handler)]() mutable {
            std::optional<stored_tokens> record;
            error_code ec;
            try {
                ec = directory_.load(account, record);
            } catch (...) {  // bad_alloc, or the CSPRNG / SHA-256 failing
                ec = make_error_code(errc::store_failure);
                record.reset();
            }
            boost::asio::post(work, [handler = std::move(handler), ec, record = std::move(record)]() mutable {
                std::move(handler)(ec, std::move(record));
            });
        });
    }

    void async_save(std::string account, stored_tokens record, std::uint64_t expected_generation,
                    save_handler handler) override {
        boost::asio::post(worker_, [this, work = tracked_executor(), account = std::move(account),
                                    record = std::move(record), expected_generation,
                                    handler = std::move(handler)]() mutable {
            error_code ec;
            try {
                ec = directory_.save(account, record, expected_generation);
            } catch (...) {
                ec = make_error_code(errc::store_failure);
            }
            boost::asio::post(work, [handler = std::move(handler), ec]() mutable { std::move(handler)(ec); });
        });
    }

    boost::asio::any_io_executor get_executor() const override { return ex_; }

    void async_acquire(std::string account, std::string holder, std::uint64_t known_generation,
                       std::chrono::milliseconds ttl, acquire_handler handler) override {
        run(std::move(handler), [this, account = std::move(account), holder = std::move(holder),
                                 known_generation, ttl](error_code& ec) {
            lease_outcome out;
            ec = directory_.acquire(account, holder, known_generation, ttl, out);
            return out;
        });
    }

    void async_mark_sent(std::string account, std::string holder, std::uint64_t generation,
                         std::chrono::milliseconds ttl, lease_handler handler) override {
        run_void(std::move(handler),
                 [this, account = std::move(account), holder = std::move(holder), generation, ttl] {
                     return directory_.touch(account, holder, generation, ttl, true);
                 });
    }

    void async_renew(std::string account, std::string holder, std::uint64_t generation,
                     std::chrono::milliseconds ttl, lease_handler handler) override {
        run_void(std::move(handler),
                 [this, account = std::move(account), holder = std::move(holder), generation, ttl] {
                     return directory_.touch(account, holder, generation, ttl, false);
                 });
    }

    void async_commit(std::string account, std::string holder, stored_tokens record,
                      std::uint64_t expected_generation, save_handler handler) override {
        run_void(std::move(handler), [this, account = std::move(account), holder = std::move(holder),
                                      record = std::move(record), expected_generation] {
            return directory_.commit(account, holder, record, expected_generation);
        });
    }

    void async_release(std::string account, std::string holder, lease_handler handler) override {
        run_void(std::move(handler), [this, account = std::move(account), holder = std::move(holder)] {
            directory_.release(account, holder);
            return error_code{};
        });
    }

    void async_mark_reauthorization(std::string account, std::uint64_t generation,
                                    lease_handler handler) override {
        run_void(std::move(handler), [this, account = std::move(account), generation] {
            return directory_.mark_reauthorization(account, generation);
        });
    }

private:
    // Runs `work` on the private thread and posts its result to the caller's executor.
    template <class Handler, class Work>
    void run(Handler handler, Work work) {
        boost::asio::post(worker_, [done_ex = tracked_executor(), handler = std::move(handler),
                                    fn = std::move(work)]() mutable {
            error_code ec;
            decltype(fn(ec)) result{};
            try {
                result = fn(ec);
            } catch (...) {
                ec = make_error_code(errc::store_failure);
            }
            boost::asio::post(done_ex,
                              [handler = std::move(handler), ec, result = std::move(result)]() mutable {
                                  std::move(handler)(ec, std::move(result));
                              });
        });
    }

    template <class Handler, class Work>
    void run_void(Handler handler, Work work) {
        boost::asio::post(worker_, [done_ex = tracked_executor(), handler = std::move(handler),
                                    fn = std::move(work)]() mutable {
            error_code ec;
            try {
                ec = fn();
            } catch (...) {
                ec = make_error_code(errc::store_failure);
            }
            boost::asio::post(done_ex,
                              [handler = std::move(handler), ec]() mutable { std::move(handler)(ec); });
        });
    }

    // Keeps the caller's io_context from running out of work while the file I/O is pending.
    boost::asio::any_io_executor tracked_executor() const { return detail::track_work(ex_); }

    boost::asio::any_io_executor ex_;
    store::record_directory directory_;
    boost::asio::thread_pool worker_{1};
};

}  // namespace

std::shared_ptr<token_store> make_file_token_store(boost::asio::any_io_executor ex,
                                                   std::filesystem::path directory) {
    return std::make_shared<file_token_store>(std::move(ex), std::move(directory));
}

}  // namespace apollo_oauth

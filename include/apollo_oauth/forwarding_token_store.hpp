// forwarding_token_store: a token_store that passes every operation on to another store. A
// decorator (metrics, logging, a notice when a lease is busy, fault injection in tests) derives
// from it and overrides only the operations it adds something to.
#pragma once

#include <apollo_oauth/token_store.hpp>

#include <memory>
#include <utility>

namespace apollo_oauth {

class forwarding_token_store : public token_store {
public:
    explicit forwarding_token_store(std::shared_ptr<token_store> inner) : inner_(std::move(inner)) {}

    void async_load(std::string account, load_handler handler) override {
        inner_->async_load(std::move(account), std::move(handler));
    }
    void async_save(std::string account, stored_tokens record, std::uint64_t expected_generation,
                    save_handler handler) override {
        inner_->async_save(std::move(account), std::move(record), expected_generation, std::move(handler));
    }
    void async_acquire(std::string account, std::string holder, std::uint64_t known_generation,
                       std::chrono::milliseconds ttl, acquire_handler handler) override {
        inner_->async_acquire(std::move(account), std::move(holder), known_generation, ttl,
                              std::move(handler));
    }
    void async_mark_sent(std::string account, std::string holder, std::uint64_t generation,
                         std::chrono::milliseconds ttl, lease_handler handler) override {
        inner_->async_mark_sent(std::move(account), std::move(holder), generation, ttl, std::move(handler));
    }
    void async_renew(std::string account, std::string holder, std::uint64_t generation,
                     std::chrono::milliseconds ttl, lease_handler handler) override {
        inner_->async_renew(std::move(account), std::move(holder), generation, ttl, std::move(handler));
    }
    void async_commit(std::string account, std::string holder, stored_tokens record,
                      std::uint64_t expected_generation, save_handler handler) override {
        inner_->async_commit(std::move(account), std::move(holder), std::move(record), expected_generation,
                             std::move(handler));
    }
    void async_release(std::string account, std::string holder, lease_handler handler) override {
        inner_->async_release(std::move(account), std::move(holder), std::move(handler));
    }
    void async_mark_reauthorization(std::string account, std::uint64_t generation,
                                    lease_handler handler) override {
        inner_->async_mark_reauthorization(std::move(account), generation, std::move(handler));
    }
    void async_wait_for_change(std::string account, std::uint64_t known_generation,
                               std::chrono::milliseconds max_wait, load_handler handler) override {
        inner_->async_wait_for_change(std::move(account), known_generation, max_wait, std::move(handler));
    }
    boost::asio::any_io_executor get_executor() const override { return inner_->get_executor(); }

protected:
    /// The store every operation goes to.
    token_store& inner() const noexcept { return *inner_; }

private:
    std::shared_ptr<token_store> inner_;
};

}  // namespace apollo_oauth

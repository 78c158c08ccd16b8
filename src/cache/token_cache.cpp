#include <apollo_oauth/token_cache.hpp>

#include "cache/cache_impl.hpp"
#include "client_impl.hpp"

namespace apollo_oauth {

namespace detail {

std::shared_ptr<cache_impl> impl_of(const token_cache& c) noexcept {
    return c.impl_;
}

void cache_get_erased(const std::shared_ptr<cache_impl>& impl, std::string_view account,
                      boost::asio::any_io_executor handler_ex, access_token_handler handler,
                      diagnostics* diag, const read_miss* miss) {
    impl->get(account, waiter{0, std::move(handler_ex), std::move(handler)}, diag, miss);
}

void cache_store_erased(const std::shared_ptr<cache_impl>& impl, std::string account, token_set tokens,
                        boost::asio::any_io_executor handler_ex, store_result_handler handler) {
    impl->store(std::move(account), std::move(tokens), std::move(handler_ex), std::move(handler));
}

void cache_shutdown_erased(const std::shared_ptr<cache_impl>& impl, std::chrono::milliseconds deadline,
                           boost::asio::any_io_executor handler_ex, store_result_handler handler) {
    impl->shutdown(deadline, std::move(handler_ex), std::move(handler));
}

bool cache_try_get_into(const std::shared_ptr<cache_impl>& impl, std::string_view account, access_token& out,
                        read_miss* miss) {
    return impl->try_get(account, out, miss);
}

handler_pool* cache_handler_pool(const std::shared_ptr<cache_impl>& impl) noexcept {
    return impl->pool();
}

boost::asio::any_io_executor cache_executor(const std::shared_ptr<cache_impl>& impl) noexcept {
    return impl->executor();
}

namespace {

// The client as a token_refresher: its shared state, so the client object may go first.
class client_refresher final : public token_refresher {
public:
    explicit client_refresher(std::shared_ptr<client_impl> impl) : impl_(std::move(impl)) {}

    void async_refresh(secret_string refresh_token, std::vector<std::string> scopes, diagnostics* diag,
                       refresh_handler handler) override {
        refresh_erased(impl_, std::move(refresh_token), std::move(scopes), diag, impl_->executor(),
                       std::move(handler));
    }

private:
    std::shared_ptr<client_impl> impl_;
};

}  // namespace
}  // namespace detail

std::shared_ptr<token_refresher> token_cache::refresher_of(client& oauth) {
    return std::make_shared<detail::client_refresher>(detail::impl_of(oauth));
}

std::shared_ptr<token_refresher> make_client_refresher(client& oauth) {
    return token_cache::refresher_of(oauth);
}

token_cache::token_cache(client& oauth, std::shared_ptr<token_store> store, cache_config config)
    : impl_(std::make_shared<detail::cache_impl>(detail::impl_of(oauth)->executor(), refresher_of(oauth),
                                                 std::move(store), std::move(config))) {}

token_cache::token_cache(boost::asio::any_io_executor ex, std::shared_ptr<token_refresher> refresher,
                         std::shared_ptr<token_store> store, cache_config config)
    : impl_(std::make_shared<detail::cache_impl>(std::move(ex), std::move(refresher), std::move(store),
                                                 std::move(config))) {}

token_cache::~token_cache() {
    impl_->stop();
}

std::optional<access_token> token_cache::try_get(const std::string& account) {
    return impl_->try_get(account);
}

void token_cache::invalidate(const std::string& account, const access_token& rejected) {
    impl_->invalidate(account, rejected);
}

std::size_t token_cache::refreshes_in_flight() const {
    return impl_->refreshes_in_flight();
}

cache_metrics token_cache::metrics() const {
    return impl_->metrics();
}

void token_cache::stop() {
    impl_->stop();
}

}  // namespace apollo_oauth

#include <apollo_oauth/token_cache.hpp>

#include "cache/cache_impl.hpp"
#include "client_impl.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>

namespace apollo_oauth {

namespace detail {

void cache_get_erased(const std::shared_ptr<cache_impl>& impl, std::string account,
                      boost::asio::any_io_executor handler_ex, access_token_handler handler) {
    impl->get(std::move(account), waiter{impl->next_waiter_id(), std::move(handler_ex), std::move(handler)});
}

void cache_store_erased(const std::shared_ptr<cache_impl>& impl, std::string account, token_set tokens,
                        boost::asio::any_io_executor handler_ex, store_result_handler handler) {
    impl->store(std::move(account), std::move(tokens), std::move(handler_ex), std::move(handler));
}

std::optional<access_token> cache_try_get(const std::shared_ptr<cache_impl>& impl,
                                          const std::string& account) {
    return impl->try_get(account);
}

boost::asio::any_io_executor cache_executor(const std::shared_ptr<cache_impl>& impl) noexcept {
    return impl->executor();
}

}  // namespace detail

token_cache::token_cache(client& oauth, std::shared_ptr<token_store> store, cache_config config)
    : impl_(std::make_shared<detail::cache_impl>(detail::impl_of(oauth), std::move(store), std::move(config))) {}

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

void token_cache::stop() {
    impl_->stop();
}

}  // namespace apollo_oauth

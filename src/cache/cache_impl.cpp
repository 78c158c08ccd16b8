#include "cache/cache_impl.hpp"

#include "client_impl.hpp"

#include <boost/asio/post.hpp>

#include <functional>
#include <random>

namespace apollo_oauth::detail {

namespace asio = boost::asio;

namespace {

double uniform_jitter_draw() {
    thread_local std::minstd_rand engine{std::random_device{}()};
    return std::uniform_real_distribution<double>{-1.0, 1.0}(engine);
}

constexpr unsigned max_store_attempts = 4;

}  // namespace

cache_impl::cache_impl(std::shared_ptr<client_impl> oauth, std::shared_ptr<token_store> store,
                       cache_config config)
    : oauth_(std::move(oauth)), store_(std::move(store)), config_(std::move(config)) {
    if (!config_.clock) {
        config_.clock = [] { return std::chrono::system_clock::now(); };
    }
}

const asio::any_io_executor& cache_impl::executor() const noexcept {
    return oauth_->executor();
}

cache_impl::shard& cache_impl::shard_for(std::size_t hash) noexcept {
    // The shard comes from the hash's high bits (Fibonacci hashing), the map's bucket from all of
    // them modulo a prime: the two choices stay independent.
    static_assert(std::tuple_size_v<decltype(shards_)> == 64);
    return shards_[(hash * 0x9E3779B97F4A7C15ull) >> 58];
}

cache_impl::shard& cache_impl::shard_for(const std::string& account) {
    return shard_for(account_hash{}(account));
}

std::shared_ptr<cache_entry> cache_impl::find_or_create(shard& s, const std::string& account) {
    auto& slot = s.entries[account];
    if (!slot) {
        slot = std::make_shared<cache_entry>();
        slot->account = account;
    }
    return slot;
}

sansio::sys_time cache_impl::now() const {
    return config_.clock();
}

sansio::entry_snapshot cache_impl::snapshot(const cache_entry& e) const {
    return {.has_tokens = e.current.has_value(),
            .loading = e.loading,
            .refreshing = e.refreshing,
            .invalidated = e.invalidated,
            .reauth_required = e.reauth_required,
            .usable_until = e.usable_until,
            .refresh_at = e.refresh_at,
            .retry_not_before = e.retry_not_before};
}

access_token cache_impl::token_of(const cache_entry& e) const {
    return {e.current->tokens.access_token, e.current->generation};
}

waiter_batch cache_impl::take_waiters(cache_entry& e) {
    waiter_batch batch{.list = std::move(e.waiters), .one_executor = e.waiters_share_executor};
    e.waiters.clear();
    e.waiters_share_executor = true;
    return batch;
}

// Makes `record` the entry's pair and derives its deadlines.
void cache_impl::adopt(cache_entry& e, stored_tokens record) {
    const auto& t = record.tokens;
    const auto issued_at = t.expires_at - t.expires_in;
    e.usable_until = t.expires_at - sansio::effective_margin(config_.expiry_margin, t.expires_in);
    e.refresh_at = sansio::refresh_ahead_point(issued_at, t.expires_in, config_.refresh_ahead_fraction,
                                               config_.refresh_ahead_jitter, uniform_jitter_draw());
    e.current = std::move(record);
    e.invalidated = false;
    e.reauth_required = false;
    e.consecutive_failures = 0;
    e.retry_not_before = {};
    e.last_error = {};
}

cache_impl::follow_up cache_impl::admit(const std::shared_ptr<cache_entry>& e, waiter& w, lock_type& lock) {
    using sansio::get_action;
    const auto enqueue = [&] {
        if (w.slot.is_connected()) {
            struct canceller {
                std::weak_ptr<cache_impl> cache;
                std::weak_ptr<cache_entry> entry;
                std::uint64_t id;
                // Any cancellation type: leaving the queue has no side effect on the refresh.
                void operator()(asio::cancellation_type) const {
                    auto c = cache.lock();
                    auto en = entry.lock();
                    if (c && en) {
                        c->cancel_waiter(en->account, id);
                    }
                }
            };
            w.slot.template emplace<canceller>(weak_from_this(), e, w.id);
        }
        // Noted while the node is hot, so that waking a herd need not walk the list to group it.
        if (e->waiters_share_executor && !e->waiters.empty() && !(e->waiters.front().ex == w.ex)) {
            e->waiters_share_executor = false;
        }
        e->waiters.push_back(std::move(w));
    };
    if (stopped_) {
        // Checked under the shard lock: stop() takes every shard's lock after setting the flag,
        // so no waiter can slip into a queue it has already emptied.
        lock.unlock();
        complete_one(std::move(w), errc::shutting_down, {});
        return follow_up::none;
    }
    switch (sansio::decide_get(snapshot(*e), now())) {
        case get_action::serve: {
            auto token = token_of(*e);
            lock.unlock();
            complete_one(std::move(w), {}, std::move(token));
            return follow_up::none;
        }
        case get_action::serve_and_refresh_ahead: {
            auto token = token_of(*e);
            e->refreshing = true;
            lock.unlock();
            complete_one(std::move(w), {}, std::move(token));
            return follow_up::refresh;
        }
        case get_action::start_load:
            e->loading = true;
            enqueue();
            return follow_up::load;
        case get_action::join_load:
        case get_action::join_refresh:
            enqueue();
            return follow_up::none;
        case get_action::start_refresh:
            e->refreshing = true;
            enqueue();
            return follow_up::refresh;
        case get_action::fail_backoff: {
            auto ec = e->last_error;
            lock.unlock();
            complete_one(std::move(w), ec, {});
            return follow_up::none;
        }
        case get_action::fail_reauthorization:
            lock.unlock();
            complete_one(std::move(w), errc::reauthorization_required, {});
            return follow_up::none;
    }
    return follow_up::none;
}

void cache_impl::get(std::string account, waiter w) {
    auto& s = shard_for(account);
    lock_type lock{s.mutex};
    auto e = find_or_create(s, account);
    const auto next = admit(e, w, lock);
    if (next == follow_up::none) {
        return;
    }
    if (next == follow_up::load) {
        lock.unlock();
        return start_load(std::move(e));
    }
    // Refresh: read what it needs while the lock is still held (admit may have released it).
    if (!lock.owns_lock()) {
        lock.lock();
    }
    auto refresh_token = e->current->tokens.refresh_token;
    const auto base = e->current->generation;
    lock.unlock();
    start_refresh(std::move(e), std::move(refresh_token), base);
}

std::optional<access_token> cache_impl::try_get(const std::string& account) {
    if (stopped_) {
        return std::nullopt;
    }
    const hashed_account key{account, account_hash{}(account)};
    auto& s = shard_for(key.hash);
    lock_type lock{s.mutex};
    auto it = s.entries.find(key);
    if (it == s.entries.end()) {
        return std::nullopt;
    }
    auto& e = it->second;
    const auto action = sansio::decide_get(snapshot(*e), now());
    if (action != sansio::get_action::serve && action != sansio::get_action::serve_and_refresh_ahead) {
        return std::nullopt;
    }
    auto token = token_of(*e);
    if (action == sansio::get_action::serve_and_refresh_ahead) {
        e->refreshing = true;
        auto refresh_token = e->current->tokens.refresh_token;
        const auto base = e->current->generation;
        auto entry = e;  // the shard's map may change once it is unlocked
        lock.unlock();
        start_refresh(std::move(entry), std::move(refresh_token), base);
    }
    return token;
}

void cache_impl::invalidate(const std::string& account, const access_token& rejected) {
    auto& s = shard_for(account);
    std::lock_guard lock{s.mutex};
    auto it = s.entries.find(account);
    if (it == s.entries.end()) {
        return;
    }
    auto& e = *it->second;
    // Identity is the generation: only the pair that is current now can be invalidated, so the
    // 401s of requests that used an older token change nothing.
    if (e.current && e.current->generation == rejected.generation) {
        e.invalidated = true;
    }
}

void cache_impl::cancel_waiter(const std::string& account, std::uint64_t waiter_id) {
    auto& s = shard_for(account);
    lock_type lock{s.mutex};
    auto it = s.entries.find(account);
    if (it == s.entries.end()) {
        return;
    }
    auto& list = it->second->waiters;
    auto w = std::find_if(list.begin(), list.end(), [&](const waiter& x) { return x.id == waiter_id; });
    if (w == list.end()) {
        return;  // already being completed
    }
    waiter_list leaving;
    leaving.splice(leaving.end(), list, w);
    lock.unlock();
    complete_one(std::move(leaving.front()), asio::error::operation_aborted, {});
}

// ---- load -------------------------------------------------------------------------------------

void cache_impl::start_load(std::shared_ptr<cache_entry> e) {
    auto account = e->account;
    store_->async_load(std::move(account), [self = shared_from_this(), e = std::move(e)](
                                               error_code ec, std::optional<stored_tokens> record) mutable {
        self->on_loaded(std::move(e), ec, std::move(record));
    });
}

void cache_impl::on_loaded(std::shared_ptr<cache_entry> e, error_code ec,
                           std::optional<stored_tokens> record) {
    auto& s = shard_for(e->account);
    lock_type lock{s.mutex};
    e->loading = false;
    if (!ec && record && (!e->current || record->generation > e->current->generation)) {
        e->stored_generation = record->generation;
        adopt(*e, std::move(*record));
    }
    if (e->current) {
        // One decision for every waiter. They stay in the entry's list while it is made, so
        // their cancellation handlers (installed once, in get) keep finding them.
        using sansio::get_action;
        const auto action = sansio::decide_get(snapshot(*e), now());
        if (action == get_action::join_refresh) {
            return;
        }
        if (action == get_action::start_refresh) {
            e->refreshing = true;
            auto refresh_token = e->current->tokens.refresh_token;
            const auto base = e->current->generation;
            lock.unlock();
            return start_refresh(std::move(e), std::move(refresh_token), base);
        }
        auto waiting = take_waiters(*e);
        error_code result;
        access_token token;
        std::optional<std::pair<secret_string, std::uint64_t>> refresh_ahead;
        if (action == get_action::fail_backoff) {
            result = e->last_error;
        } else if (action == get_action::fail_reauthorization) {
            result = errc::reauthorization_required;
        } else {
            token = token_of(*e);
            if (action == get_action::serve_and_refresh_ahead) {
                e->refreshing = true;
                refresh_ahead.emplace(e->current->tokens.refresh_token, e->current->generation);
            }
        }
        lock.unlock();
        complete_all(std::move(waiting), result, token);
        if (refresh_ahead) {
            start_refresh(std::move(e), std::move(refresh_ahead->first), refresh_ahead->second);
        }
        return;
    }
    // Nothing stored (or the load failed): everyone hears it; the entry goes, so that a later call
    // looks again.
    auto waiting = take_waiters(*e);
    if (auto it = s.entries.find(e->account); it != s.entries.end() && it->second == e) {
        s.entries.erase(it);
    }
    lock.unlock();
    complete_all(std::move(waiting), ec ? ec : error_code{errc::unknown_account}, {});
}

// ---- refresh ----------------------------------------------------------------------------------

void cache_impl::start_refresh(std::shared_ptr<cache_entry> e, secret_string refresh_token,
                               std::uint64_t base_generation) {
    ++refreshes_in_flight_;
    if (refresh_token.empty()) {
        // A grant without a refresh token cannot be renewed: the same outcome as invalid_grant.
        return on_refreshed(std::move(e), base_generation, errc::invalid_grant, {}, {});
    }
    // Deadlines of the new pair count from the cache's clock at the send, like the client's own
    // expires_at does from the system clock; they differ only when a test moves the cache's clock.
    const auto sent_at = now();
    // Written by the client just before the handler runs: the server's Retry-After, if any.
    auto diag = std::make_shared<diagnostics>();
    auto* diag_ptr = diag.get();
    refresh_erased(oauth_, std::move(refresh_token), config_.refresh_scopes, diag_ptr, executor(),
                   [self = shared_from_this(), e = std::move(e), base_generation, sent_at,
                    diag = std::move(diag)](error_code ec, token_set tokens) mutable {
                       tokens.expires_at = sent_at + tokens.expires_in;
                       self->on_refreshed(std::move(e), base_generation, ec, std::move(tokens),
                                          diag->retry_after);
                   });
}

void cache_impl::on_refreshed(std::shared_ptr<cache_entry> e, std::uint64_t base_generation, error_code ec,
                              token_set tokens, std::optional<std::chrono::seconds> retry_after) {
    auto& s = shard_for(e->account);
    lock_type lock{s.mutex};
    const bool superseded = !e->current || e->current->generation != base_generation;
    if (!ec && !superseded) {
        // Persist before anyone sees it: the waiters stay queued until the write completes.
        stored_tokens record{std::move(tokens), base_generation + 1};
        const auto expected = e->stored_generation;
        lock.unlock();
        return persist_rotation(std::move(e), std::move(record), expected, base_generation);
    }
    e->refreshing = false;
    --refreshes_in_flight_;
    auto waiting = take_waiters(*e);
    bool grant_gone = false;
    access_token token;
    if (superseded && e->current) {
        // async_store put a newer pair meanwhile (a new authorization): it wins whatever became
        // of this refresh, and the waiters get it. The old grant's pair is not needed any more.
        token = token_of(*e);
        ec = {};
    } else if (ec == errc::invalid_grant) {
        grant_gone = !e->reauth_required;
        e->reauth_required = true;
        ec = errc::reauthorization_required;
    } else {
        e->last_error = ec;
        ++e->consecutive_failures;
        // A server's Retry-After (429, 503) is honoured up to backoff_max, so that a hostile value
        // cannot lock the account out for longer than the cache's own worst case.
        auto wait =
            sansio::backoff_after(e->consecutive_failures, config_.backoff_initial, config_.backoff_max);
        if (retry_after) {
            wait = std::max(wait, std::min<std::chrono::milliseconds>(*retry_after, config_.backoff_max));
        }
        e->retry_not_before = now() + wait;
    }
    const auto account = e->account;
    lock.unlock();
    complete_all(std::move(waiting), ec, token);
    if (grant_gone && config_.on_reauthorization_required) {
        config_.on_reauthorization_required(account);
    }
}

void cache_impl::persist_rotation(std::shared_ptr<cache_entry> e, stored_tokens record,
                                  std::uint64_t expected, std::uint64_t base_generation) {
    auto account = e->account;
    auto copy = record;
    store_->async_save(std::move(account), std::move(copy), expected,
                       [self = shared_from_this(), e = std::move(e), record = std::move(record),
                        base_generation](error_code ec) mutable {
                           self->on_rotation_persisted(std::move(e), std::move(record), base_generation, ec);
                       });
}

void cache_impl::on_rotation_persisted(std::shared_ptr<cache_entry> e, stored_tokens record,
                                       std::uint64_t base_generation, error_code ec) {
    auto& s = shard_for(e->account);
    lock_type lock{s.mutex};
    // async_store may have put a newer authorization meanwhile (its generation skips this one):
    // then that pair stays current, and this rotation of the old grant is dropped.
    const bool superseded = e->current->generation != base_generation;
    const bool adopted = !superseded;
    auto tokens_for_hook = record.tokens;
    if (adopted) {
        if (!ec) {
            e->stored_generation = record.generation;
        }
        // Used whether or not it was stored: Apollo has already revoked the old pair.
        adopt(*e, std::move(record));
    }
    e->refreshing = false;
    --refreshes_in_flight_;
    auto waiting = take_waiters(*e);
    const auto token = token_of(*e);
    const auto account = e->account;
    const bool failed = adopted && ec;
    if (failed) {
        ++e->store_failures;
        schedule_save_retry(e);
    }
    lock.unlock();
    complete_all(std::move(waiting), {}, token);
    if (failed) {
        notify_store_failure(account, ec);
    }
    if (adopted) {
        notify_rotation(account, tokens_for_hook);
    }
}

// ---- catch-up writes after a store failure ----------------------------------------------------

void cache_impl::schedule_save_retry(const std::shared_ptr<cache_entry>& e) {
    if (stopped_ || e->saving) {
        return;
    }
    if (!e->save_retry_timer) {
        e->save_retry_timer = std::make_unique<asio::steady_timer>(executor());
    }
    e->saving = true;
    e->save_retry_timer->expires_after(
        sansio::backoff_after(e->store_failures, config_.backoff_initial, config_.backoff_max));
    e->save_retry_timer->async_wait([self = shared_from_this(), e](error_code ec) mutable {
        if (ec) {
            return;  // the cache stopped
        }
        self->retry_save(std::move(e));
    });
}

void cache_impl::retry_save(std::shared_ptr<cache_entry> e) {
    auto& s = shard_for(e->account);
    lock_type lock{s.mutex};
    if (!e->dirty()) {
        e->saving = false;
        return;
    }
    auto record = *e->current;
    const auto expected = e->stored_generation;
    lock.unlock();
    auto account = e->account;
    store_->async_save(
        std::move(account), record, expected,
        [self = shared_from_this(), e = std::move(e), generation = record.generation](error_code ec) mutable {
            auto& shard = self->shard_for(e->account);
            lock_type relock{shard.mutex};
            e->saving = false;
            if (!ec) {
                e->stored_generation = std::max(e->stored_generation, generation);
                e->store_failures = 0;
                if (e->dirty()) {
                    self->schedule_save_retry(e);  // a newer rotation failed meanwhile
                }
                return;
            }
            if (ec == errc::generation_conflict) {
                // Another writer got there: learn what the store holds, then decide again
                // (dirty() is false once the store is at least as new as memory).
                relock.unlock();
                auto account = e->account;
                return self->store_->async_load(
                    std::move(account),
                    [self, e](error_code load_ec, std::optional<stored_tokens> now_stored) {
                        auto& sh = self->shard_for(e->account);
                        lock_type l{sh.mutex};
                        if (!load_ec && now_stored) {
                            e->stored_generation = now_stored->generation;
                        }
                        if (e->dirty()) {
                            ++e->store_failures;
                            self->schedule_save_retry(e);
                        }
                    });
            }
            ++e->store_failures;
            const auto account = e->account;
            self->schedule_save_retry(e);
            relock.unlock();
            self->notify_store_failure(account, ec);
        });
}

// ---- storing a new authorization --------------------------------------------------------------

void cache_impl::store(std::string account, token_set tokens, asio::any_io_executor ex,
                       store_result_handler handler) {
    if (stopped_) {
        auto ex_copy = ex;
        return asio::post(ex_copy, [h = std::move(handler)]() mutable { std::move(h)(errc::shutting_down); });
    }
    // The store's generation decides the next one, so load it first; compare-and-set then
    // guarantees no newer record is overwritten.
    auto account_copy = account;
    store_->async_load(
        std::move(account_copy),
        [self = shared_from_this(), account = std::move(account), tokens = std::move(tokens),
         ex = std::move(ex),
         handler = std::move(handler)](error_code ec, std::optional<stored_tokens> existing) mutable {
            if (ec && ec != errc::corrupt_record) {
                auto ex_copy = ex;
                return asio::post(ex_copy, [h = std::move(handler), ec]() mutable { std::move(h)(ec); });
            }
            const std::uint64_t expected = existing ? existing->generation : 0;
            self->store_with_generation(std::move(account), std::move(tokens), expected, 1, std::move(ex),
                                        std::move(handler));
        });
}

void cache_impl::store_with_generation(std::string account, token_set tokens, std::uint64_t expected,
                                       unsigned attempt, asio::any_io_executor ex,
                                       store_result_handler handler) {
    // Also newer than anything in memory (a failed write may have left memory ahead of the store).
    std::uint64_t generation = expected + 1;
    {
        auto& s = shard_for(account);
        std::lock_guard lock{s.mutex};
        if (auto it = s.entries.find(account); it != s.entries.end() && it->second->current) {
            // current + 1 belongs to a rotation that may be in flight; never share it.
            const auto& e = *it->second;
            generation = std::max(generation, e.current->generation + (e.refreshing ? 2 : 1));
        }
    }
    stored_tokens record{std::move(tokens), generation};
    auto copy = record;
    auto account_copy = account;
    store_->async_save(
        std::move(account_copy), std::move(copy), expected,
        [self = shared_from_this(), account = std::move(account), record = std::move(record), expected,
         attempt, ex = std::move(ex), handler = std::move(handler)](error_code ec) mutable {
            if (ec == errc::generation_conflict && attempt < max_store_attempts) {
                // Someone wrote meanwhile: learn their generation and go again.
                auto account_copy = account;
                return self->store_->async_load(
                    std::move(account_copy),
                    [self, account = std::move(account), tokens = std::move(record.tokens), attempt,
                     ex = std::move(ex), handler = std::move(handler)](
                        error_code, std::optional<stored_tokens> now_stored) mutable {
                        self->store_with_generation(std::move(account), std::move(tokens),
                                                    now_stored ? now_stored->generation : 0, attempt + 1,
                                                    std::move(ex), std::move(handler));
                    });
            }
            auto& s = self->shard_for(account);
            lock_type lock{s.mutex};
            auto e = self->find_or_create(s, account);
            if (!e->current || e->current->generation < record.generation) {
                auto tokens_for_hook = record.tokens;
                self->adopt(*e, record);
                if (!ec) {
                    e->stored_generation = record.generation;
                } else {
                    ++e->store_failures;
                    self->schedule_save_retry(e);
                }
                lock.unlock();
                self->notify_rotation(account, tokens_for_hook);
            } else {
                lock.unlock();
            }
            if (ec) {
                self->notify_store_failure(account, ec);
            }
            auto ex_copy = ex;
            asio::post(ex_copy, [h = std::move(handler), ec]() mutable { std::move(h)(ec); });
        });
}

// ---- shutdown and hooks -----------------------------------------------------------------------

void cache_impl::stop() {
    if (stopped_.exchange(true)) {
        return;
    }
    for (auto& s : shards_) {
        waiter_batch waiting{.list = {}, .one_executor = false};
        {
            std::lock_guard lock{s.mutex};
            for (auto& [account, e] : s.entries) {
                waiting.list.splice(waiting.list.end(), e->waiters);
                if (e->save_retry_timer) {
                    e->save_retry_timer->cancel();
                }
            }
        }
        complete_all(std::move(waiting), errc::shutting_down, {});
    }
}

void cache_impl::notify_rotation(const std::string& account, const token_set& tokens) const {
    if (config_.on_rotation) {
        config_.on_rotation(account, tokens);
    }
}

void cache_impl::notify_store_failure(const std::string& account, error_code ec) const {
    if (config_.on_store_failure) {
        config_.on_store_failure(account, ec);
    }
}

}  // namespace apollo_oauth::detail

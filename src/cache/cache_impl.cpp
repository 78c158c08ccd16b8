#include "cache/cache_impl.hpp"

#include "cache/account_hash.hpp"
#include "sansio/random.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <cassert>
#include <exception>
#include <random>

#include <unistd.h>

namespace apollo_oauth::detail {

namespace asio = boost::asio;

namespace {

/// A slot's snapshot as a packed rest's keeper holds it (views into `s`).
sansio::served_snapshot served_by(const token_snapshot& s) noexcept {
    return {.access_token = s.access_token.reveal(),
            .generation = s.generation,
            .usable_until = s.usable_until,
            .refresh_at = s.refresh_at};
}

/// An event of the stopping path (stop, flush, flush_deadline). It carries no time: the machine
/// reads none for these, and so the application's clock, which may throw, cannot keep an account
/// from being stopped or a shutdown from finishing.
sansio::event stopping_event(sansio::event::kind what) {
    sansio::event ev;
    ev.what = what;
    return ev;
}

double uniform_jitter_draw() {
    return 2.0 * sansio::jitter_draw() - 1.0;
}

/// What makes a cache's name in the store's leases its own: the process, a count of the
/// process's caches and random bytes (a pid is reused by the next process).
std::string unique_holder_part() {
    static std::atomic<std::uint64_t> caches{0};
    std::random_device rd;
    return "pid" + std::to_string(::getpid()) + "-cache" + std::to_string(++caches) + "-" +
           std::to_string(rd()) + std::to_string(rd());
}

constexpr std::size_t shard_count = std::size_t{1} << cache_impl::shard_bits;
/// Room for one event's actions (feed): the most one event brought in the integration suite is 5,
/// plus one per queued async_store call (a stop or a failed first load answers each).
constexpr std::size_t reserved_actions = 8;

// A hook's exception is the application's and goes no further. The hook runs in the middle of an
// action list whose every action the account's machine already counts as done: the timer of a
// write's retry, a store call's completion, the next save. Skipped, those would leave a rotated
// pair served and never stored, or a caller never answered.
template <class Hook, class... Args>
void call_hook(const Hook& hook, const Args&... args) noexcept {
    if (!hook) {
        return;
    }
    try {
        hook(args...);
    } catch (...) {
    }
}

}  // namespace

/// One shutdown (or stop) in progress: how many accounts still flush, who waits for it.
struct flush_operation {
    explicit flush_operation(const asio::any_io_executor& ex) : deadline(ex) {}
    std::mutex mutex;
    std::size_t remaining = shard_count;  // each shard counts itself until it has counted its accounts
    error_code result;
    std::vector<pending_store_call> handlers;
    asio::steady_timer deadline;
    bool done = false;
    /// Set by the deadline's handler before it posts its step to every shard. Each shard's flush
    /// step reads it too: when the io_context runs on another thread, the deadline (0 ms, say) can
    /// fire while start_flush is still posting, and its step then runs on a later shard's strand
    /// before that shard's flush step has given any account its share; it finds nothing there,
    /// and without this the shard's accounts would flush with no deadline at all.
    std::atomic<bool> deadline_passed{false};
};

namespace {

// What a store writes the holder into (the file store's lease, a line "holder=<label>", and
// "sent_by=" after a request marked sent) must read back: a label with a newline (one read from
// /etc/hostname, say) made the lease unreadable at once, so that every mark_sent failed with
// lease_lost and the refresh was never sent; a label of kilobytes overflowed the lease's read.
constexpr std::size_t max_holder_label = 256;

void check_holder_label(const std::string& label) {
    const auto refuse = [](const char* why) {
        throw boost::system::system_error(make_error_code(errc::invalid_configuration),
                                          std::string("cache_config::holder: ") + why);
    };
    if (label.size() > max_holder_label) {
        refuse("at most 256 bytes");
    }
    if (std::any_of(label.begin(), label.end(), [](char c) {
            const auto b = static_cast<unsigned char>(c);
            return b < 0x20 || b == 0x7f;
        })) {
        refuse("no control characters (a newline, say, read with a host name)");
    }
}

}  // namespace

cache_impl::cache_impl(asio::any_io_executor ex, std::shared_ptr<token_refresher> refresher,
                       std::shared_ptr<token_store> store, cache_config config)
    : ex_(std::move(ex)),
      refresher_(std::move(refresher)),
      store_(std::move(store)),
      config_(std::move(config)),
      custom_clock_(static_cast<bool>(config_.clock)) {
    if (!config_.clock) {
        config_.clock = [] { return std::chrono::system_clock::now(); };
    }
    if (!config_.steady_clock) {
        config_.steady_clock = [] { return std::chrono::steady_clock::now(); };
    }
    check_holder_label(config_.holder);
    // A configured holder is a label the cache makes its own. Two caches that shared one name
    // would each be granted the other's lease and send the same refresh token (a reload that
    // keeps its config; a process restarted after it marked its request sent, which its successor
    // would take for its own mark): the second request revokes the grant.
    config_.holder =
        config_.holder.empty() ? unique_holder_part() : config_.holder + "-" + unique_holder_part();
    fsm_config_ = {.expiry_margin = config_.expiry_margin,
                   .refresh_ahead_fraction = config_.refresh_ahead_fraction,
                   .refresh_ahead_jitter = config_.refresh_ahead_jitter,
                   .backoff_initial = config_.backoff_initial,
                   .backoff_max = config_.backoff_max,
                   .lease_ttl = config_.lease_ttl,
                   .max_store_attempts = 4};
    shards_.reserve(shard_count);
    for (std::size_t i = 0; i < shard_count; ++i) {
        shards_.push_back(std::make_unique<shard>(ex_, i));
    }
}

std::size_t cache_impl::hash_of(std::string_view account) noexcept {
    return account_hash(account);
}

cache_impl::shard& cache_impl::shard_for(std::size_t hash) noexcept {
    return *shards_[partition_of(hash, shard_bits)];
}

account_slot& cache_impl::slot_for(shard& s, const std::string& account, std::size_t hash) {
    if (account_slot* known = find_slot(s, account, hash)) {
        return *known;
    }
    return activate(s, account, hash, nullptr);
}

account_slot* cache_impl::find_slot(shard& s, const std::string& account, std::size_t hash) {
    if (account_slot* active = find_active(s, account)) {
        return active;
    }
    sansio::packed_rest* rest = rest_if_resting(account, hash);
    return rest != nullptr ? &activate(s, account, hash, rest) : nullptr;
}

account_slot& cache_impl::activate(shard& s, const std::string& account, std::size_t hash,
                                   sansio::packed_rest* rest) {
    // The rest is freed only once the woken slot is in the map: a failure on the way (no memory)
    // leaves the account resting as it was.
    auto made = rest != nullptr
                    ? std::make_unique<account_slot>(account, hash, fsm_config_, unpack(*rest, account, hash))
                    : std::make_unique<account_slot>(account, hash, fsm_config_);
    auto& slot = *s.active.emplace(account, std::move(made)).first->second;
    if (rest != nullptr) {
        rest->reset();
    }
    return slot;
}

sansio::account_rest cache_impl::unpack(const sansio::packed_rest& rest, const std::string& account,
                                        std::size_t hash) const {
    if (rest.holds_served_snapshot()) {
        return rest.unpack();
    }
    // Left out when the account rested because its snapshot slot served exactly that, and
    // nothing has written the slot since: only the account's machine publishes or withdraws.
    const auto kept = snapshots_.served_inline(account, hash);
    // The slot that took the rest's snapshot still holds it: the rest's packing saw it there,
    // and a slot is never freed before the table, nor given a longer token but by this machine.
    assert(kept.has_value());
    return rest.unpack(served_by(*kept));
}

sansio::packed_rest* cache_impl::rest_if_resting(const std::string& account, std::size_t hash) noexcept {
    sansio::packed_rest* rest = snapshots_.rest_of(account, hash);
    return rest != nullptr && *rest ? rest : nullptr;
}

bool cache_impl::knows(const shard& s, const std::string& account, std::size_t hash) {
    return s.active.contains(account) || rest_if_resting(account, hash) != nullptr;
}

account_slot* cache_impl::find_active(shard& s, const std::string& account) {
    const auto it = s.active.find(account);
    return it == s.active.end() ? nullptr : it->second.get();
}

void cache_impl::settle(shard& s, account_slot& slot, bool may_rest) {
    const auto it = s.active.find(slot.account);
    if (it == s.active.end() || it->second.get() != &slot) {
        return;
    }
    // An account the store does not know leaves nothing behind, so a later call looks again.
    if (slot.fsm.state() == sansio::account_state::unloaded && slot.fsm.quiescent() && slot.driver_quiet()) {
        s.active.erase(it);
        return;
    }
    if (!may_rest || !slot.idle()) {
        return;
    }
    // The rest is kept beside the account's snapshot. An account that never published (loaded
    // from the store after the cache stopped) has no slot there, and stays active.
    sansio::packed_rest* home = snapshots_.rest_of(slot.account, slot.hash);
    if (home == nullptr) {
        return;
    }
    auto rest = std::move(slot.fsm).rest();
    // What the slot serves is left out when it is exactly the rest's (an Apollo token's 43 bytes
    // and three numbers of every idle account): it is taken back from there when the account wakes.
    const auto kept = snapshots_.served_inline(slot.account, slot.hash);
    try {
        const auto keeper = kept ? served_by(*kept) : sansio::served_snapshot{};
        *home = sansio::packed_rest(rest, kept ? &keeper : nullptr);
    } catch (...) {
        // No memory for the block: the account stays active, as it was.
        // Nothing is lost and nothing needs telling, so the exception goes no further.
        slot.fsm = sansio::account_fsm(fsm_config_, std::move(rest));
        return;
    }
    s.active.erase(it);
}

// The application's clocks may throw. An event is often a completion's, carrying what must not be
// lost (a rotated pair): read as the system's clocks then, the event still reaches the machine.
std::chrono::system_clock::time_point cache_impl::wall_now() const noexcept {
    try {
        return config_.clock();
    } catch (...) {
        return std::chrono::system_clock::now();
    }
}

std::chrono::steady_clock::time_point cache_impl::steady_now() const noexcept {
    try {
        return config_.steady_clock();
    } catch (...) {
        return std::chrono::steady_clock::now();
    }
}

// A store or refresher call whose completion the machine waits for (its event,
// posted by the completion). `make_done()` builds the completion, `start(done)` makes the call
// with it, and `fail(done)` calls it with an error. Whatever throws on the way (an application's
// store, no memory for the completion's copy of the id, or for the call), the call is answered as
// failing, with a completion built afresh (the first may never have been made, or was taken by
// the call): the machine's own failure path runs (a write's retry timer armed, the callers told,
// the lease let go) and the busy count raised here comes down, where the machine would wait for
// good. The exception goes on: feed passes it on once its action list is through. The answer is
// still lost when the second completion cannot be made either, or when a completion cannot post
// its event to the strand (no memory twice in a row): the machine then waits for good.
template <class MakeDone, class Start, class Fail>
void cache_impl::start_call(account_slot& slot, MakeDone&& make_done, Start&& start, Fail&& fail) {
    ++slot.busy;
    try {
        start(make_done());
    } catch (...) {
        fail(make_done());
        throw;
    }
}

sansio::event cache_impl::make_event(sansio::event::kind what) const {
    sansio::event ev;
    ev.what = what;
    ev.now = wall_now();
    ev.steady_now = steady_now();
    ev.jitter_draw = uniform_jitter_draw();
    return ev;
}

// ---- entry points (any thread) ----------------------------------------------------------------

void cache_impl::get(std::string_view account, waiter w, diagnostics* diag, const read_miss* miss) {
    // Here, after the snapshot missed, the hot path pays nothing for it: a longer id is never
    // published, so every get of one comes this way.
    if (account.size() > max_account_id_bytes) {
        if (diag != nullptr) {
            diag->clear();
        }
        return complete_one(std::move(w), errc::invalid_argument, {});
    }
    if (auto slot = w.slot(); slot.is_connected()) {
        // An id only for a caller that can be cancelled (the canceller finds it by its id): one
        // atomic increment of a counter every thread shares fewer per caller of a herd.
        w.id = next_waiter_id();
        struct canceller {
            // A constructor, not an aggregate: Asio constructs it with parentheses (clang 14).
            canceller(std::weak_ptr<cache_impl> c, std::string a, std::uint64_t i)
                : cache(std::move(c)), account(std::move(a)), id(i) {}
            std::weak_ptr<cache_impl> cache;
            std::string account;
            std::uint64_t id;
            // Any cancellation type: leaving the queue has no side effect on the refresh. Posted
            // to the strand after the get itself, so it always finds (or misses) the waiter there.
            void operator()(asio::cancellation_type) const {
                if (auto c = cache.lock()) {
                    const auto hash = hash_of(account);
                    auto& s = c->shard_for(hash);
                    asio::post(s.strand,
                               [c, &s, account = account, id = id] { c->cancel_waiter(s, account, id); });
                }
            }
        };
        slot.template emplace<canceller>(weak_from_this(), std::string(account), w.id);
    }
    const auto hash = miss != nullptr ? miss->hash : hash_of(account);
    // A diagnostics& caller always meets the machine: it must be told what the server said.
    parking_lot* lot = nullptr;
    if (diag == nullptr) {
        lot = miss != nullptr && miss->lot != nullptr ? miss->lot : snapshots_.lot_of(account, hash);
    }
    if (lot == nullptr) {
        return post_get(std::string(account), hash, std::move(w), diag, nullptr);
    }
    const std::lock_guard lock{lot->mutex};
    if (lot->open) {
        // Another caller's get is on its way to the machine, or queued there: share its outcome.
        lot->parked.push(std::move(w));
        ++lot->ever_parked;
        ++metrics_.waiters;
        ++metrics_.waiting_now;
        return;
    }
    // This caller opens the lot, and posts while holding its lock: a caller that parks after it
    // and is then cancelled posts its cancellation to the strand after this get, so the machine
    // has always answered for the lot by the time the cancellation looks there.
    lot->open = true;
    try {
        post_get(std::string(account), hash, std::move(w), nullptr, lot);
    } catch (...) {
        lot->open = false;  // nobody will answer for it
        throw;
    }
}

void cache_impl::post_get(std::string account, std::size_t hash, waiter w, diagnostics* diag,
                          parking_lot* opened) {
    auto& s = shard_for(hash);
    // The caller's io_context keeps running while its get is on the way (waiters.hpp).
    auto work = track_work(w.ex);
    asio::post(s.strand, [self = shared_from_this(), &s, account = std::move(account), hash, w = std::move(w),
                          diag, opened, work = std::move(work)]() mutable {
        if (self->stopped_ && !self->knows(s, account, hash)) {
            if (opened != nullptr) {
                self->resolve_lot(*opened, errc::shutting_down, {});
            }
            return complete_one(std::move(w), errc::shutting_down, {});  // no machine for it now
        }
        std::optional<diag_waiter> arriving{diag_waiter{std::move(w), diag}};
        account_slot* slot = nullptr;
        sansio::event ev;
        std::optional<sansio::event> rejection;
        try {
            ev = self->make_event(sansio::event::kind::get);
            slot = &self->slot_for(s, account, hash);  // no memory for a new account's slot
            rejection = self->unheard_rejection(*slot);
        } catch (...) {
            // Nobody would answer for this caller or its lot: they, and those who parked behind
            // it, are told of an operation that did not happen (the exception leaves
            // io_context::run).
            complete_one(std::move(arriving->w), asio::error::operation_aborted, {});
            if (opened != nullptr) {
                self->resolve_lot(*opened, asio::error::operation_aborted, {});
            }
            throw;
        }
        if (opened != nullptr) {
            slot->lot = opened;  // the machine answers for the lot from now on
        }
        try {
            if (rejection) {
                self->feed(s, *slot, std::move(*rejection));
            }
            self->feed(s, *slot, std::move(ev), &arriving);
        } catch (...) {
            // The step threw before the machine's answer reached this caller (no memory for its
            // place in the queue, or for its copy of a long token): it is told here; destroyed
            // uncalled, it would wait for good. So are those parked behind it in the lot it
            // opened: the machine may have nothing in flight that would ever close the lot (a
            // serve that threw), and then every later caller that misses would park there too.
            if (arriving) {
                self->abandon_arrival(std::move(*arriving));
                if (opened != nullptr && slot->lot == opened) {
                    self->settle_lot(*slot, asio::error::operation_aborted, {});
                }
            }
            throw;
        }
        // A diagnostics& caller always comes here, even for a valid token: its account is not
        // set aside again after it, or the next such call would wake it, and waking and resting
        // cost an allocation and ~1,300 instructions per call. Such an account rests when its
        // next refresh or store ends (a plain get reaches the machine only when the snapshot
        // missed, so it rarely finds nothing to do).
        self->settle(s, *slot, /*may_rest=*/diag == nullptr);
    });
}

void cache_impl::abandon_arrival(diag_waiter arriving) noexcept {
    if (arriving.diag != nullptr) {
        arriving.diag->clear();
    }
    complete_one(std::move(arriving.w), asio::error::operation_aborted, {});
}

std::optional<sansio::event> cache_impl::unheard_rejection(const account_slot& slot) const {
    // invalidate() marks the token rejected at once and tells the machine through a posted event.
    // A get that was posted between the two would be served the rejected token, and through the
    // lot so would every caller parked behind it (the 401's own retry among them). So the machine
    // hears of the mark before the get, whichever was posted first; hearing it twice is harmless.
    // (The mark is never above what the table published: snapshot_table::withdraw_generation.)
    const auto& current = slot.fsm.current();
    if (!current || snapshots_.rejected_generation(slot.account, slot.hash) < current->generation) {
        return std::nullopt;
    }
    auto ev = make_event(sansio::event::kind::invalidate);
    ev.generation = current->generation;
    return ev;
}

void cache_impl::reject_without_telling_the_machine(const std::string& account, std::uint64_t generation) {
    snapshots_.withdraw_generation(account, hash_of(account), generation);
}

std::optional<access_token> cache_impl::try_get(const std::string& account) {
    // The token is read straight into the returned object (one name returned on every path, so
    // the return is elided): each move of a token costs a copy and a wipe of its buffer.
    std::optional<access_token> out{std::in_place};
    if (!try_get(account, *out)) {
        out.reset();
    }
    return out;
}

bool cache_impl::try_get(std::string_view account, access_token& out, read_miss* miss) {
    const auto hash = hash_of(account);
    if (stopped_.load(std::memory_order_relaxed)) {
        out = access_token{};
        if (miss != nullptr) {
            *miss = read_miss{hash, nullptr};
        }
        return false;
    }
    // The default clock is read coarsely here: the kernel's last tick, a few ms old, against a
    // 60 s margin. A test's injected clock is honoured as it is.
    const auto now = custom_clock_ ? config_.clock() : coarse_system_now();
    parking_lot* lot = nullptr;
    switch (snapshots_.read(account, hash, now, out, miss != nullptr ? &lot : nullptr)) {
        case snapshot_read::miss:  // the table emptied `out`
            if (miss != nullptr) {
                *miss = read_miss{hash, lot};
            }
            return false;
        case snapshot_read::refresh_due:
            // This reader holds the one claim of this snapshot: it starts the refresh-ahead.
            post_event(hash, std::string(account), make_event(sansio::event::kind::refresh_ahead));
            return true;
        case snapshot_read::fresh:
            return true;
    }
    return false;
}

void cache_impl::invalidate(const std::string& account, const access_token& rejected) {
    const auto hash = hash_of(account);
    // At once, so that the caller's next get misses and joins the refresh; the machine hears it
    // next, on the strand.
    snapshots_.withdraw_generation(account, hash, rejected.generation);
    auto ev = make_event(sansio::event::kind::invalidate);
    ev.generation = rejected.generation;
    post_event(hash, account, std::move(ev));
}

void cache_impl::store(std::string account, token_set tokens, asio::any_io_executor ex,
                       store_result_handler handler) {
    if (account.size() > max_account_id_bytes) {
        return asio::post(ex, [h = std::move(handler)]() mutable { std::move(h)(errc::invalid_argument); });
    }
    const auto hash = hash_of(account);
    auto& s = shard_for(hash);
    asio::post(
        s.strand, [self = shared_from_this(), &s, account = std::move(account), hash,
                   tokens = std::move(tokens), ex = std::move(ex), handler = std::move(handler)]() mutable {
            if (self->stopped_ && !self->knows(s, account, hash)) {
                auto ex_copy = ex;
                return asio::post(ex_copy,
                                  [h = std::move(handler)]() mutable { std::move(h)(errc::shutting_down); });
            }
            // The event first: a call queued for an event that never came would wait for good.
            account_slot* slot = nullptr;
            sansio::event ev;
            pending_store_call call{ex, std::move(handler)};
            try {
                ev = self->make_event(sansio::event::kind::store_requested);
                ev.tokens = std::move(tokens);
                // No memory for a new account's slot, or for the call's node (a list's push_back
                // leaves `call` as it was when it throws).
                slot = &self->slot_for(s, account, hash);
                slot->store_calls.push_back(std::move(call));
            } catch (...) {
                // Before the machine heard of it: the caller is told of an operation that did not
                // happen (the exception leaves io_context::run); destroyed uncalled, it would wait
                // for good.
                if (call.handler) {
                    asio::post(ex, [h = std::move(call.handler)]() mutable {
                        std::move(h)(asio::error::operation_aborted);
                    });
                }
                throw;
            }
            const auto taken_before = slot->fsm.counters().store_requests;
            try {
                self->feed(s, *slot, std::move(ev));
            } catch (...) {
                if (slot->fsm.counters().store_requests == taken_before) {
                    // The machine threw before it took the call (no memory to queue its pair, or
                    // to answer it): nothing will answer it, so it is told here, as above.
                    auto untaken = std::move(slot->store_calls.back());
                    slot->store_calls.pop_back();
                    asio::post(untaken.ex, [h = std::move(untaken.handler)]() mutable {
                        std::move(h)(asio::error::operation_aborted);
                    });
                }
                throw;
            }
            self->settle(s, *slot);
        });
}

cache_metrics cache_impl::metrics() const {
    const auto r = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    return {.refreshes = r(metrics_.refreshes),
            .rotations = r(metrics_.rotations),
            .adopted = r(metrics_.adopted),
            .refresh_failures = r(metrics_.refresh_failures),
            .waiters = r(metrics_.waiters),
            .waiting_now = r(metrics_.waiting_now),
            .store_failures = r(metrics_.store_failures),
            .reauthorizations = r(metrics_.reauthorizations)};
}

// ---- the strand side --------------------------------------------------------------------------

void cache_impl::post_event(std::size_t hash, std::string account, sansio::event ev) {
    auto& s = shard_for(hash);
    asio::post(s.strand, [self = shared_from_this(), &s, account = std::move(account), hash,
                          ev = std::move(ev)]() mutable {
        // Completions of operations this slot started find it (it is kept while busy); a
        // refresh-ahead or invalidate for an account never seen creates nothing.
        const bool completion =
            ev.what != sansio::event::kind::refresh_ahead && ev.what != sansio::event::kind::invalidate;
        account_slot* slot =
            completion ? &self->slot_for(s, account, hash) : self->find_slot(s, account, hash);
        if (slot == nullptr) {
            return;
        }
        if (completion && slot->busy > 0) {
            --slot->busy;
        }
        self->feed(s, *slot, std::move(ev));
        self->settle(s, *slot);
    });
}

void cache_impl::feed(shard& s, account_slot& slot, sansio::event ev, std::optional<diag_waiter>* arriving) {
    if (ev.what == sansio::event::kind::stop && slot.wait_cancel &&
        slot.fsm.state() == sansio::account_state::waiting_for_holder) {
        slot.wait_cancel->emit(asio::cancellation_type::total);  // do not wait out another's lease
    }
    const auto before = slot.fsm.counters();
    // Room for an event's actions before the machine hears it: pushed onto a list with no room, an
    // action could fail for want of memory after the machine had moved on (into loading, say),
    // and it would then wait for good for an answer to a call never made. Reserved once per shard
    // (the list keeps its room between events); failing here, nothing has happened yet.
    if (const auto room = reserved_actions + slot.fsm.queued_stores(); s.actions.capacity() < room) {
        s.actions.reserve(room);
    }
    // Taken, not borrowed: were a hook to feed this shard again from inside execute, the inner
    // feed would find the list empty and allocate its own.
    auto actions = std::move(s.actions);
    slot.fsm.resume(ev, actions);
    const auto& after = slot.fsm.counters();
    metrics_.refreshes += after.refreshes - before.refreshes;
    metrics_.rotations += after.rotations - before.rotations;
    metrics_.adopted += after.adopted - before.adopted;
    metrics_.refresh_failures += after.refresh_failures - before.refresh_failures;
    metrics_.store_failures += after.store_failures - before.store_failures;
    metrics_.reauthorizations += after.reauthorizations - before.reauthorizations;
    // Every action is carried out even when one throws (no memory to post a completion): the
    // machine counts them all as done, and one skipped could be a retry's timer or a caller's
    // answer. The first exception goes on once the list is through.
    std::exception_ptr first_failure;
    for (auto& a : actions) {
        try {
            execute(s, slot, a, arriving);
        } catch (...) {
            if (!first_failure) {
                first_failure = std::current_exception();
            }
        }
    }
    actions.clear();  // wipes any pair an action carried before the list waits for the next event
    s.actions = std::move(actions);
    if (first_failure) {
        std::rethrow_exception(first_failure);
    }
}

cache_impl::account_census cache_impl::census() const {
    account_census c;
    for (const auto& s : shards_) {
        c.active += s->active.size();
    }
    for (const auto& r : snapshots_.resting()) {
        ++c.resting;
        c.resting_with_their_token += snapshots_.rest_of(r.account, r.hash)->holds_served_snapshot();
    }
    return c;
}

std::uint64_t cache_impl::parked_in_lot(const std::string& account) {
    parking_lot* lot = snapshots_.lot_of(account, hash_of(account));
    if (lot == nullptr) {
        return 0;
    }
    const std::lock_guard lock{lot->mutex};
    return lot->ever_parked;
}

void cache_impl::resolve_lot(parking_lot& lot, error_code ec, const access_token& token) {
    waiter_queue parked;
    {
        const std::lock_guard lock{lot.mutex};
        lot.open = false;
        std::swap(parked, lot.parked);
    }
    metrics_.waiting_now -= parked.size();
    parked.complete_all(ec, token);
}

void cache_impl::settle_lot(account_slot& slot, error_code ec, const access_token& token) {
    if (slot.lot != nullptr) {
        resolve_lot(*std::exchange(slot.lot, nullptr), ec, token);
    }
}

void cache_impl::wake_waiters(account_slot& slot, error_code ec) {
    access_token token;
    if (!ec) {
        const auto& current = slot.fsm.current();
        token = {current->tokens.access_token, current->generation};
    }
    std::size_t woken = slot.diag_waiters.size();
    for (auto& d : slot.diag_waiters) {
        if (ec) {
            *d.diag = slot.last_refresh_diag ? *slot.last_refresh_diag : diagnostics{};
        } else {
            d.diag->clear();
        }
        complete_one(std::move(d.w), ec, token);
    }
    slot.diag_waiters.clear();
    woken += slot.waiters.size();
    metrics_.waiting_now -= woken;
    slot.waiters.complete_all(ec, token);
    // Closed in the same step as the queue is woken: a caller that comes after finds the lot
    // closed and goes to the machine, which serves it the pair these were woken with.
    settle_lot(slot, ec, token);
}

void cache_impl::cancel_waiter(shard& s, const std::string& account, std::uint64_t id) {
    account_slot* slot = find_active(s, account);
    if (slot == nullptr) {
        return;
    }
    // The caller is in one of three places: the machine's queue, the diagnostics callers, or
    // the lot the machine answers for.
    std::optional<waiter> leaving = slot->waiters.remove(id);
    if (!leaving) {
        const auto it = std::find_if(slot->diag_waiters.begin(), slot->diag_waiters.end(),
                                     [id](const diag_waiter& d) { return d.w.id == id; });
        if (it != slot->diag_waiters.end()) {
            leaving.emplace(std::move(it->w));
            slot->diag_waiters.erase(it);
        }
    }
    if (!leaving && slot->lot != nullptr) {
        const std::lock_guard lock{slot->lot->mutex};
        leaving = slot->lot->parked.remove(id);
    }
    if (leaving) {
        --metrics_.waiting_now;
        complete_one(std::move(*leaving), asio::error::operation_aborted, {});
    }
}

void cache_impl::execute(shard& s, account_slot& slot, sansio::action& a,
                         std::optional<diag_waiter>* arriving) {
    using k = sansio::action::kind;
    const auto hash = slot.hash;
    const auto& account = slot.account;
    // What start_call answers a call with when it cannot be made.
    const auto store_call_failed = [](auto done) { done(errc::store_failure); };
    switch (a.what) {
        case k::serve_waiter: {
            auto& d = **arriving;
            if (d.diag) {
                d.diag->clear();
            }
            const auto& current = slot.fsm.current();
            access_token token{current->tokens.access_token, current->generation};
            complete_one(std::move(d.w), {}, token);
            arriving->reset();
            // Those who parked behind this caller get what it got.
            return settle_lot(slot, {}, token);
        }
        case k::fail_waiter: {
            auto& d = **arriving;
            if (d.diag) {
                *d.diag = slot.last_refresh_diag ? *slot.last_refresh_diag : diagnostics{};
            }
            complete_one(std::move(d.w), a.ec, {});
            arriving->reset();
            return settle_lot(slot, a.ec, {});
        }
        case k::queue_waiter: {
            auto& d = **arriving;
            if (d.diag) {
                slot.diag_waiters.push_back(std::move(d));
            } else {
                slot.waiters.push(std::move(d.w));  // leaves the caller where it was when it throws
            }
            arriving->reset();
            ++metrics_.waiters;
            ++metrics_.waiting_now;
            return;  // the lot, if this caller opened it, stays open until the waiters are woken
        }
        case k::wake_waiters:
            return wake_waiters(slot, a.ec);
        case k::load: {
            const auto make_done = [&] {
                return [self = shared_from_this(), hash, account = std::string(account), purpose = a.purpose](
                           error_code ec, std::optional<stored_tokens> record) mutable {
                    auto ev = self->make_event(sansio::event::kind::loaded);
                    ev.ec = ec;
                    ev.record = std::move(record);
                    ev.purpose = purpose;
                    self->post_event(hash, std::move(account), std::move(ev));
                };
            };
            return start_call(
                slot, make_done, [&](auto done) { store_->async_load(account, std::move(done)); },
                [&](auto done) { done(errc::store_failure, std::nullopt); });
        }
        case k::acquire: {
            const auto make_done = [&] {
                return [self = shared_from_this(), hash, account = std::string(account)](
                           error_code ec, lease_outcome lease) mutable {
                    auto ev = self->make_event(sansio::event::kind::acquired);
                    ev.ec = ec;
                    ev.lease = std::move(lease);
                    self->post_event(hash, std::move(account), std::move(ev));
                };
            };
            return start_call(
                slot, make_done,
                [&](auto done) {
                    store_->async_acquire(account, config_.holder, a.generation, config_.lease_ttl,
                                          std::move(done));
                },
                [&](auto done) { done(errc::store_failure, lease_outcome{}); });
        }
        case k::mark_sent:
            return start_call(
                slot, [&] { return answer_with(sansio::event::kind::sent_marked, hash, account); },
                [&](auto done) {
                    store_->async_mark_sent(account, config_.holder, a.generation, config_.lease_ttl,
                                            std::move(done));
                },
                store_call_failed);
        case k::refresh: {
            ++refreshes_in_flight_;
            slot.last_refresh_diag.reset();
            // Deadlines of the new pair count from the cache's clock at the send, like the
            // client's own expires_at does from the system clock.
            const auto sent_at = wall_now();
            // The completion, with the diagnostics it reads, which the refresher fills.
            const auto make_done = [&] {
                auto diag = std::make_shared<diagnostics>();
                auto* diag_ptr = diag.get();
                return std::pair{
                    diag_ptr, [self = shared_from_this(), hash, account = std::string(account), sent_at,
                               diag = std::move(diag), &s](error_code ec, token_set tokens) mutable {
                        tokens.expires_at = sent_at + tokens.expires_in;
                        auto ev = self->make_event(sansio::event::kind::refreshed);
                        ev.ec = ec;
                        ev.tokens = std::move(tokens);
                        ev.retry_after = diag->retry_after;
                        asio::post(s.strand, [self, &s, hash, account = std::move(account),
                                              ev = std::move(ev), diag = std::move(diag)]() mutable {
                            --self->refreshes_in_flight_;
                            auto& slot = self->slot_for(s, account, hash);
                            if (slot.busy > 0) {
                                --slot.busy;
                            }
                            if (ev.ec) {
                                slot.last_refresh_diag = std::move(*diag);
                            }
                            self->feed(s, slot, std::move(ev));
                            self->settle(s, slot);
                        });
                    }};
            };
            // Not sent: a retryable failure, the pair kept (the machine backs off and tries again).
            return start_call(
                slot, make_done,
                [&](auto made) {
                    refresher_->async_refresh(a.record->tokens.refresh_token, config_.refresh_scopes,
                                              made.first, std::move(made.second));
                },
                [&](auto made) {
                    std::move(made.second)(
                        make_error_code(boost::system::errc::resource_unavailable_try_again), token_set{});
                });
        }
        case k::commit:
        case k::write_back: {
            // A write-back names no holder: it must leave this cache's lease alone (a refresh
            // cycle may hold it, with its request on the wire). A commit clears it.
            const bool under_lease = a.what == k::commit;
            return start_call(
                slot,
                [&] {
                    return answer_with(
                        under_lease ? sansio::event::kind::committed : sansio::event::kind::written_back,
                        hash, account, a.record->generation);
                },
                [&](auto done) {
                    store_->async_commit(account, under_lease ? config_.holder : std::string{}, *a.record,
                                         a.expected, std::move(done));
                },
                store_call_failed);
        }
        case k::save:
            return start_call(
                slot, [&] { return answer_with(sansio::event::kind::saved, hash, account); },
                [&](auto done) { store_->async_save(account, *a.record, a.expected, std::move(done)); },
                store_call_failed);
        case k::release: {
            // Its completion is the machine's: a flush waits for it (the process exits after the
            // shutdown, and a release never delivered leaves the account busy for every other
            // process until lease_ttl), and the slot, busy until then, is not set aside or
            // forgotten before it arrives. The completion holds the cache, as every store call's.
            return start_call(
                slot, [&] { return answer_with(sansio::event::kind::released, hash, account); },
                [&](auto done) { store_->async_release(account, config_.holder, std::move(done)); },
                store_call_failed);
        }
        case k::mark_reauthorization:
            return start_call(
                slot, [&] { return answer_with(sansio::event::kind::reauthorization_marked, hash, account); },
                [&](auto done) {
                    store_->async_mark_reauthorization(account, a.generation, std::move(done));
                },
                store_call_failed);
        case k::wait_for_change: {
            const auto make_done = [&] {
                return [self = shared_from_this(), hash, account = std::string(account)](
                           error_code ec, std::optional<stored_tokens> record) mutable {
                    auto ev = self->make_event(sansio::event::kind::changed);
                    ev.ec = ec;
                    ev.record = std::move(record);
                    self->post_event(hash, std::move(account), std::move(ev));
                };
            };
            return start_call(
                slot, make_done,
                [&](auto done) {
                    if (!slot.wait_cancel) {
                        slot.wait_cancel = std::make_unique<asio::cancellation_signal>();
                    }
                    store_->async_wait_for_change(
                        account, a.generation, a.delay,
                        asio::bind_cancellation_slot(slot.wait_cancel->slot(), std::move(done)));
                },
                [&](auto done) { done(errc::store_failure, std::nullopt); });
        }
        case k::schedule_store_retry:
            if (!slot.store_retry_timer) {
                slot.store_retry_timer = std::make_unique<asio::steady_timer>(ex_);
            }
            ++slot.busy;
            slot.store_retry_timer->expires_after(a.delay);
            // Answered operation_aborted when re-armed: the new wait is the retry.
            return slot.store_retry_timer->async_wait(
                answer_with(sansio::event::kind::store_retry_due, hash, account));
        case k::schedule_renew:
            if (!slot.renew_timer) {
                slot.renew_timer = std::make_unique<asio::steady_timer>(ex_);
            }
            ++slot.busy;
            slot.renew_timer->expires_after(a.delay);  // an armed wait completes with operation_aborted
            return slot.renew_timer->async_wait(answer_with(sansio::event::kind::renew_due, hash, account));
        case k::cancel_renew:
            if (slot.renew_timer) {
                slot.renew_timer->cancel();
            }
            return;
        case k::renew: {
            // Through start_call as every other store call the machine waits for (it was left out).
            // The answer carries back which of the machine's grants the renewal was sent under:
            // it may be posted after the grant of a later acquire (the store answers on its own
            // threads), and then says nothing about the lease that grant gave.
            return start_call(
                slot,
                [&] {
                    return answer_with(sansio::event::kind::renewed, hash, account, a.generation,
                                       a.lease_grant);
                },
                [&](auto done) {
                    store_->async_renew(account, config_.holder, a.generation, config_.lease_ttl,
                                        std::move(done));
                },
                store_call_failed);
        }
        case k::publish:
            // A pair is served again: what the server said to an earlier failed refresh no longer
            // describes the account (and would keep it from resting).
            slot.last_refresh_diag.reset();
            return snapshots_.publish(account, hash,
                                      token_snapshot{.access_token = a.record->tokens.access_token,
                                                     .generation = a.generation,
                                                     .usable_until = a.usable_until,
                                                     .refresh_at = a.refresh_at});
        case k::withdraw:
            return snapshots_.withdraw(account, hash);
        case k::notify_rotation:
            return call_hook(config_.on_rotation, account, a.record->tokens);
        case k::notify_store_failure:
            return call_hook(config_.on_store_failure, account, a.ec);
        case k::notify_reauthorization:
            return call_hook(config_.on_reauthorization_required, account);
        case k::complete_store: {
            if (slot.store_calls.empty()) {
                return;
            }
            auto& end = a.newest ? slot.store_calls.back() : slot.store_calls.front();
            auto call = std::move(end);
            if (a.newest) {
                slot.store_calls.pop_back();
            } else {
                slot.store_calls.pop_front();
            }
            auto ex = call.ex;
            return asio::post(ex, [h = std::move(call.handler), ec = a.ec]() mutable { std::move(h)(ec); });
        }
        case k::flush_done:
            if (slot.store_retry_timer) {
                slot.store_retry_timer->cancel();  // nothing left to write: do not hold the io_context
            }
            return finish_flush(slot, a.ec);
    }
}

// ---- stopping ---------------------------------------------------------------------------------

void cache_impl::finish_flush(account_slot& slot, error_code ec) {
    if (auto op = std::move(slot.flush)) {
        flush_share_done(op, ec);
    }
}

void cache_impl::flush_share_done(const std::shared_ptr<flush_operation>& op, error_code ec) noexcept {
    std::vector<pending_store_call> handlers;
    {
        const std::lock_guard lock{op->mutex};
        if (ec && !op->result) {
            op->result = ec;
        }
        if (--op->remaining != 0 || op->done) {
            return;
        }
        op->done = true;
        handlers = std::move(op->handlers);
    }
    op->deadline.cancel();
    for (auto& h : handlers) {
        auto ex = h.ex;
        asio::post(ex, [h = std::move(h.handler), ec = op->result]() mutable { std::move(h)(ec); });
    }
}

void cache_impl::end_flush_shares(shard& s, const std::shared_ptr<flush_operation>& op) {
    // Every share is reported even when ending it throws (no memory for its actions): one never
    // reported would leave async_shutdown waiting for good. The first exception goes on after.
    std::exception_ptr failure;
    // A resting account has nothing unstored: only active ones may still hold a share.
    for (auto it = s.active.begin(); it != s.active.end();) {
        account_slot* slot = it->second.get();
        ++it;  // settling may erase the slot
        if (slot->flush == op) {
            try {
                feed(s, *slot, stopping_event(sansio::event::kind::flush_deadline));
            } catch (...) {
                failure = failure ? failure : std::current_exception();
                finish_flush(*slot, errc::store_failure);  // unless it reported already
            }
            settle(s, *slot);
        }
    }
    if (failure) {
        std::rethrow_exception(failure);
    }
}

void cache_impl::start_flush(std::chrono::milliseconds deadline, std::shared_ptr<flush_operation> op) {
    op->deadline.expires_after(deadline);
    op->deadline.async_wait([self = shared_from_this(), op](error_code ec) {
        if (ec) {
            return;  // everything was flushed in time
        }
        op->deadline_passed.store(true, std::memory_order_release);
        // noexcept: out of memory for one shard's step, the process terminates rather than leave
        // that shard's accounts flushing with no deadline and async_shutdown's callers waiting
        // for good (as flush_share_done).
        [&]() noexcept {
            for (auto& sp : self->shards_) {
                auto& s = *sp;
                asio::post(s.strand, [self, &s, op] { self->end_flush_shares(s, op); });
            }
        }();
    });
    for (auto& sp : shards_) {
        auto& s = *sp;
        asio::post(s.strand, [self = shared_from_this(), &s, op] {
            // The accounts this shard knows, named before any is stopped: waking a resting one
            // adds it to the active map, and resting again takes it out. The names stay valid
            // until their own account is stopped (an active slot's is erased only by settling
            // that slot; a resting one's lives as long as the snapshot table).
            std::vector<std::pair<std::string_view, std::size_t>> accounts;
            try {
                accounts.reserve(s.active.size());
                for (const auto& [name, slot] : s.active) {
                    accounts.emplace_back(slot->account, slot->hash);
                }
                for (const auto& r : self->snapshots_.resting(s.index)) {
                    accounts.emplace_back(r.account, r.hash);
                }
            } catch (...) {
                // No memory to list them: this shard's share is reported as failed rather than
                // never (which would leave async_shutdown waiting for good).
                self->flush_share_done(op, errc::store_failure);
                throw;
            }
            {
                const std::lock_guard lock{op->mutex};
                op->remaining += accounts.size();
            }
            // Every account counted above reports its share exactly once, even when stopping it
            // throws (no memory to wake it or for its actions): a share never reported would
            // leave async_shutdown waiting for good. The first exception is rethrown once every
            // account had its turn, as from any other handler of the cache.
            std::exception_ptr failure;
            for (const auto& [account, hash] : accounts) {
                account_slot* slot = nullptr;
                try {
                    // A resting account is woken, one at a time, and rests again once stopped:
                    // its machine withdraws its snapshot and reports its (empty) flush.
                    slot = &self->slot_for(s, std::string(account), hash);
                    slot->flush = op;  // first: a slot with a flush is not forgotten meanwhile
                    self->feed(s, *slot, stopping_event(sansio::event::kind::stop));
                    self->feed(s, *slot, stopping_event(sansio::event::kind::flush));
                } catch (...) {
                    failure = failure ? failure : std::current_exception();
                    if (slot == nullptr) {
                        self->flush_share_done(op, errc::store_failure);
                    } else {
                        self->finish_flush(*slot, errc::store_failure);  // unless it reported already
                    }
                }
                if (slot != nullptr) {
                    self->settle(s, *slot);
                }
            }
            if (op->deadline_passed.load(std::memory_order_acquire)) {
                // The deadline's step may have run on this strand before this one (see
                // flush_operation::deadline_passed); the machines ignore a second one.
                try {
                    self->end_flush_shares(s, op);
                } catch (...) {
                    failure = failure ? failure : std::current_exception();
                }
            }
            // This shard has counted its accounts: its own share of `remaining` goes.
            self->flush_share_done(op, {});
            if (failure) {
                std::rethrow_exception(failure);
            }
        });
    }
}

void cache_impl::shutdown(std::chrono::milliseconds deadline, asio::any_io_executor ex,
                          store_result_handler handler) {
    std::shared_ptr<flush_operation> op;
    bool start = false;
    {
        const std::lock_guard lock{flush_mutex_};
        if (!flush_) {
            flush_ = std::make_shared<flush_operation>(ex_);
            start = true;
        }
        op = flush_;
    }
    {
        std::unique_lock lock{op->mutex};
        if (op->done) {
            lock.unlock();
            if (!handler) {
                return;  // stop() after a finished async_shutdown: nothing left to do or tell
            }
            auto ex_copy = ex;
            return asio::post(ex_copy,
                              [h = std::move(handler), ec = op->result]() mutable { std::move(h)(ec); });
        }
        if (handler) {
            op->handlers.push_back({std::move(ex), std::move(handler)});
        }
    }
    if (start) {
        stopped_ = true;
        start_flush(deadline, std::move(op));
    }
}

void cache_impl::stop() {
    shutdown(config_.stop_flush_timeout, ex_, {});
}

}  // namespace apollo_oauth::detail

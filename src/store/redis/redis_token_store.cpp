// make_redis_token_store: the coordination protocol on Redis Functions (functions.cpp), records
// as hashes (record.cpp), two connections (commands; pub/sub for waiters).
#include <apollo_oauth/redis_token_store.hpp>

#include "http/tls_context.hpp"
#include "sansio/random.hpp"
#include "store/record_codec.hpp"
#include "store/redis/connection.hpp"
#include "store/redis/functions.hpp"
#include "store/redis/record.hpp"
#include "store/redis/replication_gate.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <map>
#include <mutex>
#include <stdexcept>

namespace apollo_oauth {
namespace {

namespace asio = boost::asio;
using redis::command;
using redis::reply;

// A transport failure is the coordinator being unreachable (retryable); an error reply naming
// one of our keys as corrupt (or of the wrong type) is a corrupt record; any other error reply
// (a function not loaded yet; the connection turns LOADING, READONLY after a failover and the
// like into a transport error itself) is retryable too.
error_code classify(error_code transport, const reply& r) {
    if (transport) {
        return make_error_code(errc::coordination_unavailable);
    }
    if (r.is_error()) {
        if (r.text.starts_with("CORRUPT") || r.text.starts_with("WRONGTYPE")) {
            return make_error_code(errc::corrupt_record);
        }
        return make_error_code(errc::coordination_unavailable);
    }
    return {};
}

bool is_text(const reply& r, std::string_view text) {
    return r.is_string() && r.text == text;
}

// Outcome words of the functions ("ok", "lost", "conflict", "unknown").
error_code word_result(const reply& r, errc on_lost, errc on_conflict, errc on_unknown) {
    if (is_text(r, "ok")) {
        return {};
    }
    if (is_text(r, "lost")) {
        return make_error_code(on_lost);
    }
    if (is_text(r, "conflict")) {
        return make_error_code(on_conflict);
    }
    if (is_text(r, "unknown")) {
        return make_error_code(on_unknown);
    }
    return make_error_code(errc::corrupt_record);
}

// The result of a write that min_replicas may have waited for: as word_result, and
// coordination_unavailable for a write that ran but fewer replicas acknowledged.
error_code write_result(error_code transport, const reply& r, bool replicated, errc on_lost, errc on_conflict,
                        errc on_unknown) {
    error_code ec = classify(transport, r);
    if (!ec) {
        ec = word_result(r, on_lost, on_conflict, on_unknown);
        if (!ec && !replicated) {
            ec = make_error_code(errc::coordination_unavailable);
        }
    }
    return ec;
}

// decode_record copies the record's tokens out of the reply. With no memory for them the caller
// gets a retryable error: the exception would otherwise leave io_context::run from the command's
// completion, and the caller's handler would never be called.
error_code decode_record_or_unavailable(const reply& hgetall, std::optional<stored_tokens>& out) noexcept {
    try {
        return redis::decode_record(hgetall, out);
    } catch (const std::exception&) {
        out.reset();
        return make_error_code(errc::coordination_unavailable);
    }
}

// What a waiter reads (the probe function): whether the lease is free, and the record.
error_code decode_probe(const reply& r, bool& lease_free, std::optional<stored_tokens>& record) {
    if (!r.is_array() || r.elements.size() != 2 || r.elements[0].type != reply::kind::integer) {
        return make_error_code(errc::corrupt_record);
    }
    lease_free = r.elements[0].integer != 0;
    return decode_record_or_unavailable(r.elements[1], record);
}

error_code decode_acquire(const reply& r, lease_outcome& out) {
    const error_code corrupt = make_error_code(errc::corrupt_record);
    if (!r.is_array() || r.elements.empty() || !r.elements[0].is_string()) {
        return corrupt;
    }
    const std::string& what = r.elements[0].text;
    const auto& e = r.elements;
    if (what == "newer" && e.size() == 2) {
        out.what = lease_outcome::kind::newer;
        if (const auto ec = decode_record_or_unavailable(e[1], out.record); ec || !out.record) {
            return ec ? ec : corrupt;
        }
        return {};
    }
    if (what == "reauth" && e.size() == 1) {
        out.what = lease_outcome::kind::reauthorization_required;
        return {};
    }
    if (what == "busy" && e.size() == 2 && e[1].type == reply::kind::integer && e[1].integer >= 0) {
        out.what = lease_outcome::kind::busy;
        out.time_left = std::chrono::milliseconds(e[1].integer);
        return {};
    }
    if (what == "granted" && (e.size() == 2 || e.size() == 3) && e[1].type == reply::kind::integer) {
        out.what = lease_outcome::kind::granted;
        out.previous_holder_sent = e[1].integer != 0;
        if (e.size() == 3) {
            if (const auto ec = decode_record_or_unavailable(e[2], out.record); ec || !out.record) {
                return ec ? ec : corrupt;
            }
        }
        return {};
    }
    return corrupt;
}

redis_durability parse_durability(const reply& appendonly, const reply& appendfsync,
                                  const reply& maxmemory_policy) {
    redis_durability d;
    const auto value = [](const reply& r) -> const std::string* {
        if (r.is_array() && r.elements.size() == 2 && r.elements[1].is_string()) {
            return &r.elements[1].text;
        }
        return nullptr;
    };
    const std::string* aof = value(appendonly);
    const std::string* fsync = value(appendfsync);
    const std::string* policy = value(maxmemory_policy);
    if (aof != nullptr && fsync != nullptr && policy != nullptr) {
        d.known = true;
        d.appendonly = *aof == "yes";
        d.appendfsync = *fsync;
        d.maxmemory_policy = *policy;
    }
    return d;
}

// Every command of the store may be sent a second time when an idle connection turns out closed
// before any byte of its reply arrived (connection.hpp): the first may have run (the server could
// have executed it and then dropped the connection), and running twice changes nothing. HGETALL
// reads. The functions (functions.cpp) are compare-and-set on the generation and the holder:
// commit, a second time, finds its own generation with the same tokens stored and answers "ok"
// (releasing its own lease again); acquire finds the lease its first run set in the same holder's
// name and grants it again (a new ttl, the same previous_holder_sent: its first run left sent_by
// alone); mark_sent and renew check that holder and generation and set the same fields again;
// release finds neither a lease nor a sent mark of its cycle (its first run ended both) and
// answers "ok"; mark_reauth sets the same state again (one more publication only wakes waiters,
// who re-read). Between the two runs another process may act; the second run then answers as it
// would for a command sent a moment later (e.g. "conflict", "busy"), which every caller handles.
//
// They are NOT sent again when their reply is merely late (connection_config::resend_after_idle
// stays off in this store): the first copy may not have run yet, and its bytes may reach the
// server after the second ran and after what the caller did next; a TCP proxy in the path keeps
// retransmitting them for as long as its own kernel's retries last, whatever
// redis::tcp_user_timeout says. One function run late alone is harmless, as below, but two
// together are not: an acquire of an ended cycle followed by that cycle's late release would end
// the sent mark of the holder's next cycle, and another process could then send the refresh token
// that cycle sent (a review of this session's change, helper 118). A path cut silently while idle is
// left to TCP keepalive (redis::keepalive_*), which ends such a connection within about a minute;
// the command that meets it first fails after command_timeout, retryable. Each function run late
// by itself (a timed-out connection's bytes, which the cache retries itself):
// HGETALL and probe read; commit finds its pair stored (or a newer one: "conflict") and at most
// deletes its holder's next lease on that generation, whose mark-sent is then told lost and sends
// nothing (and a mark made already still keeps the others off: commit checks the generation, not
// the lease); acquire after its holder's commit answers "newer", after its holder's release sets a
// lease nobody renews, which keeps the others busy for its ttl (a delay), and after its holder's
// mark-sent keeps that mark; mark_sent and renew need their cycle's lease, which the holder's
// release or commit deleted; release finds nothing of its cycle (a cycle ends at its release: the
// next acquire draws another); mark_reauth finds the generation moved ("conflict") or sets the
// same state.
constexpr auto resendable = redis::resend::once_if_unanswered;

// How long the subscription outlives the last waiter (finish): a process that is done gets its
// io_context back this much later.
constexpr std::chrono::seconds subscription_grace{1};


// A replicated write (min_replicas) and what learns its outcome: void(error_code, reply of the
// write, bool replicated).
using write_done = asio::any_completion_handler<void(error_code, reply, bool)>;
struct replicated_write {
    command cmd;
    // Shared with the completion of its send: a send that finds no memory still has it, to fail.
    std::shared_ptr<write_done> done;
};
using write_gate = redis::replication_gate<replicated_write>;

class redis_token_store final : public token_store, public std::enable_shared_from_this<redis_token_store> {
public:
    redis_token_store(asio::any_io_executor ex, redis_options options)
        : ex_(std::move(ex)), options_(std::move(options)), channel_(options_.key_prefix + "changed") {
        if (options_.use_tls) {
            tls_context_ = std::make_shared<asio::ssl::context>(http::make_client_tls_context(options_.tls));
        }
    }

    ~redis_token_store() override {
        if (commands_) {
            commands_->close();
        }
        if (replicated_writes_) {
            replicated_writes_->close();
        }
        if (subscriber_) {
            subscriber_->close();
        }
    }

    // After construction: the connections' callbacks hold a weak pointer to the store, and their
    // handshakes a copy of the options of their own: a connection outlives the store while its
    // I/O is pending (one may be logging in on another thread as the store is destroyed).
    void start() {
        const auto options = std::make_shared<const redis_options>(options_);
        auto config = base_config();
        config.make_handshake = [options, hook = options_.on_durability, ex = ex_] {
            auto steps = command_steps(*options);
            auto first = std::make_shared<reply>();
            auto second = std::make_shared<reply>();
            steps.push_back({command{"CONFIG", "GET", "appendonly"}, false,
                             [first](const reply& r) { *first = copy_config_reply(r); }});
            steps.push_back({command{"CONFIG", "GET", "appendfsync"}, false,
                             [second](const reply& r) { *second = copy_config_reply(r); }});
            steps.push_back({command{"CONFIG", "GET", "maxmemory-policy"}, false,
                             [first, second, hook, ex](const reply& r) {
                                 if (hook) {
                                     asio::post(
                                         ex, [hook, d = parse_durability(*first, *second, r)] { hook(d); });
                                 }
                             }});
            return steps;
        };
        config.lost_the_handshake = config_lost_the_handshake();
        commands_ = std::make_unique<redis::connection>(ex_, std::move(config));

        if (options_.min_replicas != 0) {
            // The writes followed by WAIT have a connection of their own: a WAIT holds its
            // connection for up to replica_timeout (the server answers nothing else on it
            // meanwhile), and the loads, acquires and renewals of every other account must not
            // queue behind it. Several WAITs queued on it answer one after the other, so each
            // reply's deadline runs from the reply before it (the server is alive), not from the
            // write. The handshake checks that WAIT is allowed (an ACL without it would look like
            // a missing replica for ever): a refused WAIT fails the login.
            auto writes = base_config();
            writes.make_handshake = [options] {
                auto steps = command_steps(*options);
                steps.push_back({command{"WAIT", "0", "1"}, true, {}});
                return steps;
            };
            writes.lost_the_handshake = config_lost_the_handshake();
            writes.deadline_from_previous_reply = true;
            // A WAIT answers up to replica_timeout after its write, and Redis checks its timeout
            // at the server's hz (measured: up to 80 ms late): its reply's deadline allows for it.
            writes.command_timeout = options_.command_timeout + options_.replica_timeout;
            replicated_writes_ = std::make_unique<redis::connection>(ex_, std::move(writes));
            gate_ = std::make_shared<write_gate>();
        }

        auto sub = base_config();
        std::weak_ptr<redis_token_store> weak = weak_from_this();
        sub.make_handshake = [options, channel = channel_, weak] {
            auto steps = login_steps(*options);
            // After a (re)subscription every waiter re-reads: messages sent while this connection
            // was down are lost. Not after a refused one (an ACL without the channel, a server out
            // of clients), which fails the connection: each re-read would reconnect it at once, a
            // loop of connections as fast as Redis refuses them, where the waiters' polls suffice.
            steps.push_back({command{"SUBSCRIBE", channel}, true, [weak](const reply& r) {
                                 if (auto self = weak.lock(); self && !r.is_error()) {
                                     self->wake_waiters({});
                                 }
                             }});
            return steps;
        };
        sub.on_push = [weak](reply&& r) {
            if (r.is_array() && r.elements.size() == 3 && is_text(r.elements[0], "message") &&
                r.elements[2].is_string()) {
                if (auto self = weak.lock()) {
                    // A commit or a reauthorization publishes the account; a release, the lease's
                    // key. An account may be named like another's lease key, so a message is read
                    // both ways: each wake-up is harmless when it was the other.
                    const std::string_view text = r.elements[2].text;
                    self->wake_waiters(text);
                    if (const auto released = self->account_of_lease_key(text)) {
                        self->lease_given_back(*released);
                    }
                }
            }
        };
        subscriber_ = std::make_unique<redis::connection>(ex_, std::move(sub));
    }

    asio::any_io_executor get_executor() const override { return ex_; }

    void async_load(std::string account, load_handler handler) override {
        commands_->async_exec(command{"HGETALL", record_key(account)}, resendable,
                              [handler = std::move(handler)](error_code ec, reply r) mutable {
                                  std::optional<stored_tokens> record;
                                  if (!(ec = classify(ec, r))) {
                                      ec = decode_record_or_unavailable(r, record);
                                  }
                                  std::move(handler)(ec, std::move(record));
                              });
    }

    void async_save(std::string account, stored_tokens record, std::uint64_t expected_generation,
                    save_handler handler) override {
        async_commit(std::move(account), std::string{}, std::move(record), expected_generation,
                     std::move(handler));
    }

    void async_commit(std::string account, std::string holder, stored_tokens record,
                      std::uint64_t expected_generation, save_handler handler) override {
        // The refusals every store shares, then what a hash of this store's layout cannot hold.
        if (store::refuses_write(record, expected_generation) || !redis::is_storable(record)) {
            return post_error(std::move(handler), errc::invalid_argument);
        }
        command cmd{"FCALL", "apollo_oauth_v8_commit", "2", record_key(account), lease_key(account), holder};
        cmd.arg(expected_generation).arg(record.generation);
        redis::append_record_fields(record, cmd);
        cmd.arg(channel_).arg(account);
        exec_write(std::move(cmd), replication::held_while_missing,
                   [weak = weak_from_this(), account = std::move(account), holder = std::move(holder),
                    generation = record.generation,
                    handler = std::move(handler)](error_code ec, reply r, bool replicated) mutable {
                       const auto result = write_result(ec, r, replicated, errc::corrupt_record,
                                                        errc::generation_conflict, errc::corrupt_record);
                       // The commit cleared the holder's lease: its cycle is over. And any cycle of
                       // the account kept only for a sent mark on an older generation is too
                       // (committed_over). Not one kept for a mark on this very generation: "ok"
                       // also answers a retry that found this pair already stored, which moved
                       // nothing and cleared no mark made since its first attempt landed.
                       if (auto self = weak.lock(); self && !result) {
                           if (!holder.empty()) {
                               (void)self->take_cycle(account, holder);
                           }
                           self->committed_over(account, generation);
                       }
                       std::move(handler)(result);
                   });
    }

    void async_acquire(std::string account, std::string holder, std::uint64_t known_generation,
                       std::chrono::milliseconds ttl, acquire_handler handler) override {
        if (holder.empty() || ttl.count() <= 0) {
            return post_error(std::move(handler), errc::invalid_argument, lease_outcome{});
        }
        cycle_ticket cycle;
        try {
            cycle = begin_cycle(account, holder);
        } catch (const std::exception&) {  // the CSPRNG failed, or no memory
            return post_error(std::move(handler), errc::coordination_unavailable, lease_outcome{});
        }
        // begin_cycle counted this acquire as in flight: one that is never sent (no memory for the
        // command) must not be counted for good, or the entry would never end.
        try {
            command cmd{"FCALL", "apollo_oauth_v8_acquire", "2", record_key(account), lease_key(account),
                        holder};
            cmd.arg(known_generation)
                .arg(static_cast<std::uint64_t>(ttl.count()))
                .arg(static_cast<std::uint64_t>(options_.sent_grace.count()))
                .arg(cycle.id);
            auto answered = [weak = weak_from_this(), account, holder, cycle, handler = std::move(handler)](
                                error_code ec, reply r) mutable {
                lease_outcome outcome;
                if (!(ec = classify(ec, r))) {
                    ec = decode_acquire(r, outcome);
                }
                if (auto self = weak.lock()) {
                    if (const auto give_back = self->acquire_answered(account, holder, cycle, ec, outcome)) {
                        // Sent before the holder is answered, but not waited for: while Redis
                        // does not answer, the give-back would only wait out command_timeout as
                        // well. A process that exits at once may leave that lease to run out at
                        // its ttl (docs/scale-out.md).
                        self->give_back_unanswered(account, holder, *give_back);
                    }
                }
                std::move(handler)(ec, std::move(outcome));
            };
            commands_->async_exec(std::move(cmd), resendable, std::move(answered));
        } catch (...) {
            acquire_not_sent(account, holder, cycle);
            throw;
        }
    }

    void async_mark_sent(std::string account, std::string holder, std::uint64_t generation,
                         std::chrono::milliseconds ttl, lease_handler handler) override {
        // Replicated (min_replicas): after a failover, the new primary must know the request may
        // have been sent, or a successor would be granted the lease without previous_holder_sent.
        lease_step("apollo_oauth_v8_mark_sent", std::move(account), std::move(holder), generation, ttl,
                   std::move(handler), lease_step_kind::mark_sent);
    }

    void async_renew(std::string account, std::string holder, std::uint64_t generation,
                     std::chrono::milliseconds ttl, lease_handler handler) override {
        lease_step("apollo_oauth_v8_renew", std::move(account), std::move(holder), generation, ttl,
                   std::move(handler), lease_step_kind::renew);
    }

    void async_release(std::string account, std::string holder, lease_handler handler) override {
        auto cycle = take_cycle(account, holder);
        if (!cycle) {
            // This store holds no lease for them (never acquired, or committed since): nothing
            // to give back, as when the lease is another's.
            return asio::post(ex_,
                              [handler = std::move(handler)]() mutable { std::move(handler)(error_code{}); });
        }
        command cmd{"FCALL", "apollo_oauth_v8_release", "2", record_key(account), lease_key(account), holder};
        cmd.arg(*cycle).arg(channel_);
        commands_->async_exec(
            std::move(cmd), resendable, [handler = std::move(handler)](error_code ec, reply r) mutable {
                if (!(ec = classify(ec, r))) {
                    ec = word_result(r, errc::corrupt_record, errc::corrupt_record, errc::corrupt_record);
                }
                std::move(handler)(ec);
            });
    }

    void async_mark_reauthorization(std::string account, std::uint64_t generation,
                                    lease_handler handler) override {
        command cmd{"FCALL", "apollo_oauth_v8_mark_reauth", "1", record_key(account)};
        cmd.arg(generation).arg(channel_).arg(account);
        exec_write(std::move(cmd), replication::always_sent,
                   [handler = std::move(handler)](error_code ec, reply r, bool replicated) mutable {
                       std::move(handler)(write_result(ec, r, replicated, errc::corrupt_record,
                                                       errc::generation_conflict, errc::unknown_account));
                   });
    }

    void async_wait_for_change(std::string account, std::uint64_t known_generation,
                               std::chrono::milliseconds max_wait, load_handler handler) override;

private:
    struct waiter;

    redis::connection_config base_config() const {
        redis::connection_config config;
        config.host = options_.host;
        config.port = options_.port;
        config.tls_context = tls_context_;
        config.tls_server_name = options_.tls_server_name;
        config.connect_timeout = options_.connect_timeout;
        config.command_timeout = options_.command_timeout;
        // resend_after_idle stays off (never): see `resendable` above.
        return config;
    }

    // Redis 7's answer to an FCALL of a function it does not have: the library was flushed, a
    // failover reached a server without it, or the connection's load was refused. A new
    // connection loads it again.
    static std::function<bool(const reply&)> config_lost_the_handshake() {
        return [](const reply& r) { return r.is_error() && r.text.starts_with("ERR Function not found"); };
    }

    static std::vector<redis::handshake_step> login_steps(const redis_options& options) {
        std::vector<redis::handshake_step> steps;
        if (!options.password.empty()) {
            command auth{"AUTH"};
            if (!options.user.empty()) {
                auth.arg(options.user);
            }
            auth.arg(options.password.reveal());
            steps.push_back({std::move(auth), true, {}});
        }
        if (options.database != 0) {
            steps.push_back({command{"SELECT", std::to_string(options.database)}, true, {}});
        }
        return steps;
    }

    // A connection that runs the functions: logged in, with the library loaded. FUNCTION LIST (a
    // read) first, and FUNCTION LOAD only when the library is missing or holds other code. LOAD is
    // a write: Redis refuses it when full under noeviction (OOM) or with min-replicas-to-write
    // unmet (NOREPLICAS), while reads and the no-writes probe still run. Sent on every connection
    // as a step that must succeed, it failed the login there, and a process that (re)connected
    // then could not even read a valid pair; and it put the whole library in the AOF and the
    // replication stream at every connection.
    //
    // Neither step fails the login. A FUNCTION LIST refused (an ACL granted from an earlier
    // version's list, without it) loads as before. A load refused leaves what the server has: if
    // the library is missing, each FCALL is answered "ERR Function not found", fails (retryable:
    // the cache serves valid tokens and refreshes nothing) and drops the connection, whose
    // successor lists and loads again (config_lost_the_handshake); HGETALL is served meanwhile.
    //
    // Two versions on one server: each library version has a name of its own (apollo_oauth_vN,
    // functions.cpp), so a process lists and loads only its own and never replaces the other's.
    // The code is compared, not only the name: two builds with the same name and other code (a
    // change that did not take a new name, against functions.cpp's rule) then each put their own
    // back at every connection, as every connection did before; comparing the name alone would
    // let one build run the other's code without a word.
    static std::vector<redis::handshake_step> command_steps(const redis_options& options) {
        auto steps = login_steps(options);
        command list{"FUNCTION", "LIST", "LIBRARYNAME", redis::function_library_name(), "WITHCODE"};
        steps.push_back(
            {std::move(list), false, {}, [](const reply& listed) {
                 std::vector<redis::handshake_step> load;
                 if (!redis::lists_this_library(listed)) {
                     load.push_back(
                         {command{"FUNCTION", "LOAD", "REPLACE", redis::function_library()}, false, {}});
                 }
                 return load;
             }});
        return steps;
    }

    static reply copy_config_reply(const reply& r) {
        reply copy;
        copy.type = r.type;
        copy.text = r.text;
        for (const auto& e : r.elements) {
            copy.elements.push_back(copy_config_reply(e));
        }
        return copy;
    }

    template <class Handler, class... Args>
    void post_error(Handler handler, errc e, Args... args) {
        asio::post(ex_, [handler = std::move(handler), e, ... args = std::move(args)]() mutable {
            std::move(handler)(make_error_code(e), std::move(args)...);
        });
    }

    enum class lease_step_kind { mark_sent, renew };
    void lease_step(std::string_view function, std::string account, std::string holder,
                    std::uint64_t generation, std::chrono::milliseconds ttl, lease_handler handler,
                    lease_step_kind step) {
        if (holder.empty() || ttl.count() <= 0) {
            return post_error(std::move(handler), errc::invalid_argument);
        }
        const bool marks_sent = step == lease_step_kind::mark_sent;
        // Replicated (min_replicas) for a mark-sent only: see async_mark_sent.
        const bool replicate = marks_sent;
        auto cycle = cycle_of(account, holder, marks_sent, generation);
        if (!cycle) {
            // This store never acquired it, or an answer since ended the cycle (the rule at
            // cycle_record): no lease of the holder's to act on.
            return post_error(std::move(handler), errc::lease_lost);
        }
        command cmd{"FCALL", function, "2", record_key(account), lease_key(account), holder};
        cmd.arg(generation).arg(static_cast<std::uint64_t>(ttl.count())).arg(cycle->id);
        exec_write(std::move(cmd), replicate ? replication::held_while_missing : replication::none,
                   [weak = weak_from_this(), account = std::move(account), holder = std::move(holder),
                    cycle = std::move(*cycle), generation, marks_sent,
                    handler = std::move(handler)](error_code ec, reply r, bool replicated) mutable {
                       const auto result = write_result(ec, r, replicated, errc::lease_lost,
                                                        errc::corrupt_record, errc::corrupt_record);
                       if (auto self = weak.lock(); self && result == errc::lease_lost) {
                           self->lease_lost(account, holder, cycle, generation, marks_sent);
                       }
                       std::move(handler)(result);
                   });
    }

    // How a write goes with min_replicas. Replicated: one another host must not miss after a
    // failover (a commit, a mark-sent, a reauthorization); WAIT follows it on its connection, and
    // its `done` learns whether that many replicas acknowledged it within replica_timeout.
    // held_while_missing: while the replicas are missing the gate may hold it and fail it unsent
    // (replication_gate.hpp), for a write whose caller retries it (a commit) or sends nothing
    // without it (a mark-sent). always_sent: for a mark-reauthorization, which nothing retries;
    // on the primary, even unreplicated, it spares the other hosts the revoked refresh token.
    enum class replication { none, held_while_missing, always_sent };

    // A write; `done`: void(error_code, reply of the write, bool replicated), replicated always
    // true when not waited for.
    template <class Done>
    void exec_write(command cmd, replication how, Done done) {
        if (how == replication::none || options_.min_replicas == 0) {
            commands_->async_exec(std::move(cmd), resendable,
                                  [done = std::move(done)](error_code ec, reply r) mutable {
                                      std::move(done)(ec, std::move(r), true);
                                  });
            return;
        }
        // Before the gate counts it: no memory for it throws to the caller with nothing counted.
        auto shared_done = std::make_shared<write_done>(std::move(done));
        if (auto now = gate_->admit(replicated_write{std::move(cmd), std::move(shared_done)},
                                    how == replication::held_while_missing)) {
            exec_replicated(std::move(*now));
        }
    }

    // Sends a write the gate let through (counted in flight there), WAIT after it; its answer
    // releases what the gate held. One that finds no memory to be sent fails unsent (retryable)
    // and is withdrawn from the gate, which may hand over a held write to send in its place: a
    // count left raised would have held every later write for ever once a WAIT fell short.
    void exec_replicated(replicated_write write) noexcept {
        for (;;) {
            try {
                command wait{"WAIT"};
                wait.arg(std::uint64_t{options_.min_replicas})
                    .arg(static_cast<std::uint64_t>(options_.replica_timeout.count()));
                replicated_writes_->async_exec(
                    std::move(write.cmd), std::move(wait), resendable,
                    [weak = weak_from_this(), gate = gate_, done = write.done,
                     needed = options_.min_replicas](error_code ec, reply r) mutable {
                        const bool by_server = !ec && r.is_array() && r.elements.size() == 2;
                        // An error reply to WAIT (an ACL without it, a replica answering) counts
                        // as none.
                        const bool replicated = by_server && r.elements[1].type == reply::kind::integer &&
                                                r.elements[1].integer >= static_cast<long long>(needed);
                        release(weak, gate->answered(by_server, replicated));
                        write_done& handler = *done;
                        if (!by_server) {
                            return std::move(handler)(ec ? ec : make_error_code(errc::corrupt_record),
                                                      reply{}, false);
                        }
                        std::move(handler)(error_code{}, std::move(r.elements[0]), replicated);
                    });
                return;
            } catch (const std::exception&) {
                // Not sent (async_exec either queues the write or throws): fall through.
            }
            auto next = gate_->withdraw();
            // Posted: this may run on the thread of the write's initiation. Without memory even for
            // that, the process terminates (noexcept), as the cache's shutdown does, rather than
            // leave the write's caller waiting for ever.
            asio::post(ex_, [done = std::move(write.done)] {
                write_done& handler = *done;
                std::move(handler)(make_error_code(errc::coordination_unavailable), reply{}, false);
            });
            if (!next) {
                return;
            }
            write = std::move(*next);
        }
    }

    // What the gate held: sent now, or failed unwritten (retryable), as the gate says; failed too
    // when the store is gone.
    static void release(const std::weak_ptr<redis_token_store>& weak, write_gate::released held) {
        const auto self = held.send ? weak.lock() : nullptr;
        for (auto& write : held.writes) {
            if (self) {
                self->exec_replicated(std::move(write));
            } else {
                write_done& handler = *write.done;
                std::move(handler)(make_error_code(errc::coordination_unavailable), reply{}, false);
            }
        }
    }

    // The cycle of the lease each (account, holder) holds or asks for (functions.cpp): a random
    // id, which mark-sent, renew and release name, so that a late command of an earlier cycle (a
    // timed-out connection's bytes, delivered after all) finds no lease of its own. A holder that
    // acquires again while it holds its lease (the cache does, keeping its lease while a rotated
    // pair is unstored, or after waiting for a silent sender) renews the same cycle, so that a
    // re-acquire that fails leaves the lease it holds renewable.
    //
    // The rule: an entry is kept exactly while its holder may hold a lease of that cycle on the
    // server, as far as the answers tell, or an acquire of it is in flight; every answer that
    // tells the holder holds none ends it. Its endings, path by path:
    // - release: ended as it is sent (take_cycle), whatever it answers (the holder will not use
    //   the lease again; an unanswered one leaves at most a lease that runs out).
    // - commit under the lease, answered ok: it deleted the lease (commit in functions.cpp). A
    //   conflict or an error leaves the entry: the lease is not touched by it, and the cache
    //   releases or renews it (a renewal then tells lease_lost if a newer write deleted it).
    // - acquire answered granted: held, on the generation it names.
    // - acquire answered busy: the lease is another's (or a silent sender's grace keeps everyone
    //   off while no lease exists): this holder holds none, whichever cycle it was in.
    // - mark-sent or renewal answered lease_lost for the generation the cycle's lease was granted
    //   on: it ran out and may have been taken over, or a write moved the generation and deleted
    //   it. (One for another generation, a renewal of an earlier grant of the cycle answered after
    //   a re-acquire was granted on a newer one, says nothing of the lease held now.)
    // - acquire answered newer or reauthorization_required: no lease was set. A cycle held before
    //   keeps its entry (the lease the cache holds is released, or renewed and told lost, later).
    // - acquire not answered (a timeout, a dropped connection, an unreadable reply): it may have
    //   run and granted a lease. Held before, that lease was the holder's anyway and stays
    //   renewable. Not held (a fresh cycle, or one whose lease an answer said was lost), the
    //   cache, told the acquire failed, holds nothing and will never renew nor release it: it is
    //   given back now (give_back_unanswered).
    // - the lease runs out with nothing asked: the entry stays held until an answer tells.
    // - except: a cycle in which a mark-sent may have landed (sent, and not told lease_lost) is
    //   kept, not held, and nothing of it is given back, until a commit of a generation past the
    //   mark's lands (committed_over) or the cache releases it (which it does only with its pair
    //   stored). That mark is what keeps every other holder off a refresh token this holder may
    //   have spent (previous_holder_sent, the silent sender's grace), and release() in
    //   functions.cpp clears the releasing holder's mark whatever the cycle: a give-back of this
    //   holder's next, unanswered acquire would have cleared it while its rotated pair was still
    //   unstored, and the next host granted would have sent the revoked token. Kept, the entry makes the next
    //   acquire ask in the same cycle (not fresh), and the lease an unanswered one may set runs
    //   out at its ttl instead: a delay, where the give-back risked the grant. An acquire
    //   answered newer ends the exception too: the generation moved past the mark.
    // An answer that ends a cycle while an acquire of it is in flight only marks it not held: that
    // acquire may have run after the answer's command and been granted (a renewal and a
    // re-acquire are pipelined on one connection), and its own answer decides. An answer to a
    // command sent before the one `held` was last set from is stale and changes nothing
    // (cycle_ticket).
    //
    // Left in place after such an answer (it was, before), an entry had two effects. in_a_cycle
    // stayed true for good: this store's waiters of the account then ignored a free lease (one
    // given back unheard, one run out) and slept until a commit or max_wait, the busy lease's time
    // left (up to lease_ttl). And the next acquire reused its id as a cycle still held: unanswered,
    // it was not given back, and the lease it may have set kept every other host busy for the
    // lease's whole ttl, as well as letting late commands of the old lease act on the new one.
    struct cycle_record {
        std::string id;
        bool held = false;                  ///< granted, and no answer since said the lease is gone
        std::uint64_t lease_generation{};   ///< of the grant that made it held
        unsigned acquiring = 0;             ///< acquires of this cycle in flight
        bool unanswered = false;            ///< one failed while not held: it may have set a lease
        std::uint64_t sent = 0;             ///< commands sent in the cycle (acquire, mark-sent, renew)
        std::uint64_t decided = 0;          ///< which of them gave the answer `held` comes from
        unsigned marks = 0;                 ///< mark-sents sent and not told lease_lost: may have landed
        std::uint64_t marked_generation{};  ///< the highest generation a mark-sent of the cycle named
        /// Nothing but a sent mark keeps it (the exception to the rule above).
        bool kept_for_its_mark() const noexcept { return !held && acquiring == 0 && marks != 0; }
    };
    // A command of a cycle: its id, and the command's place among the cycle's. A holder's commands
    // run on Redis in the order they were sent (one connection, and the cache sends a holder's
    // commands from its strand; a mark-sent with min_replicas goes on another, but the cache sends
    // none while the holder's acquire is in flight), but the handlers of their answers run on the
    // pool, in either order: an answer to a command older than the one `held` comes from says
    // nothing of the lease now.
    struct cycle_ticket {
        std::string id;
        std::uint64_t seq = 0;
    };
    // The cycle an acquire asks in: the one the holder is in, else a new one.
    cycle_ticket begin_cycle(const std::string& account, const std::string& holder) {
        {
            const std::lock_guard lock(cycles_mutex_);
            if (const auto it = cycles_.find(std::pair{account, holder}); it != cycles_.end()) {
                ++it->second.acquiring;
                return {it->second.id, ++it->second.sent};
            }
        }
        auto drawn = sansio::random_base64url(12);
        const std::lock_guard lock(cycles_mutex_);
        auto& entry = cycles_.try_emplace(std::pair{account, holder}, cycle_record{.id = std::move(drawn)})
                          .first->second;
        ++entry.acquiring;
        return {entry.id, ++entry.sent};
    }
    // The cycle a mark-sent or renewal names, if the holder is in one. A mark-sent is counted as
    // it is sent: until it is told lease_lost, it may land.
    std::optional<cycle_ticket> cycle_of(const std::string& account, const std::string& holder,
                                         bool marks_sent, std::uint64_t generation) {
        const std::lock_guard lock(cycles_mutex_);
        const auto it = cycles_.find(std::pair{account, holder});
        if (it == cycles_.end()) {
            return std::nullopt;
        }
        if (marks_sent) {
            ++it->second.marks;
            it->second.marked_generation = std::max(it->second.marked_generation, generation);
        }
        return cycle_ticket{it->second.id, ++it->second.sent};
    }
    std::optional<std::string> take_cycle(const std::string& account, const std::string& holder) {
        const std::lock_guard lock(cycles_mutex_);
        auto node = cycles_.extract(std::pair{account, holder});
        return node ? std::optional<std::string>(std::move(node.mapped().id)) : std::nullopt;
    }
    // That (account, holder)'s entry while it is still `cycle`, else end(). Under cycles_mutex_.
    auto find_cycle(const std::string& account, const std::string& holder, const std::string& cycle) {
        const auto it = cycles_.find(std::pair{account, holder});
        return it != cycles_.end() && it->second.id == cycle ? it : cycles_.end();
    }
    // An acquire of the cycle completed (the rule above). Returns the cycle whose lease is to be
    // given back (give_back_unanswered), if any.
    std::optional<std::string> acquire_answered(const std::string& account, const std::string& holder,
                                                const cycle_ticket& cycle, error_code ec,
                                                const lease_outcome& outcome) {
        {
            const std::lock_guard lock(cycles_mutex_);
            const auto it = find_cycle(account, holder, cycle.id);
            if (it == cycles_.end()) {
                return std::nullopt;  // released or committed meanwhile: that ended it, lease and all
            }
            auto& entry = it->second;
            --entry.acquiring;
            const bool latest = cycle.seq > entry.decided;
            if (ec) {
                if (!entry.held) {
                    entry.unanswered = true;  // it may have set a lease that nobody will renew
                }
            } else if (outcome.what == lease_outcome::kind::granted && latest) {
                entry.held = true;
                entry.lease_generation = outcome.record ? outcome.record->generation : 0;
                entry.decided = cycle.seq;
                entry.unanswered = false;  // the lease of the cycle is the holder's
            } else if (outcome.what == lease_outcome::kind::busy && latest) {
                entry.held = false;  // another holds the lease now
                entry.decided = cycle.seq;
            } else if (outcome.what == lease_outcome::kind::newer) {
                entry.marks = 0;  // a write moved the generation past every mark of the cycle
            }
            if (entry.held || entry.acquiring != 0 || entry.kept_for_its_mark()) {
                // Held: kept, renewable. Another acquire in flight: its answer decides. A mark that
                // may have landed: kept, and nothing given back (the exception to the rule).
                return std::nullopt;
            }
            const bool give_back = entry.unanswered;
            cycles_.erase(it);
            if (!give_back) {
                return std::nullopt;
            }
        }
        return cycle.id;
    }
    // An acquire counted by begin_cycle was never sent (no memory for its command).
    void acquire_not_sent(const std::string& account, const std::string& holder,
                          const cycle_ticket& cycle) noexcept {
        const std::lock_guard lock(cycles_mutex_);
        const auto it = find_cycle(account, holder, cycle.id);
        if (it == cycles_.end()) {
            return;
        }
        --it->second.acquiring;
        if (!it->second.held && it->second.acquiring == 0 && !it->second.kept_for_its_mark() &&
            !it->second.unanswered) {
            cycles_.erase(it);  // drawn for it, or already told its lease is gone: holds nothing
        }
    }
    // A commit of `generation` landed (this write, or, for a retry that found the same pair
    // stored, its first attempt). The write that moved the account to `generation` deleted the
    // lease (any an unanswered acquire set too) and ended every sent mark on an older generation,
    // so a cycle not held, with no acquire in flight and no mark on `generation` or later (one
    // kept for its mark, the exception to the rule) is over. A mark on `generation` itself can
    // only have been made after that write, which a retry does not repeat: the mark is live, and
    // its cycle stays kept. (Ended on any "ok", such a cycle was forgotten while its holder's
    // rotated pair might be unstored: the holder's next acquire drew a fresh cycle, and the
    // give-back of that acquire, unanswered, cleared the mark; the next host was granted without
    // previous_holder_sent and sent the refresh token the provider had revoked.) A held cycle is
    // another cache's of this store, whose own renewal or commit tells it.
    void committed_over(const std::string& account, std::uint64_t generation) {
        const std::lock_guard lock(cycles_mutex_);
        for (auto it = cycles_.lower_bound(std::pair{account, std::string{}});
             it != cycles_.end() && it->first.first == account;) {
            const auto& entry = it->second;
            const bool over = !entry.held && entry.acquiring == 0 &&
                              (entry.marks == 0 || entry.marked_generation < generation);
            it = over ? cycles_.erase(it) : std::next(it);
        }
    }
    // A mark-sent or renewal of the cycle on `generation` was told lease_lost (the rule above).
    // A mark-sent told so did not land: it no longer counts among the cycle's marks.
    void lease_lost(const std::string& account, const std::string& holder, const cycle_ticket& cycle,
                    std::uint64_t generation, bool was_mark_sent) {
        const std::lock_guard lock(cycles_mutex_);
        const auto it = find_cycle(account, holder, cycle.id);
        if (it == cycles_.end()) {
            return;
        }
        auto& entry = it->second;
        if (was_mark_sent && entry.marks > 0) {
            --entry.marks;
        }
        if (entry.held && entry.lease_generation == generation && cycle.seq >= entry.decided) {
            entry.held = false;
            entry.decided = cycle.seq;
        } else if (entry.held || entry.acquiring != 0 || entry.unanswered) {
            // Another generation's lease, or granted again since: still held. An acquire in
            // flight: its answer decides. Kept after an unanswered acquire (for its mark): the
            // next acquire, which asks in it, or a commit (committed_over) ends it.
            return;
        }
        if (entry.acquiring == 0 && !entry.kept_for_its_mark()) {  // else that acquire's answer decides
            // Not unanswered: a grant since cleared that, and nothing sets it while held.
            cycles_.erase(it);
        }
    }
    // An acquire of a cycle not held failed: it may have run, its reply lost (a timeout, a
    // connection dropped after the server ran it, an unreadable reply), and granted a lease that
    // its holder, told the acquire failed, will never renew nor release (the cache releases only
    // a lease it was granted). Left, that lease kept other hosts busy for its whole ttl, and the
    // cycle kept this store's waiters of the account from finding the lease free. So the cycle
    // has ended (acquire_answered), and its lease, if there is one, is given back now, answered
    // by no one. Safe: no lease of that cycle was the holder's (it was drawn by that acquire, or
    // an answer since said its lease was gone), no later acquire asks in it (the entry is gone),
    // and release deletes only that cycle's lease. (An acquire that reaches Redis after this
    // release, its bytes delivered late, still leaves a lease; its ttl ends it.)
    void give_back_unanswered(const std::string& account, const std::string& holder,
                              const std::string& cycle) {
        command cmd{"FCALL", "apollo_oauth_v8_release", "2", record_key(account), lease_key(account), holder};
        cmd.arg(cycle).arg(channel_);
        commands_->async_exec(std::move(cmd), resendable, [](error_code, reply) {});
    }

    // The hash tag {account} puts both keys in one cluster slot.
    std::string record_key(std::string_view account) const {
        std::string key;
        key.reserve(options_.key_prefix.size() + account.size() + 2);
        key.append(options_.key_prefix).append("{").append(account).append("}");
        return key;
    }
    std::string lease_key(std::string_view account) const { return record_key(account) + ":lease"; }
    std::optional<std::string_view> account_of_lease_key(std::string_view key) const {
        constexpr std::string_view suffix = "}:lease";
        const auto& prefix = options_.key_prefix;
        if (key.size() < prefix.size() + 1 + suffix.size() || !key.starts_with(prefix) ||
            key[prefix.size()] != '{' || !key.ends_with(suffix)) {
            return std::nullopt;
        }
        return key.substr(prefix.size() + 1, key.size() - prefix.size() - 1 - suffix.size());
    }
    // Whether a holder of this store is in a cycle of `account`'s lease that `chosen` picks.
    template <class Choose>
    bool any_cycle_of(std::string_view account, Choose chosen) {
        const std::lock_guard lock(cycles_mutex_);
        for (auto it = cycles_.lower_bound(std::pair{std::string(account), std::string{}});
             it != cycles_.end() && it->first.first == account; ++it) {
            if (chosen(it->second)) {
                return true;
            }
        }
        return false;
    }
    // Whether a holder of this store is in a cycle of `account`'s lease: holds it as far as the
    // answers tell (its own lease may have run out unanswered, in an outage), or asks for it.
    bool in_a_cycle(std::string_view account) {
        return any_cycle_of(account, [](const cycle_record&) { return true; });
    }
    // Whether a holder of this store holds the lease of `account`, as far as the answers tell:
    // granted, and neither a lost mark-sent or renewal nor a busy re-acquire since (those end the
    // cycle, or leave it not held while a re-acquire of it is in flight).
    bool holds_the_lease(std::string_view account) {
        return any_cycle_of(account, [](const cycle_record& c) { return c.held; });
    }

    // The waiters of `account` (all waiters when `account` is nullopt), taken under the mutex.
    std::vector<std::shared_ptr<waiter>> waiters_of(std::optional<std::string_view> account);
    // Waiters of `account` re-read now (all waiters when `account` is nullopt).
    void wake_waiters(std::optional<std::string_view> account);
    // Another holder gave the lease of `account` back without a commit: its waiters complete
    // with nullopt, so that their caches ask for it again now rather than wait out its time.
    void lease_given_back(std::string_view account);
    void check(const std::shared_ptr<waiter>& w);
    void finish(const std::shared_ptr<waiter>& w, error_code ec, std::optional<stored_tokens> record);

    asio::any_io_executor ex_;
    redis_options options_;
    std::string channel_;
    std::shared_ptr<asio::ssl::context> tls_context_;
    std::unique_ptr<redis::connection> commands_;
    std::unique_ptr<redis::connection> replicated_writes_;  ///< only with min_replicas
    std::shared_ptr<write_gate> gate_;                      ///< only with min_replicas
    std::unique_ptr<redis::connection> subscriber_;
    std::mutex waiters_mutex_;
    std::multimap<std::string, std::shared_ptr<waiter>, std::less<>> waiters_;
    std::mutex cycles_mutex_;
    std::map<std::pair<std::string, std::string>, cycle_record> cycles_;  ///< (account, holder) -> cycle
};

// One async_wait_for_change. Its state lives on its strand.
struct redis_token_store::waiter {
    waiter(asio::any_io_executor ex, std::string a, std::uint64_t known, load_handler h)
        : strand(asio::make_strand(ex)),
          account(std::move(a)),
          known_generation(known),
          handler(std::move(h)),
          deadline(strand),
          poll(strand) {}

    asio::strand<asio::any_io_executor> strand;
    std::string account;
    std::uint64_t known_generation;
    load_handler handler;
    asio::steady_timer deadline;
    asio::steady_timer poll;
    bool done = false;
    bool checking = false;
    bool recheck = false;  // a wake-up arrived during a read: read again
};

void redis_token_store::async_wait_for_change(std::string account, std::uint64_t known_generation,
                                              std::chrono::milliseconds max_wait, load_handler handler) {
    auto w = std::make_shared<waiter>(ex_, std::move(account), known_generation, std::move(handler));
    // The slot belongs to the caller: it is assigned here, on the initiating thread, and never
    // touched again (not cleared on completion: that would race with the caller emitting on its
    // own thread). Like Asio's own operations, the handler left in it after completion does
    // nothing: it holds the waiter and the store weakly, and a finished waiter ignores it.
    // Assigned before the waiter can be reached (it enters waiters_ on its strand, below): a
    // publication on another thread could otherwise finish it, and call its handler, while this
    // thread still reads the handler's slot, or assigns to a slot its caller has since reused.
    auto slot = asio::get_associated_cancellation_slot(w->handler);
    if (slot.is_connected()) {
        slot.assign(
            [weak_self = weak_from_this(), weak = std::weak_ptr<waiter>(w)](asio::cancellation_type type) {
                if ((type & (asio::cancellation_type::terminal | asio::cancellation_type::total)) ==
                    asio::cancellation_type::none) {
                    return;
                }
                auto self = weak_self.lock();
                auto w = weak.lock();
                if (self && w) {
                    asio::post(w->strand, [self, w] { self->finish(w, asio::error::operation_aborted, {}); });
                }
            });
    }
    asio::post(w->strand, [self = shared_from_this(), w, max_wait] {
        if (w->done) {
            return;  // cancelled before it got here (finish ran on this strand)
        }
        {
            const std::lock_guard lock(self->waiters_mutex_);
            self->waiters_.emplace(w->account, w);
        }
        // After the insert: a finish that empties waiters_ disconnects the subscription, and must
        // not do so between this connect and this waiter's arrival.
        self->subscriber_->ensure_connected();
        w->deadline.expires_after(max_wait);
        w->deadline.async_wait([self, w](error_code ec) {
            if (!ec) {
                self->finish(w, {}, std::nullopt);
            }
        });
        self->check(w);
    });
}

std::vector<std::shared_ptr<redis_token_store::waiter>> redis_token_store::waiters_of(
    std::optional<std::string_view> account) {
    std::vector<std::shared_ptr<waiter>> found;
    const std::lock_guard lock(waiters_mutex_);
    if (account) {
        const auto [first, last] = waiters_.equal_range(*account);
        for (auto it = first; it != last; ++it) {
            found.push_back(it->second);
        }
    } else {
        for (const auto& [name, w] : waiters_) {
            found.push_back(w);
        }
    }
    return found;
}

void redis_token_store::wake_waiters(std::optional<std::string_view> account) {
    for (auto& w : waiters_of(account)) {
        asio::post(w->strand, [self = shared_from_this(), w] { self->check(w); });
    }
}

void redis_token_store::lease_given_back(std::string_view account) {
    for (auto& w : waiters_of(account)) {
        asio::post(w->strand, [self = shared_from_this(), w] {
            // A cache of this process that holds the account's lease waits for another holder's
            // commit (one that marked its request sent): only a commit, or its time, may end
            // that wait, or the refresh token the other holder may have spent would be sent.
            // No release can free a lease held here; this guards against a message misread.
            if (!self->holds_the_lease(w->account)) {
                self->finish(w, {}, std::nullopt);
            }
        });
    }
}

// On the waiter's strand.
void redis_token_store::check(const std::shared_ptr<waiter>& w) {
    if (w->done) {
        return;
    }
    if (w->checking) {
        w->recheck = true;
        return;
    }
    w->checking = true;
    // FCALL, not FCALL_RO: a no-writes function runs the same, and an ACL that lists the store's
    // commands (docs/scale-out.md) has FCALL.
    command probe{"FCALL", "apollo_oauth_v8_probe", "2", record_key(w->account), lease_key(w->account)};
    probe.arg(static_cast<std::uint64_t>(options_.sent_grace.count()));
    commands_->async_exec(
        std::move(probe), resendable, [self = shared_from_this(), w](error_code ec, reply r) {
            bool lease_free = false;
            std::optional<stored_tokens> record;
            if (!(ec = classify(ec, r))) {
                ec = decode_probe(r, lease_free, record);
            }
            asio::post(w->strand, [self, w, ec, lease_free, record = std::move(record)]() mutable {
                w->checking = false;
                if (w->done) {
                    return;
                }
                if (ec == errc::corrupt_record) {
                    return self->finish(w, ec, std::nullopt);
                }
                // An unreachable Redis is not an answer: keep polling until max_wait.
                if (!ec && record &&
                    (record->generation > w->known_generation ||
                     (record->generation == w->known_generation &&
                      record->state == record_state::reauthorization_required))) {
                    return self->finish(w, {}, std::move(record));
                }
                // A lease given back unheard (before this waiter subscribed, while the
                // subscription was down, or by a v3 process, which does not publish it) or
                // run out: the cache asks again now, as after a release message.
                // Not while a holder of this store is in a cycle of it: it may be waiting
                // for the commit of a holder that marked its request sent, which only that
                // commit or max_wait may end (its own lease may have run out meanwhile).
                if (!ec && lease_free && !self->in_a_cycle(w->account)) {
                    return self->finish(w, {}, std::nullopt);
                }
                if (w->recheck) {
                    w->recheck = false;
                    return self->check(w);
                }
                self->subscriber_->ensure_connected();
                w->poll.expires_after(self->options_.poll_interval);
                w->poll.async_wait([self, w](error_code ec) {
                    if (!ec) {
                        self->check(w);
                    }
                });
            });
        });
}

// On the waiter's strand.
void redis_token_store::finish(const std::shared_ptr<waiter>& w, error_code ec,
                               std::optional<stored_tokens> record) {
    if (w->done) {
        return;
    }
    w->done = true;
    w->deadline.cancel();
    w->poll.cancel();
    // The handler's cancellation slot is left alone: see async_wait_for_change.
    bool last_waiter = false;
    {
        const std::lock_guard lock(waiters_mutex_);
        const auto [first, last] = waiters_.equal_range(w->account);
        for (auto it = first; it != last; ++it) {
            if (it->second == w) {
                waiters_.erase(it);
                break;
            }
        }
        last_waiter = waiters_.empty();
    }
    if (last_waiter) {
        // Nobody to wake: the subscription would only keep the io_context busy. Not at once: a
        // cache that waits again straight away (its acquire answered busy once more) keeps the
        // subscription rather than connect, log in and subscribe anew. And only if no waiter has
        // come by then, checked on the subscriber's strand: decided here, after the mutex, the
        // disconnection could run after a waiter that came meanwhile on another thread had asked
        // for the connection (a no-op: still connected), which then had no subscription until
        // its next poll. A waiter that comes after the check connects it again.
        subscriber_->disconnect_if_unused(subscription_grace, [weak = weak_from_this()] {
            const auto self = weak.lock();
            if (!self) {
                return true;
            }
            const std::lock_guard lock(self->waiters_mutex_);
            return self->waiters_.empty();
        });
    }
    asio::post(
        ex_, [w, ec, record = std::move(record)]() mutable { std::move(w->handler)(ec, std::move(record)); });
}

}  // namespace

std::shared_ptr<token_store> make_redis_token_store(boost::asio::any_io_executor ex, redis_options options) {
    if (options.key_prefix.find_first_of("{}") != std::string::npos) {
        throw std::invalid_argument("redis_options.key_prefix must not contain '{' or '}'");
    }
    if (!options.user.empty() && options.password.empty()) {
        throw std::invalid_argument(
            "redis_options.user needs a password: without one no AUTH is sent, and the commands would run as "
            "the default user");
    }
    // WAIT's timeout 0 would block for ever.
    if (options.min_replicas != 0 && options.replica_timeout.count() <= 0) {
        throw std::invalid_argument("redis_options.replica_timeout must be above 0");
    }
    auto store = std::make_shared<redis_token_store>(std::move(ex), std::move(options));
    store->start();
    return store;
}

}  // namespace apollo_oauth

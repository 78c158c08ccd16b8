// redis_token_store: a token_store on a Redis 7 server, shared by caches on many hosts.
//
// Every cache that uses the same Redis (and key prefix) takes part in one coordination protocol:
// one refresh per rotation across all of them (docs/scale-out.md). The atomic steps (acquire,
// mark-sent, renew, commit, release, mark-reauthorization) are Redis Functions. Every connection
// reads the library (FUNCTION LIST) and loads it only when it is missing or other (FUNCTION LOAD
// REPLACE), so a restarted or failed-over server has them again, and a server that refuses writes
// (full under noeviction, too few replicas for min-replicas-to-write) still serves the stored
// pairs to a process that connects then.
//
// Data, per account A and key prefix P:
//   P{A}        a hash: format, generation, the pair, expiry, state (ok / reauthorization_required)
//               and the refresh in flight (owner, generation, phase, deadline);
//   P{A}:lease  the lease, "owner|generation|cycle" (cycle: a random id per holder's lease), with a
//               time bound (PX).
// Both keys carry the hash tag {A}, so one account's keys would share a cluster slot; but Redis
// Cluster is not supported (MOVED is not followed, and FUNCTION LOAD reaches one node), nor is
// Sentinel (the store never asks one where the primary is): use one primary at one address that
// follows it through a failover (a virtual IP, a DNS name updated at failover, a managed service's
// primary endpoint). A connection whose server was demoted is dropped at its first write
// (READONLY: that command fails, retryable), and the next one resolves `host` again
// (docs/scale-out.md, "Failover"). Commits and
// reauthorizations PUBLISH the account on the channel P + "changed", and a release that gave a
// lease back its key P{A}:lease; one subscriber connection per store wakes that process's waiter
// (on a release, so that its cache asks for the lease again at once), and a waiter also polls
// (pub/sub drops messages while disconnected).
//
// I/O: hiredis parses and formats RESP, nothing more; sockets, TLS, deadlines, pipelining and
// reconnection are Asio's. No operation blocks. When Redis cannot be reached every operation fails
// with errc::coordination_unavailable (retryable): the cache then serves valid tokens and refuses
// to refresh without coordination.
#pragma once

#include <apollo_oauth/config.hpp>
#include <apollo_oauth/secret.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace apollo_oauth {

/// What a connection learned of the server's persistence and eviction (CONFIG GET appendonly,
/// appendfsync, maxmemory-policy). Replication is not here: see redis_options::min_replicas.
struct redis_durability {
    /// False when CONFIG GET was refused (managed Redis often disables it): nothing is known.
    bool known = false;
    bool appendonly = false;
    std::string appendfsync{};       ///< "always", "everysec", "no" (empty when unknown)
    std::string maxmemory_policy{};  ///< "noeviction", "allkeys-lru", ... (empty when unknown)
    /// True only with appendonly yes and appendfsync always: a pair acknowledged by Redis then
    /// survives a crash of the Redis host. Anything else can forget the newest pair, and the
    /// customer must then authorize again (Apollo revoked the pair before it).
    bool survives_crash() const noexcept { return known && appendonly && appendfsync == "always"; }
    /// False under an allkeys-* policy, which may evict an account's record (it has no expiry;
    /// a volatile-* policy never evicts it) and with it the only live pair, once memory is full.
    bool keeps_records() const noexcept { return known && !maxmemory_policy.starts_with("allkeys-"); }
};

struct redis_options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 6379;
    /// SELECT'ed after connecting (0: none sent). Redis Cluster has database 0 only. It separates
    /// the keys, not the pub/sub channel (Redis's channels ignore the database): deployments that
    /// share a server need different key_prefix values (see there).
    unsigned database = 0;
    /// ACL user for AUTH (empty: the "default" user, with `password` alone, or no AUTH at all).
    /// Needs a password (any one for a `nopass` user).
    std::string user{};
    /// Sent in AUTH; never logged, never in an error or exception.
    secret_string password{};

    /// TLS to Redis (rediss://). Peer and host-name verification are always on; trust comes from
    /// tls.ca_file / tls.ca_pem and the system store, as for the OAuth client.
    bool use_tls = false;
    tls_config tls{};
    /// The name sent in SNI and checked against the certificate (empty: `host`).
    std::string tls_server_name{};

    /// Resolve, TCP connect and TLS handshake, together. Default 5 s. The connection's first
    /// commands (AUTH, SELECT, FUNCTION LIST and, when needed, FUNCTION LOAD) then have
    /// command_timeout, as every command.
    std::chrono::milliseconds connect_timeout{5'000};
    /// From a command's write to its reply. A reply that is late closes the connection (every
    /// command on it fails with coordination_unavailable), except on a connection that had been
    /// idle for 5 s or more with no byte of a reply since: that one was most likely cut silently
    /// while idle (a NAT or load balancer), and its commands are sent once more on a new
    /// connection (every command of the store is safe to run twice), so that they may take two
    /// command_timeouts and a connect. Every connection has TCP keepalive (probes after 30 s
    /// idle, every 10 s, 3 unanswered end it), which keeps such paths open. Default 2 s.
    std::chrono::milliseconds command_timeout{2'000};

    /// Replicas that must acknowledge each write another host must not miss after a failover (a
    /// commit, a mark-sent, a reauthorization), within replica_timeout: Redis replicates
    /// asynchronously, and a failover to a replica that missed a commit serves the pair before it,
    /// whose refresh token the server has revoked. With N > 0 each such write is followed by
    /// WAIT N replica_timeout on its connection, and fewer acknowledgements fail it with
    /// coordination_unavailable (retryable: the cache keeps the pair and writes it again; a
    /// mark-sent that fails sends nothing). Once a WAIT has counted too few, commits and
    /// mark-sents go one at a time, and those that come meanwhile are held: sent when that one is
    /// acknowledged, failed unsent (coordination_unavailable) when it is not, whatever the reason;
    /// each learns its outcome within about two replica_timeouts (plus a reconnection's time).
    /// A reauthorization mark is always sent. 0 (default): not waited for; set it to the number
    /// of replicas a failover may promote from (docs/scale-out.md).
    unsigned min_replicas = 0;
    /// How long WAIT waits for them: above 0. Their replies may come this much later than
    /// command_timeout. Default 500 ms.
    std::chrono::milliseconds replica_timeout{500};

    /// Prefix of every key and of the channel. No '{' or '}' (they would break the hash tag).
    /// What separates deployments that share a server: two with the same prefix on different
    /// databases have their keys apart but one channel, and each one's waiters also wake on the
    /// other's commits and lease releases of accounts named alike (harmless: a waiter re-reads,
    /// or its cache asks for the lease again and is told busy, but a wasted round trip each).
    std::string key_prefix = "apollo_oauth:";

    /// A lease whose holder marked its request sent and then went silent is still honoured this
    /// long after it ran out: the token endpoint may have rotated the pair, and the holder may yet
    /// commit it. Default 5 s.
    std::chrono::milliseconds sent_grace{5'000};
    /// A waiter (async_wait_for_change) re-reads the record and the lease this often even without
    /// a pub/sub message. Default 250 ms.
    std::chrono::milliseconds poll_interval{250};

    /// Called after every (re)connection of the command connection with what the server reports
    /// about persistence and eviction. Check durability.survives_crash() and keeps_records(): when
    /// false, a pair written just before a Redis crash, or evicted, may be forgotten
    /// (docs/scale-out.md gives the settings). Runs on the
    /// store's executor; must not block. Default: none (nothing is reported).
    std::function<void(const redis_durability& durability)> on_durability{};
};

/// Prints host, port, database, user, TLS, prefix and min_replicas; the password prints as
/// [redacted].
std::ostream& operator<<(std::ostream& os, const redis_options& options);

/// Parses `redis://[[user]:password@]host[:port][/database][?key_prefix=P&min_replicas=N]` (TLS: `rediss://`)
/// (the password may be left out, to be set from the environment or a file before the store is
/// made)
/// into `out`. The URL sets the whole location: use_tls (the scheme), host, port (6379 when left
/// out) and database (0 when left out). The other fields change only where the URL names them:
/// user and password from the userinfo (a password it leaves out is kept), key_prefix and
/// min_replicas from the query; the rest (timeouts, TLS settings, ...) keep their current values.
/// Percent-encoded user and password are decoded. IPv6 hosts go in brackets. Pure; no I/O.
/// Errors: errc::invalid_url (not such a URL, a bad port or database, an unknown query
/// parameter, a prefix with '{' or '}'). The error never contains the URL, which may hold the
/// password.
error_code parse_redis_url(std::string_view url, redis_options& out);

/// A token_store on Redis 7 (see above). Connects lazily, on the first operation; reconnects after
/// any failure. Handlers run on `ex` (through a post, never inline). Thread-safe.
///
/// Operations beyond token_store's documentation:
/// - async_wait_for_change honours total and terminal cancellation (operation_aborted); the
///   other operations are short (command_timeout) and not cancellable.
/// - A lease is this store object's: an async_acquire that holds none for the account and holder
///   draws a cycle id (one that holds one stays in it), and async_mark_sent, async_renew and
///   async_release act only on the lease of that cycle, which a release or a commit ends, as does
///   an answer that the holder no longer holds it (an acquire answered busy, a mark-sent or renewal
///   answered errc::lease_lost), so a late command of an earlier cycle, delivered after its
///   connection timed out, cannot act on the next one. Without one (never acquired here, or ended
///   since), mark-sent and renew are errc::lease_lost and release does nothing.
/// - async_release ends the holder's mark_sent of that cycle even when the cycle's lease ran out
///   (or went to another holder) before the release arrived: the holder has nothing left to
///   commit, so nobody is kept waiting for it (token_store's contract says so of a release that
///   gives the lease back; the lease itself is left to whoever holds it).
/// - Errors: errc::coordination_unavailable (Redis unreachable, timed out, refused the login or
///   the function library), errc::corrupt_record (a key of ours holds something the store did
///   not write: another type, a missing or malformed field, a reply of an unexpected shape),
///   errc::invalid_argument from a save or commit of what the record cannot hold and give back
///   (an empty access token, a scope that is empty or holds a space, a time beyond year 2255, a
///   generation above 2^53 - 1; nothing is written). A pair without a refresh token, and any token_type, are
///   kept.
/// Throws std::invalid_argument for a key_prefix with '{' or '}', a user without a password
/// (AUTH is sent only with one: the commands would run as Redis's "default" user) or, with
/// min_replicas, a replica_timeout not above 0;
/// boost::system::system_error
/// when the TLS CA file cannot be loaded.
std::shared_ptr<token_store> make_redis_token_store(boost::asio::any_io_executor ex, redis_options options);

}  // namespace apollo_oauth

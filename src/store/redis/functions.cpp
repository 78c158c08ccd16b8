#include "store/redis/functions.hpp"

namespace apollo_oauth::redis {

// Keys: KEYS[1] the account's hash, KEYS[2] its lease ("owner|generation|cycle", PX). Times are
// the server's (TIME), in milliseconds, so no client clock matters.
//
// The cycle is a random id the holder's store draws for each acquire. mark_sent, renew and
// release name it, so that a late one (a command that timed out on a connection given up, whose
// bytes the kernel still delivered later) cannot act on the lease of the same holder's next
// cycle: a late release deleted that lease, and the grace of the refresh it had marked sent,
// letting another host spend the refresh token the holder's request was spending.
//
// Hash fields: format ("1": ours), gen, access, refresh, type, scopes, expires_in, created_at,
// expires_at, state ("ok" | "reauth"); the refresh in flight: f_owner, f_gen, f_phase ("leased" |
// "sent" | "released"), f_until (when a sent request's lease runs out); sent_by / sent_gen /
// sent_cycle: the last holder that marked a request sent for that generation, and the cycle it
// marked in (until the next commit, or that holder's release), which tells a successor that the
// refresh token may already be spent. (sent_cycle is v7's: v6 wrote none, and its release leaves
// one behind; it is read only beside a sent_by of a v7 holder, whose mark-sent always writes it.)
//
// Replies are bulk strings ("ok", "lost", "conflict", "unknown") or arrays whose first element
// names the outcome; a key of ours that holds something else fails with a "CORRUPT ..." error.
constexpr std::string_view library = R"lua(#!lua name=apollo_oauth_v8

local function corrupt(what)
  return error({err = 'CORRUPT ' .. what})
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The stored generation (0: no record).
local function generation(rec)
  local kind = redis.call('TYPE', rec)['ok']
  if kind == 'none' then return 0 end
  if kind ~= 'hash' then corrupt('record is not a hash') end
  if redis.call('HGET', rec, 'format') ~= '1' then corrupt('record format') end
  local g = tonumber(redis.call('HGET', rec, 'gen'))
  if not g or g < 1 or g ~= math.floor(g) then corrupt('record generation') end
  return g
end

-- The lease's value, or false.
local function lease_value(lease)
  local kind = redis.call('TYPE', lease)['ok']
  if kind == 'none' then return false end
  if kind ~= 'string' then corrupt('lease is not a string') end
  return redis.call('GET', lease)
end

-- A generation as text: decimal digits, exact up to 2^53 - 1 (record_codec.hpp). Lua's `..` and
-- tostring print a number with %.14g, so from 10^14 on they wrote "1e+14" into the lease, which
-- owner_of does not read as a generation. %d goes through a C long here: exact to 2^53.
local function gen_text(g)
  return string.format('%d', g)
end

local function owner_of(value)
  return string.match(value, '^(.*)|%d+|[^|]*$')
end

local function cycle_of(value)
  return string.match(value, '|([^|]*)$')
end

-- A holder that marked its request sent and went silent may still commit what the server
-- answered: its lease ran out, but the grace period keeps others off a spent refresh token. f is
-- HMGET's f_owner, f_gen, f_phase, f_until; the answer is how long that grace keeps `holder` off
-- (0: not at all; the sender itself is never kept off; holder false: someone who holds nothing).
local function sent_grace_left(f, g, holder, grace, now)
  if f[3] == 'sent' and f[1] ~= holder and tonumber(f[2]) == g then
    return math.max((tonumber(f[4]) or 0) + grace - now, 0)
  end
  return 0
end

-- acquire(holder, known_generation, ttl_ms, grace_ms, cycle)
local function acquire(keys, args)
  local rec, lease = keys[1], keys[2]
  local holder, known, ttl, grace = args[1], tonumber(args[2]), tonumber(args[3]), tonumber(args[4])
  local cycle = args[5]
  local g = generation(rec)
  if g > known then
    return {'newer', redis.call('HGETALL', rec)}
  end
  if g > 0 and g == known and redis.call('HGET', rec, 'state') == 'reauth' then
    return {'reauth'}
  end
  local current = lease_value(lease)
  if current and owner_of(current) ~= holder then
    return {'busy', math.max(redis.call('PTTL', lease), 0)}
  end
  local now = now_ms()
  local previous_sent = 0
  if g > 0 then
    local f = redis.call('HMGET', rec, 'f_owner', 'f_gen', 'f_phase', 'f_until', 'sent_by', 'sent_gen')
    local left = sent_grace_left(f, g, holder, grace, now)
    if left > 0 then return {'busy', left} end
    if tonumber(f[6]) == g and f[5] ~= holder then previous_sent = 1 end
    if f[3] == 'sent' and f[1] == holder and tonumber(f[2]) == g then
      -- The holder's own request is out (it acquires again, or an acquire of its earlier cycle
      -- arrives late): the refresh token stays marked spent, and the grace runs from the later end.
      redis.call('HSET', rec, 'f_until', math.max(tonumber(f[4]) or 0, now + ttl))
    else
      redis.call('HSET', rec, 'f_owner', holder, 'f_gen', gen_text(g), 'f_phase', 'leased',
                 'f_until', now + ttl)
    end
  end
  redis.call('SET', lease, holder .. '|' .. gen_text(g) .. '|' .. cycle, 'PX', ttl)
  if g == 0 then return {'granted', 0} end
  return {'granted', previous_sent, redis.call('HGETALL', rec)}
end

-- mark_sent(holder, generation, ttl_ms, cycle): the last check before the token request.
local function mark_sent(keys, args)
  local rec, lease = keys[1], keys[2]
  local holder, gen, ttl = args[1], tonumber(args[2]), tonumber(args[3])
  local mine = holder .. '|' .. gen_text(gen) .. '|' .. args[4]
  if generation(rec) ~= gen or lease_value(lease) ~= mine then return 'lost' end
  redis.call('PEXPIRE', lease, ttl)
  -- Generation 0 has no record (and no refresh token to spend): a hash made here would have no
  -- format field, and every later call on the account would find it corrupt.
  if gen > 0 then
    redis.call('HSET', rec, 'f_owner', holder, 'f_gen', gen_text(gen), 'f_phase', 'sent',
               'f_until', now_ms() + ttl, 'sent_by', holder, 'sent_gen', gen_text(gen),
               'sent_cycle', args[4])
  end
  return 'ok'
end

-- renew(holder, generation, ttl_ms, cycle)
local function renew(keys, args)
  local rec, lease = keys[1], keys[2]
  local holder, gen, ttl = args[1], tonumber(args[2]), tonumber(args[3])
  local mine = holder .. '|' .. gen_text(gen) .. '|' .. args[4]
  if generation(rec) ~= gen or lease_value(lease) ~= mine then return 'lost' end
  redis.call('PEXPIRE', lease, ttl)
  if gen > 0 and redis.call('HGET', rec, 'f_owner') == holder then
    redis.call('HSET', rec, 'f_until', now_ms() + ttl)
  end
  return 'ok'
end

-- commit(holder, expected, generation, access, refresh, type, scopes, expires_in, created_at,
--        expires_at, channel, account): compare-and-set on the generation.
local function commit(keys, args)
  local rec, lease = keys[1], keys[2]
  local holder, expected, gen = args[1], tonumber(args[2]), tonumber(args[3])
  local g = generation(rec)
  if g == gen and redis.call('HGET', rec, 'access') == args[4] and redis.call('HGET', rec, 'refresh') == args[5] then
    -- A retry whose first attempt landed (its reply was lost). It writes the generation again,
    -- unchanged: a write the replicas must acknowledge too, so that a WAIT after it (min_replicas)
    -- covers the first attempt's write. Redis 7.2 and later advance a connection's replication
    -- offset only for a command that propagated something, and this retry may come on a new
    -- connection that wrote nothing else.
    local current = lease_value(lease)
    if current and owner_of(current) == holder then redis.call('DEL', lease) end
    redis.call('HSET', rec, 'gen', gen_text(gen))
    return 'ok'
  end
  if g ~= expected then return 'conflict' end
  redis.call('DEL', rec)
  redis.call('HSET', rec, 'format', '1', 'gen', gen_text(gen), 'access', args[4], 'refresh', args[5],
             'type', args[6], 'scopes', args[7], 'expires_in', args[8], 'created_at', args[9],
             'expires_at', args[10], 'state', 'ok')
  -- Any lease now names an older generation: its holder's mark-sent and renew fail anyway.
  redis.call('DEL', lease)
  redis.call('PUBLISH', args[11], args[12])
  return 'ok'
end

-- release(holder, cycle, channel): compare-and-delete, that cycle's lease only. A lease given
-- back is published (the lease's key, on the channel of the changes) so that other hosts waiting
-- for it ask again at once instead of waiting out its time. Without the channel it publishes
-- nothing, as v3's release.
--
-- A holder gives its lease back only with no rotated pair left to commit (its request failed, or
-- never left; a cache with a pair unstored keeps renewing until the pair lands), and here its
-- release reached Redis: it is not cut off either. So its own mark-sent ends here: the next holder
-- is not told previous_holder_sent for it (and would wait backoff_max for a commit that cannot
-- come). A mark of another holder (a silent sender before this one) stays.
--
-- That holds too when its lease is gone by the time the release arrives (it ran out in a slow
-- refresh or an outage, or another holder has it since): the mark made in the cycle it names ends,
-- and with it the grace (published like a lease given back: waiters ask again). v6 returned at
-- once without a lease of its own, so the mark stayed, and every process waited out the grace and
-- then backoff_max for a commit that could not come. Only the mark of that cycle: a release is the
-- last command of its cycle, and a late one (a timed-out connection's bytes, delivered after the
-- holder had acquired and marked anew) must not end the mark of the holder's next cycle.
local function release(keys, args)
  local rec, lease = keys[1], keys[2]
  local holder, cycle = args[1], args[2]
  local current = lease_value(lease)
  if current and owner_of(current) == holder and cycle_of(current) == cycle then
    redis.call('DEL', lease)
    if args[3] then redis.call('PUBLISH', args[3], lease) end
    if generation(rec) > 0 then
      local f = redis.call('HMGET', rec, 'f_owner', 'f_phase', 'sent_by', 'sent_cycle')
      -- A mark this holder made in another cycle stays, and its grace with it: an acquire of an
      -- ended cycle delivered late names that cycle on the lease again, after the holder's next
      -- cycle marked its request sent, and that cycle's late release must not end the mark of a
      -- request that may be out (another process would send the same refresh token). Only the
      -- marking cycle's release, or a commit, ends it. (A v6 mark names no cycle: ended as before.)
      local others_mark = f[3] == holder and f[4] and f[4] ~= cycle
      if f[1] == holder and not (others_mark and f[2] == 'sent') then
        -- Known outcome: no grace for others.
        redis.call('HSET', rec, 'f_phase', 'released', 'f_until', 0)
      end
      if f[3] == holder and not others_mark then
        redis.call('HDEL', rec, 'sent_by', 'sent_gen', 'sent_cycle')
      end
    end
    return 'ok'
  end
  if generation(rec) > 0 then
    local f = redis.call('HMGET', rec, 'f_owner', 'f_phase', 'sent_by', 'sent_cycle')
    if f[3] == holder and f[4] == cycle then
      if f[1] == holder and f[2] == 'sent' then
        -- Its mark-sent set these (an acquire of another holder since would name that one).
        redis.call('HSET', rec, 'f_phase', 'released', 'f_until', 0)
        if args[3] and not current then redis.call('PUBLISH', args[3], lease) end
      end
      redis.call('HDEL', rec, 'sent_by', 'sent_gen', 'sent_cycle')
    end
  end
  return 'ok'
end

-- probe(grace_ms), no writes: what a waiter reads. Whether an acquire by a holder that holds
-- nothing would find the lease free now (no lease, and no silent sender's grace running), and
-- the record. A waiter that finds it free asks for the lease again rather than wait out a lease
-- whose release it did not hear (given back before it subscribed, or by a v3 process).
local function probe(keys, args)
  local rec, lease = keys[1], keys[2]
  local g = generation(rec)
  local free = 1
  if lease_value(lease) then
    free = 0
  elseif g > 0 then
    local f = redis.call('HMGET', rec, 'f_owner', 'f_gen', 'f_phase', 'f_until')
    if sent_grace_left(f, g, false, tonumber(args[1]), now_ms()) > 0 then free = 0 end
  end
  return {free, redis.call('HGETALL', rec)}
end

-- mark_reauth(generation, channel, account)
local function mark_reauth(keys, args)
  local rec = keys[1]
  local gen = tonumber(args[1])
  local g = generation(rec)
  if g == 0 then return 'unknown' end
  if g ~= gen then return 'conflict' end
  redis.call('HSET', rec, 'state', 'reauth')
  redis.call('PUBLISH', args[2], args[3])
  return 'ok'
end

-- Function names are global across a server's libraries: they carry the library's version, so
-- that a later library loads beside this one while processes of both run (each loads its own
-- with REPLACE, never the other's). v1 named its functions apollo_oauth_*; v2 writes the
-- generation again in a retried commit (below); v3 names a holder's cycle in the lease. While v2
-- and v3 processes run side by side, each reads the other's lease as held by someone else (the
-- owner patterns do not match), which keeps them apart until it runs out. v4 publishes a lease a
-- release gave back; its keys and lease are v3's, so v3 and v4 processes coordinate as one (a v3
-- process's release publishes nothing, and waiters wait out its lease). Had v4 kept v3's name,
-- each v3 process connecting would have put v3's release back for every process. v5 adds probe
-- (under v4's name, each v4 process connecting would remove it for every process); its keys and
-- lease are v4's, so v4 and v5 processes coordinate as one (a v4 waiter does not probe). v6's
-- release clears its holder's own sent mark (under v5's name, each v5 process connecting would
-- put back, for every process, the release that keeps it); its keys and lease are v5's, so v5 and
-- v6 processes coordinate as one (after a v5 process's release, the next holder still waits for
-- it, up to backoff_max, as before). v6 also writes generations from 10^14 on as digits (v5 wrote
-- "1e+14" into its lease and then did not know the lease as its own); a v5 and a v6 process still
-- read each other's lease as another holder's, which it is. v7's release also ends the mark of
-- the cycle it names when that cycle's lease is already gone (under v6's name, each v6 process
-- connecting would put back, for every process, the release that leaves it); its keys and lease
-- are v6's, so v6 and v7 processes coordinate as one. A v7 mark-sent also writes sent_cycle, a
-- field v6 neither reads nor clears (its release leaves it, beside no sent_by of a v7 holder); a
-- v6 mark has none, and no v7 release ends it without a lease, as before. v8's release, holding
-- the lease of the cycle it names, leaves a mark this holder made in another cycle (v7 ended it:
-- a late acquire of an ended cycle, then that cycle's late release, ended the next cycle's mark);
-- its keys, lease and marks are v7's, so v7 and v8 processes coordinate as one.
redis.register_function('apollo_oauth_v8_acquire', acquire)
redis.register_function('apollo_oauth_v8_mark_sent', mark_sent)
redis.register_function('apollo_oauth_v8_renew', renew)
redis.register_function('apollo_oauth_v8_commit', commit)
redis.register_function('apollo_oauth_v8_release', release)
redis.register_function('apollo_oauth_v8_mark_reauth', mark_reauth)
redis.register_function{function_name = 'apollo_oauth_v8_probe', callback = probe, flags = {'no-writes'}}
)lua";

std::string_view function_library() noexcept {
    return library;
}

std::string_view function_library_name() noexcept {
    constexpr std::string_view head = "#!lua name=";
    static_assert(library.starts_with(head));
    constexpr auto name = library.substr(head.size(), library.find('\n') - head.size());
    static_assert(!name.empty() && name.find_first_of("*?[]\\") == std::string_view::npos,
                  "a name that FUNCTION LIST's LIBRARYNAME, a glob pattern, matches as it is");
    return name;
}

bool lists_this_library(const reply& listed) noexcept {
    if (!listed.is_array()) {
        return false;
    }
    // RESP2: one array per library, of names and values ("library_name", name, "engine", "LUA",
    // "functions", [...], "library_code", code).
    for (const reply& library_entry : listed.elements) {
        const auto& fields = library_entry.elements;
        bool named = false;
        bool same_code = false;
        for (std::size_t i = 0; library_entry.is_array() && i + 1 < fields.size(); i += 2) {
            if (fields[i].text == "library_name") {
                named = fields[i + 1].is_string() && fields[i + 1].text == function_library_name();
            } else if (fields[i].text == "library_code") {
                same_code = fields[i + 1].is_string() && fields[i + 1].text == function_library();
            }
        }
        if (named && same_code) {
            return true;
        }
    }
    return false;
}

}  // namespace apollo_oauth::redis

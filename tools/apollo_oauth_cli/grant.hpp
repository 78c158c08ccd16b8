// The end of the browser dance, shared by `login` and `exchange`: exchange the code, store the
// pair in the file store, report what was granted (never the tokens).
#pragma once

#include "output.hpp"
#include "settings.hpp"

#include <apollo_oauth/authorization.hpp>
#include <apollo_oauth/token_set.hpp>

#include <boost/json/object.hpp>

namespace apollo_oauth::cli {

/// Exchanges `grant` and stores the tokens for s.account through the token cache (async_store),
/// then waits for the cache to finish (session::finish). The account's record is read first: one
/// the store cannot read (corrupt_record: its generation is unknown, so the store refuses to
/// replace it) fails the command before the code is sent, as check_record_readable says.
int exchange_and_store(const settings& s, authorization_grant grant, const reporter& out);

/// Reads the account's record from the store: exit_ok, or the exit code of the failure it
/// reported when the store cannot read it (naming the file store's file and saying to move it
/// aside), so that `login` and `exchange` stop before they use up a state or spend a code on a
/// pair that could not be saved.
int check_record_readable(const settings& s, const reporter& out);

/// What can be said about a pair without revealing it: account, scopes, expiry.
boost::json::object describe_tokens(const settings& s, const token_set& tokens);

/// "(scopes: a b); access token valid until 2026-11-29T05:00:00Z", for people.
std::string summarize_tokens(const token_set& tokens);

/// "2026-11-29T05:00:00Z".
std::string format_utc(std::chrono::system_clock::time_point t);

}  // namespace apollo_oauth::cli

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
/// then waits for the cache to finish (session::finish).
int exchange_and_store(const settings& s, authorization_grant grant, const reporter& out);

/// What can be said about a pair without revealing it: account, scopes, expiry.
boost::json::object describe_tokens(const settings& s, const token_set& tokens);

/// "(scopes: a b); access token valid until 2026-11-29T05:00:00Z", for people.
std::string summarize_tokens(const token_set& tokens);

/// "2026-11-29T05:00:00Z".
std::string format_utc(std::chrono::system_clock::time_point t);

}  // namespace apollo_oauth::cli

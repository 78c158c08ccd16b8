// The example's HTML. Every value from outside (names, emails, messages) goes through escape().
#pragma once

#include "account.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace web_app {

std::string escape(std::string_view text);

/// GET /: the accounts this browser session connected, the operator's demo account when there is
/// one (labelled as such: every visitor sees it), and a link to /connect.
std::string home_page(const std::vector<connected_account>& accounts,
                      const std::optional<connected_account>& demo);
/// After a successful callback: who connected.
std::string connected_page(const connected_account& account, const std::vector<std::string>& scopes);
/// A refusal or failure: a title and one sentence, with a way back.
std::string message_page(std::string_view title, std::string_view message);

}  // namespace web_app

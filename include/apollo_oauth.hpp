// apollo_oauth: an asynchronous C++20 OAuth 2.0 client for Apollo.io. Includes every public header.
#pragma once

#include <apollo_oauth/account_id.hpp>
#include <apollo_oauth/api_client.hpp>
#include <apollo_oauth/api_types.hpp>
#include <apollo_oauth/authorization.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/config.hpp>
#include <apollo_oauth/error.hpp>
#include <apollo_oauth/private_files.hpp>
#include <apollo_oauth/secret.hpp>
#include <apollo_oauth/token_cache.hpp>
#include <apollo_oauth/token_set.hpp>
#include <apollo_oauth/token_store.hpp>
#include <apollo_oauth/user_profile.hpp>

// File names of the file store.
#include "store/record_files.hpp"

#include "store/sha256.hpp"

namespace apollo_oauth::store {
namespace {

constexpr std::string_view record_suffix = ".json";
constexpr std::string_view temp_infix = ".json.tmp-";
constexpr std::size_t key_size = 64;
// The CLI's pending authorization (its PKCE code_verifier), written by replace_private_file_at
// under <key>.pending.lock (tools/apollo_oauth_cli/pending.cpp, files.cpp).
constexpr std::string_view pending_temp_infix = ".pending.json.tmp-";

bool is_pending_temp(std::string_view name) noexcept {
    return name.size() > key_size + pending_temp_infix.size() &&
           name.substr(key_size, pending_temp_infix.size()) == pending_temp_infix;
}

}  // namespace

std::string account_key(std::string_view account) {
    return sha256_hex(account);
}

std::string record_file_name(std::string_view key) {
    return std::string(key) + std::string(record_suffix);
}

std::string lock_file_name(std::string_view key) {
    return std::string(key) + ".lock";
}

std::optional<std::string_view> temp_file_key(std::string_view name) noexcept {
    if ((name.size() <= key_size + temp_infix.size() ||
         name.substr(key_size, temp_infix.size()) != temp_infix) &&
        !is_pending_temp(name)) {
        return std::nullopt;
    }
    const std::string_view key = name.substr(0, key_size);
    return is_lower_hex(key) ? std::optional(key) : std::nullopt;
}

std::string temp_file_lock_name(std::string_view name) {
    const std::string_view key = name.substr(0, key_size);
    return is_pending_temp(name) ? std::string(key) + ".pending.lock" : lock_file_name(key);
}

}  // namespace apollo_oauth::store

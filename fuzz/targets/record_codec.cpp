// Fuzz target: the file store's record files (store/record_codec). A record is only parsed once
// its SHA-256 checksum matches, which a fuzzer cannot forge: when the first input byte is odd the
// target writes the right checksum into the input first, so the field checks get fuzzed too.
#include "store/record_codec.hpp"
#include "fuzz_check.hpp"
#include "store/sha256.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

using namespace apollo_oauth;

namespace {

constexpr std::string_view checksum_prefix = R"(,"checksum":")";
constexpr std::size_t trailer_size = checksum_prefix.size() + 64 + 2;  // + "}

void fix_checksum(std::string& text) {
    const std::size_t end = !text.empty() && text.back() == '\n' ? text.size() - 1 : text.size();
    if (end < trailer_size + 2) {
        return;
    }
    const std::size_t body = end - trailer_size;
    const std::string digest = store::sha256_hex(text.substr(0, body) + "}");
    text.replace(body + checksum_prefix.size(), digest.size(), digest);
}

bool same_record(const stored_tokens& a, const stored_tokens& b) {
    return a.generation == b.generation && a.tokens.access_token == b.tokens.access_token &&
           a.tokens.refresh_token == b.tokens.refresh_token && a.tokens.token_type == b.tokens.token_type &&
           a.tokens.scopes == b.tokens.scopes && a.tokens.expires_in == b.tokens.expires_in &&
           a.tokens.created_at == b.tokens.created_at && a.tokens.expires_at == b.tokens.expires_at;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    // Bit 1 picks an account id that is not UTF-8, stored as "account_hex".
    const std::string_view account = (data[0] & 2) != 0 ? std::string_view(
                                                              "\xff\xfe"
                                                              "acct",
                                                              6)
                                                        : "acct-1";
    std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
    if ((data[0] & 1) != 0) {
        fix_checksum(text);
    }

    stored_tokens record;
    if (store::decode_record(text, account, record)) {
        return 0;
    }
    fuzz::check(store::is_encodable(record), "a record that was read cannot be written");
    store::wiped_string encoded;
    store::encode_record(account, record, encoded);
    stored_tokens again;
    fuzz::check(!store::decode_record(encoded.value, account, again), "a re-encoded record does not decode");
    fuzz::check(same_record(record, again), "decode(encode(record)) differs from record");
    store::wiped_string encoded_again;
    store::encode_record(account, again, encoded_again);
    fuzz::check(encoded.value == encoded_again.value, "encoding is not canonical");
    return 0;
}

// Fuzz target: bytes from a Redis server, through the RESP reader (hiredis' redisReader building
// our reply values) into the record decoder of the Redis store. Whatever arrives, the reader
// either yields replies or reports a protocol error, and the decoder either yields a record or
// errc::corrupt_record; a record that decodes is one a commit accepts, and survives an
// encode/decode round trip unchanged.
#include "fuzz_check.hpp"
#include "store/redis/record.hpp"
#include "store/redis/resp.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

using namespace apollo_oauth;

namespace {

// The HGETALL reply a hash written by the commit function would give for `record`.
redis::reply as_hgetall(const stored_tokens& record) {
    redis::command fields;
    redis::append_record_fields(record, fields);
    std::string resp;
    fields.append_to(resp);  // *7 $.. access $.. refresh ... : parse it back into values
    redis::reader reader;
    redis::reply values;
    fuzz::check(reader.feed(resp) && reader.next(values) == redis::reader::result::complete &&
                    values.is_array() && values.elements.size() == 7,
                "the formatter's output does not parse");
    static constexpr std::string_view names[] = {"access",     "refresh",    "type",      "scopes",
                                                 "expires_in", "created_at", "expires_at"};
    redis::reply out;
    out.type = redis::reply::kind::array;
    const auto add = [&out](std::string_view name, std::string value) {
        redis::reply n;
        n.type = redis::reply::kind::string;
        n.text = name;
        redis::reply v;
        v.type = redis::reply::kind::string;
        v.text = std::move(value);
        out.elements.push_back(std::move(n));
        out.elements.push_back(std::move(v));
    };
    add("format", "1");
    add("gen", std::to_string(record.generation));
    for (std::size_t i = 0; i < 7; ++i) {
        add(names[i], values.elements[i].text);
    }
    add("state", record.state == record_state::ok ? "ok" : "reauth");
    return out;
}

bool same_record(const stored_tokens& a, const stored_tokens& b) {
    return a.generation == b.generation && a.state == b.state &&
           a.tokens.access_token == b.tokens.access_token &&
           a.tokens.refresh_token == b.tokens.refresh_token && a.tokens.token_type == b.tokens.token_type &&
           a.tokens.scopes == b.tokens.scopes && a.tokens.expires_in == b.tokens.expires_in &&
           a.tokens.created_at == b.tokens.created_at && a.tokens.expires_at == b.tokens.expires_at;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    redis::reader reader;
    // Fed in two pieces: a reply split across reads must parse the same.
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    const std::size_t split = size == 0 ? 0 : data[0] % (size + 1);
    if (!reader.feed(bytes.substr(0, split)) || !reader.feed(bytes.substr(split))) {
        return 0;
    }
    for (int replies = 0; replies < 64; ++replies) {
        redis::reply r;
        if (reader.next(r) != redis::reader::result::complete) {
            return 0;
        }
        std::optional<stored_tokens> record;
        if (redis::decode_record(r, record) || !record) {
            continue;
        }
        // What reads back is what a commit accepts: the two rules are one.
        fuzz::check(redis::is_storable(*record), "a decoded record is one a commit would refuse");
        std::optional<stored_tokens> again;
        fuzz::check(!redis::decode_record(as_hgetall(*record), again) && again.has_value(),
                    "a re-encoded record does not decode");
        fuzz::check(same_record(*record, *again), "decode(encode(record)) differs from record");
    }
    return 0;
}

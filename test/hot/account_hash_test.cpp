// account_hash: the snapshot table probes with its low bits and the cache picks a shard with its
// high bits, so both ends must depend on every byte of an id and spread real ids evenly.
#include "cache/account_hash.hpp"

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

using apollo_oauth::detail::account_hash;

namespace {

/// Ids shaped as Apollo's user ids are (24 hex digits, a MongoDB ObjectId: a timestamp, a
/// machine part, and a counter that increments in the last digits).
std::string object_id(unsigned n) {
    char text[25];
    std::snprintf(text, sizeof text, "5e66b6381e05b400%08x", n);
    return text;
}

/// The largest bucket's load against the mean, `ids` hashed into `buckets` by `bucket_of`.
template <class BucketOf>
double worst_load(const std::vector<std::string>& ids, std::size_t buckets, BucketOf bucket_of) {
    std::vector<std::size_t> load(buckets);
    for (const auto& id : ids) {
        ++load[bucket_of(account_hash(id))];
    }
    const double mean = static_cast<double>(ids.size()) / static_cast<double>(buckets);
    return static_cast<double>(*std::max_element(load.begin(), load.end())) / mean;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(account_hashes)

BOOST_AUTO_TEST_CASE(every_byte_of_every_length_changes_the_hash) {
    // Lengths across each load pattern: 1-3, 4-7, 8-16 (two overlapping words), longer (the loop
    // and its overlapping tail).
    for (std::size_t length = 1; length <= 70; ++length) {
        std::string id(length, 'a');
        for (std::size_t i = 0; i < length; ++i) {
            id[i] = static_cast<char>('a' + i % 26);
        }
        const auto base = account_hash(id);
        for (std::size_t i = 0; i < length; ++i) {
            for (int bit = 0; bit < 8; ++bit) {
                std::string changed = id;
                changed[i] = static_cast<char>(changed[i] ^ (1 << bit));
                BOOST_TEST_REQUIRE(account_hash(changed) != base,
                                   "length " << length << ", byte " << i << ", bit " << bit);
            }
        }
        // A longer id that starts with this one (a zero byte appended) is another id.
        BOOST_TEST_REQUIRE(account_hash(id + '\0') != base, "length " << length);
    }
    BOOST_TEST(account_hash("") != account_hash(std::string(1, '\0')));
}

// The mix multiplies an input word xored with a key: a word equal to the key makes a zero factor,
// and a product with a zero factor is zero whatever the other word holds. The other word must
// still count (found in review: 1,000 ids differing in bytes 16-23 once shared one hash).
BOOST_AUTO_TEST_CASE(a_word_that_cancels_its_key_does_not_silence_the_next) {
    using apollo_oauth::detail::account_hash_detail::k1;
    for (const std::size_t length : {std::size_t{16}, std::size_t{40}}) {
        std::string id(length, 'x');
        std::memcpy(id.data(), &k1, sizeof k1);  // the first word xored with k1 is zero
        std::set<std::size_t> hashes;
        for (int b = 0; b < 256; ++b) {
            id[8] = static_cast<char>(b);  // the word the zero factor multiplies
            hashes.insert(account_hash(id));
        }
        BOOST_TEST(hashes.size() == 256u, "length " << length);
    }
}

BOOST_AUTO_TEST_CASE(the_same_id_anywhere_in_memory_hashes_the_same) {
    const std::string a = "account-100042";
    const std::string padded = "xx" + a;
    BOOST_TEST(account_hash(a) == account_hash(std::string_view(padded).substr(2)));
}

BOOST_AUTO_TEST_CASE(real_ids_spread_over_the_probe_bits_and_the_shard_bits) {
    std::vector<std::string> object_ids;
    std::vector<std::string> named;
    for (unsigned n = 0; n < 100'000; ++n) {
        object_ids.push_back(object_id(n));
        named.push_back("account-" + std::to_string(100'000 + n));
    }
    for (const auto* ids : {&object_ids, &named}) {
        // The snapshot table's probe: the low bits (16k buckets, ~6 ids each on average). A
        // uniform hash's fullest bucket holds about 3x the mean here; a weak one, tens of times.
        BOOST_TEST(worst_load(*ids, 1u << 14, [](std::size_t h) { return h & ((1u << 14) - 1); }) < 4.0);
        // The cache's 64 shards: the top 6 bits after a Fibonacci multiply (cache_impl.cpp).
        BOOST_TEST(worst_load(*ids, 64, [](std::size_t h) { return (h * 0x9E3779B97F4A7C15ull) >> 58; }) <
                   1.1);
        // And the top bits alone, unmultiplied.
        BOOST_TEST(worst_load(*ids, 64, [](std::size_t h) { return h >> 58; }) < 1.1);
    }
}

BOOST_AUTO_TEST_SUITE_END()

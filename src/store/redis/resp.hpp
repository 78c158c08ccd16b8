// RESP values, parsed and formatted by hiredis (its reader and command formatter only: no hiredis
// I/O). A reply is an owned tree whose strings are wiped when destroyed (they carry tokens).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct redisReader;

namespace apollo_oauth::redis {

/// Zeroes every byte `s` owns (capacity, not only size) and empties it.
void wipe(std::string& s) noexcept;

/// Appends `more` to `out`. When `out` must grow, its old block is wiped before it is freed: it
/// holds the commands already formatted (a commit's tokens, AUTH's password), and a plain append
/// would free it as it is.
void append_wiping_growth(std::string& out, std::string_view more);

/// One RESP2 value.
struct reply {
    enum class kind : std::uint8_t { nil, status, error, integer, string, array };

    reply() = default;
    reply(const reply&) = delete;
    reply& operator=(const reply&) = delete;
    reply(reply&&) noexcept = default;
    reply& operator=(reply&&) noexcept = default;
    ~reply() { wipe(text); }

    kind type = kind::nil;
    std::string text;  ///< status, error and string payloads
    long long integer = 0;
    std::vector<reply> elements;

    bool is_error() const noexcept { return type == kind::error; }
    bool is_string() const noexcept { return type == kind::string; }
    bool is_array() const noexcept { return type == kind::array; }
};

/// The arguments of one command; wiped when destroyed (AUTH carries the password, commits carry
/// tokens).
class command {
public:
    command() = default;
    command(std::initializer_list<std::string_view> args);
    command(const command&) = delete;
    command& operator=(const command&) = delete;
    command(command&&) noexcept = default;
    command& operator=(command&&) noexcept = default;
    ~command();

    command& arg(std::string_view value);
    command& arg(std::uint64_t value);

    /// The RESP encoding (redisFormatCommandArgv) appended to `out`. `out` must be wiped by the
    /// caller once written.
    void append_to(std::string& out) const;
    std::size_t size() const noexcept { return args_.size(); }

private:
    std::vector<std::string> args_;
};

/// What the reply a reader is building has taken so far: its elements (an array's slots counted
/// when its header arrives) and bytes (text, and sizeof(reply) a slot), across its nesting.
struct reader_budget {
    std::size_t elements = 0;
    std::size_t bytes = 0;
};

/// An incremental RESP parser over hiredis' redisReader, building `reply` values directly.
/// Replies carry tokens: the reader's buffer is wiped as it is consumed, compacted, grown and
/// freed, except when hiredis itself frees it on a protocol error (resp.cpp). One reply is capped
/// as a whole (its elements and bytes, resp.cpp's max_reply_elements and max_reply_bytes): past a
/// cap, next() gives protocol_error before the reply is built further.
class reader {
public:
    reader();
    reader(const reader&) = delete;
    reader& operator=(const reader&) = delete;
    ~reader();

    /// Adds received bytes. False on a protocol error (the stream is then unusable), or after a
    /// reset() that found no memory.
    bool feed(std::string_view bytes);
    enum class result { complete, need_more, protocol_error };
    /// Takes the next complete reply, if any (protocol_error after a reset() that found no memory).
    result next(reply& out);
    /// Discards everything buffered (a new connection starts a new stream). False when there was
    /// no memory for the new parser: the reader then refuses everything (it used to be left null,
    /// and the next reset, feed or next dereferenced it) until a reset() that finds memory.
    bool reset() noexcept;

    /// Tests: every byte of the buffer's allocation (what the reader holds, not only what is
    /// unparsed).
    std::string_view allocation_for_tests() const noexcept;

private:
    void scrub() noexcept;

    reader_budget budget_;  // before reader_: hiredis' tasks point at it
    redisReader* reader_ = nullptr;
    // Bytes [0, clean_prefix_) of the buffer are consumed and wiped; bytes from the buffer's
    // length up to dirty_end_ may still hold data (compaction moves bytes and leaves them).
    std::size_t clean_prefix_ = 0;
    std::size_t dirty_end_ = 0;
};

}  // namespace apollo_oauth::redis

#include "store/redis/resp.hpp"

// hiredis 0.14's sds.h has no extern "C" of its own, and hiredis.h includes it: first, then.
extern "C" {
#include <hiredis/sds.h>
}
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <openssl/crypto.h>

#include <apollo_oauth/config.hpp>

#include "store/record_codec.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <new>
#include <stdexcept>

namespace apollo_oauth::redis {

void wipe(std::string& s) noexcept {
    if (s.capacity() != 0) {
        OPENSSL_cleanse(s.data(), s.capacity());
    }
    s.clear();
}

void append_wiping_growth(std::string& out, std::string_view more) {
    if (out.capacity() - out.size() >= more.size()) {
        out.append(more);
        return;
    }
    std::string grown;
    grown.reserve(std::max(out.size() + more.size(), 2 * out.capacity()));  // amortised, as append
    grown.append(out).append(more);
    wipe(out);
    out.swap(grown);  // `grown` now frees the old block, zeroed
}

command::command(std::initializer_list<std::string_view> args) {
    args_.reserve(args.size());
    for (const auto a : args) {
        args_.emplace_back(a);
    }
}

command::~command() {
    for (auto& a : args_) {
        wipe(a);
    }
}

command& command::arg(std::string_view value) {
    args_.emplace_back(value);
    return *this;
}

command& command::arg(std::uint64_t value) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
    args_.emplace_back(digits, end);
    return *this;
}

void command::append_to(std::string& out) const {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    argv.reserve(args_.size());
    lengths.reserve(args_.size());
    for (const auto& a : args_) {
        argv.push_back(a.data());
        lengths.push_back(a.size());
    }
    // hiredis's buffer (malloc'd): cleansed and freed however this ends, the append below
    // included, which may run out of memory.
    struct formatted_command {
        char* bytes = nullptr;
        int length = 0;
        formatted_command() = default;
        formatted_command(const formatted_command&) = delete;
        formatted_command& operator=(const formatted_command&) = delete;
        ~formatted_command() {
            if (bytes != nullptr) {
                OPENSSL_cleanse(bytes, static_cast<std::size_t>(length > 0 ? length : 0));
                redisFreeCommand(bytes);
            }
        }
    } formatted;
    formatted.length =
        redisFormatCommandArgv(&formatted.bytes, static_cast<int>(argv.size()), argv.data(), lengths.data());
    if (formatted.length < 0 || formatted.bytes == nullptr) {
        throw std::bad_alloc();
    }
    append_wiping_growth(out, std::string_view(formatted.bytes, static_cast<std::size_t>(formatted.length)));
}

namespace {

// One reply is bounded as a whole, not only its unparsed bytes: hiredis moves its read position
// past each finished element of an unfinished array, and the callbacks below copy each element
// out, so max_buffered_bytes alone let one reply grow without limit (sixteen 3.5 MB bulk strings
// in one array), and one 8-byte array header made 65,536 elements at once, seven deep. Every
// element (an array's slots as its header announces them, before they are made) and every byte
// of text counts against the reply being built, across its nesting; past either cap the callback
// fails, which hiredis reports as out of memory: a protocol error, as for an absurd array header.
//
// The caps, from the largest reply this store reads: an acquire's or a waiter's probe, a few
// words and one record's HGETALL (functions.cpp). A record's values are a pair from token
// responses within limits::token_body_bytes (at most max_token_body_bytes, 192 KiB): its access
// token and type from one body, its refresh token from another, its scopes (joined by spaces, no
// longer than in the body) from a third, at most four bodies (768 KiB) and a few numbers and
// names. The file store's record holds the same fields, JSON-escaped (never shorter), within
// store::max_record_size (1 MiB), so a record's hash holds less text than that. Four times it
// leaves room for anything the hash gains (the refresh in flight's fields: a holder id); the
// element slots' bytes count too. Such a hash has about 30 elements; 4,096 is far above any
// reply here and keeps the slots of one reply within 4,096 * sizeof(reply) (under 300 KiB).
constexpr std::size_t max_reply_bytes = 4 * store::max_record_size;
constexpr std::size_t max_reply_elements = 4096;
static_assert(4 * max_token_body_bytes < store::max_record_size,
              "a record's pair from token responses is within the file store's record size");
static_assert(2 * (store::max_record_size + max_reply_elements * sizeof(reply)) <= max_reply_bytes,
              "the largest record's reply, with room to spare, must be under the reply cap");
// Unparsed bytes beyond this are a protocol error (a bulk string header can announce 512 MB).
constexpr std::size_t max_buffered_bytes = 4 << 20;

// What the reply being built has taken so far (reader::budget_, the reader's privdata).
reader_budget& budget_of(const redisReadTask* task) noexcept {
    return *static_cast<reader_budget*>(task->privdata);
}

// Counts `elements` more elements and `bytes` more bytes against the reply being built; false
// past a cap (nothing is counted then: the reply is abandoned).
bool charge(const redisReadTask* task, std::size_t elements, std::size_t bytes) noexcept {
    reader_budget& b = budget_of(task);
    if (task->parent == nullptr) {
        b = {};  // a root: a new reply starts
    }
    if (elements > max_reply_elements - b.elements || bytes > max_reply_bytes - b.bytes) {
        return false;
    }
    b.elements += elements;
    b.bytes += bytes;
    return true;
}

// The callbacks run inside hiredis (C): no exception may escape them; a null return is its OOM.
// An element of an array takes its parent's slot (counted with the array); a root is new.
reply* place(const redisReadTask* task) noexcept {
    if (task->parent != nullptr) {
        auto* parent = static_cast<reply*>(task->parent->obj);
        return &parent->elements[static_cast<std::size_t>(task->idx)];
    }
    return new (std::nothrow) reply;
}

// A failed callback's root is ours to free: hiredis only frees the roots it was given.
void* refuse(const redisReadTask* task, reply* r) noexcept {
    if (task->parent == nullptr) {
        delete r;
    }
    return nullptr;
}

std::size_t root_cost(const redisReadTask* task) noexcept {
    return task->parent == nullptr ? 1 : 0;
}

void* create_string(const redisReadTask* task, char* str, std::size_t len) {
    if (!charge(task, root_cost(task), root_cost(task) * sizeof(reply) + len)) {
        return nullptr;
    }
    reply* r = place(task);
    if (r == nullptr) {
        return nullptr;
    }
    r->type = task->type == REDIS_REPLY_ERROR    ? reply::kind::error
              : task->type == REDIS_REPLY_STATUS ? reply::kind::status
                                                 : reply::kind::string;
    try {
        r->text.assign(str, len);
    } catch (...) {
        return refuse(task, r);
    }
    return r;
}

void* create_array(const redisReadTask* task, int elements) {
    if (elements < 0) {
        return nullptr;
    }
    // The slots are counted before they are made: a header alone must not allocate past the cap.
    const auto slots = static_cast<std::size_t>(elements);
    if (slots > max_reply_elements ||
        !charge(task, root_cost(task) + slots, (root_cost(task) + slots) * sizeof(reply))) {
        return nullptr;
    }
    reply* r = place(task);
    if (r == nullptr) {
        return nullptr;
    }
    r->type = reply::kind::array;
    try {
        r->elements.resize(slots);
    } catch (...) {
        return refuse(task, r);
    }
    return r;
}

void* create_integer(const redisReadTask* task, long long value) {
    if (!charge(task, root_cost(task), root_cost(task) * sizeof(reply))) {
        return nullptr;
    }
    reply* r = place(task);
    if (r != nullptr) {
        r->type = reply::kind::integer;
        r->integer = value;
    }
    return r;
}

void* create_nil(const redisReadTask* task) {
    if (!charge(task, root_cost(task), root_cost(task) * sizeof(reply))) {
        return nullptr;
    }
    reply* r = place(task);
    if (r != nullptr) {
        r->type = reply::kind::nil;
    }
    return r;
}

// hiredis frees only roots (a reply, or the partial reply of a failed parse).
void free_object(void* object) {
    delete static_cast<reply*>(object);
}

redisReplyObjectFunctions reply_functions{create_string, create_array, create_integer, create_nil,
                                          free_object};

}  // namespace

// hiredis 0.14 keeps what it received in one sds buffer (r->buf: r->len bytes, parsed up to
// r->pos) and frees or moves it in five places, none of which wipes:
// - redisReaderFeed grows it with realloc (sdscatlen): feed() grows it itself first, into a new
//   block, and wipes the old one;
// - redisReaderFeed frees an empty buffer above maxbuf: maxbuf is 0, which turns that off, and
//   feed() drops a large empty buffer itself (wiped by then);
// - redisReaderGetReply compacts it (sdsrange) once 1 KiB is parsed, moving the rest to the front
//   and leaving the old bytes past the new length: scrub() wipes them, and the parsed prefix
//   before that (hiredis never reads behind r->pos; the replies were copied out);
// - redisReaderFree frees it: wiped before;
// - on a protocol error hiredis frees it at once, inside redisReaderFeed or redisReaderGetReply:
//   that one cannot be wiped through its API. The bytes then lost unwiped are those of the
//   malformed reply and after it, plus the part of the reply parsed before the error.
// Replies are copied out of the buffer by our callbacks into `reply`, which wipes itself.
namespace {

// The buffer's bytes, its length and its spare capacity (sds keeps one more, the terminator).
std::size_t capacity(const redisReader* r) noexcept {
    return r->buf == nullptr ? 0 : sdsalloc(r->buf) + 1;
}

redisReader* make_reader(reader_budget* budget) {
    redisReader* r = redisReaderCreateWithFunctions(&reply_functions);
    if (r == nullptr) {
        throw std::bad_alloc();
    }
    r->maxbuf = 0;
    r->privdata = budget;  // hiredis hands it to every task (budget_of)
    return r;
}

void wipe_and_free(redisReader* r) noexcept {
    if (r->buf != nullptr) {
        OPENSSL_cleanse(r->buf, capacity(r));
    }
    redisReaderFree(r);
}

// A buffer larger than this that holds nothing is given back (hiredis' own default).
constexpr std::size_t keep_at_most = 16 * 1024;

}  // namespace

reader::reader() : reader_(make_reader(&budget_)) {}

reader::~reader() {
    if (reader_ != nullptr) {  // null after a reset() that ran out of memory
        wipe_and_free(reader_);
    }
}

bool reader::feed(std::string_view bytes) {
    redisReader* r = reader_;
    if (r == nullptr || r->err != 0 || r->buf == nullptr ||
        r->len - r->pos + bytes.size() > max_buffered_bytes) {
        return false;
    }
    if (bytes.empty()) {
        return true;
    }
    if (r->len == 0 && capacity(r) > keep_at_most) {
        sds empty = sdsempty();
        if (empty == nullptr) {
            return false;
        }
        OPENSSL_cleanse(r->buf, capacity(r));  // wiped already (scrub); cheap next to a free
        sdsfree(r->buf);
        r->buf = empty;
        r->pos = 0;
        clean_prefix_ = dirty_end_ = 0;
    }
    if (sdsavail(r->buf) < bytes.size()) {
        // Grown here, not by realloc in hiredis: the old block is wiped before it is freed. The
        // parsed prefix is copied too (it is zeros) so that r->pos stays right.
        sds grown = sdsempty();
        if (grown != nullptr) {
            grown = sdsMakeRoomFor(grown, r->len + bytes.size());
        }
        if (grown == nullptr) {
            return false;
        }
        grown = sdscatlen(grown, r->buf, r->len);  // within the room made: no reallocation
        OPENSSL_cleanse(r->buf, capacity(r));
        sdsfree(r->buf);
        r->buf = grown;
        dirty_end_ = r->len;
    }
    if (redisReaderFeed(r, bytes.data(), bytes.size()) != REDIS_OK) {
        return false;
    }
    dirty_end_ = std::max(dirty_end_, r->len);
    return true;
}

void reader::scrub() noexcept {
    redisReader* r = reader_;
    if (r == nullptr || r->buf == nullptr) {
        clean_prefix_ = dirty_end_ = 0;
        return;
    }
    if (r->pos < clean_prefix_) {
        clean_prefix_ = 0;  // compacted: the front now holds unparsed bytes
    }
    if (r->pos > clean_prefix_) {
        OPENSSL_cleanse(r->buf + clean_prefix_, r->pos - clean_prefix_);
        clean_prefix_ = r->pos;
    }
    const std::size_t end = std::min(dirty_end_, capacity(r));
    if (end > r->len) {
        OPENSSL_cleanse(r->buf + r->len, end - r->len);  // the terminator at r->len stays 0
    }
    dirty_end_ = r->len;
}

reader::result reader::next(reply& out) {
    void* object = nullptr;
    if (reader_ == nullptr || redisReaderGetReply(reader_, &object) != REDIS_OK) {
        clean_prefix_ = dirty_end_ = 0;  // hiredis freed the buffer (see above)
        return result::protocol_error;
    }
    scrub();
    if (object == nullptr) {
        return result::need_more;
    }
    auto* r = static_cast<reply*>(object);
    out = std::move(*r);
    delete r;
    return result::complete;
}

bool reader::reset() noexcept {
    if (reader_ != nullptr) {
        wipe_and_free(reader_);
        reader_ = nullptr;
    }
    clean_prefix_ = dirty_end_ = 0;
    budget_ = {};
    try {
        reader_ = make_reader(&budget_);
    } catch (const std::bad_alloc&) {
        return false;  // hiredis found no memory (calloc): unusable until a reset that finds it
    }
    return true;
}

std::string_view reader::allocation_for_tests() const noexcept {
    if (reader_ == nullptr) {
        return {};
    }
    return {reader_->buf, capacity(reader_)};
}

}  // namespace apollo_oauth::redis

// Live heap bytes of the process, counted by replacing the global operator new and delete (in
// heap_counter.cpp; link it only into benchmarks that read it). Used to measure what the cache
// adds per waiting caller and per cached account.
#pragma once

#include <cstddef>

namespace apollo_oauth::bench {

/// Bytes requested through operator new and not yet deleted, over all threads.
std::ptrdiff_t live_heap_bytes() noexcept;

/// Calls of operator new made by the calling thread so far.
std::size_t allocations_on_this_thread() noexcept;

}  // namespace apollo_oauth::bench

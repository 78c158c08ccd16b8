// Which signals the tool handles: only those its parent did not set to be ignored. POSIX keeps a
// signal ignored across exec, and shells rely on that: nohup ignores SIGHUP, and a script's
// background job (job control off) ignores SIGINT and SIGQUIT, so that a Ctrl-C meant for the
// script does not stop it. Asio's signal_set installs its handler whatever the disposition was,
// and restores SIG_DFL (not what was inherited) when the last set lets a signal go, so the tool
// records the dispositions once, before any signal_set exists, and asks here.
#pragma once

#include <boost/asio/signal_set.hpp>

#include <initializer_list>

namespace apollo_oauth::cli {

/// Records which signals were ignored when the process started. Called first thing in main(): a
/// later look could see a signal_set's handler, or the SIG_DFL Asio leaves behind. (The first
/// call of handle_signals_not_ignored records them too, as a fallback.)
void record_inherited_signal_dispositions();

/// Whether `number` was ignored (SIG_IGN) when the process started.
bool ignored_at_start(int number);

/// Adds each of `numbers` to `signals`, except one ignored when the process started, which stays
/// ignored (when all are, `signals` never completes a wait).
void handle_signals_not_ignored(boost::asio::signal_set& signals, std::initializer_list<int> numbers);

}  // namespace apollo_oauth::cli

// signals.cpp — see signals.h.
#include "signals.h"

#include <csignal>
#include <unistd.h>

namespace common {

namespace {

volatile std::sig_atomic_t g_interrupted = 0;

void on_sigint(int) {
    if (g_interrupted) {
        // Second Ctrl-C: give up on a clean stop.
        std::signal(SIGINT, SIG_DFL);
        std::raise(SIGINT);
        return;
    }
    g_interrupted = 1;
    const char msg[] = "\n(interrupted; stopping — press Ctrl-C again to kill)\n";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
}

} // namespace

void install_interrupt_handler() {
    struct sigaction sa = {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: a blocking read (chat prompt) returns so the loop can react
    sigaction(SIGINT, &sa, nullptr);
}

bool interrupted() { return g_interrupted != 0; }

void clear_interrupted() { g_interrupted = 0; }

} // namespace common

// signals.h — Ctrl-C handling for the example programs.
//
// The first SIGINT only sets a flag: long library calls see it through their progress or token
// callback, return GPTQ_ERR_ABORTED, and the program cleans up. A second SIGINT while the flag is
// still set terminates the process the usual way, so a stuck program can always be stopped.
#pragma once

namespace common {

void install_interrupt_handler();
bool interrupted();
// Clears the flag (e.g. after a chat reply was cut short, to keep chatting).
void clear_interrupted();

} // namespace common

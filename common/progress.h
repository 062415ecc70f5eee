// progress.h — a progress bar with ETA for the example programs, fed by gptq_progress_callback.
//
// On a terminal it redraws one line per stage in place:
//   quantize [##########..........]  24/48  50% 0:12 ETA 0:12  layer 3/8 mlp.down_proj err 1.2e-3
// When the stream is not a terminal (logs, CI) it prints a plain line at each 10% step instead, so
// logs stay short. A new stage ends the previous stage's line.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace common {

class ProgressBar {
public:
    explicit ProgressBar(FILE *out = stderr);
    ~ProgressBar();

    void update(const char *stage, int64_t done, int64_t total, const char *detail);
    // Ends the current line (if any); the next update starts a fresh one.
    void finish();
    // Suppresses all output (e.g. --quiet).
    void set_enabled(bool on) { enabled_ = on; }

    // The line the bar would draw; split out so it can be tested. width = terminal columns.
    static std::string render(const std::string &stage, int64_t done, int64_t total, double elapsed_s,
                              const std::string &detail, int width);

private:
    void end_line();

    FILE *out_;
    bool tty_;
    bool enabled_ = true;
    bool line_open_ = false;
    bool stage_complete_ = false;
    std::string stage_;
    int last_decile_ = -1;
    std::chrono::steady_clock::time_point stage_start_, last_draw_;
};

// "0:07", "1:02:03"; "?" for negative / non-finite values.
std::string format_duration(double seconds);

// Adapter for gptq_progress_callback: user_data is a ProgressBar* (or NULL for no drawing).
// Returns nonzero (cancel) once interrupted() (see signals.h) is true.
int32_t progress_callback(const char *stage, int64_t done, int64_t total, const char *detail, void *user_data);

} // namespace common

// progress.cpp — see progress.h.
#include "progress.h"

#include "signals.h"

#include <algorithm>
#include <cmath>
#include <sys/ioctl.h>
#include <unistd.h>

namespace common {

namespace {

int terminal_width(FILE *f) {
    struct winsize ws = {};
    if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) return ws.ws_col;
    return 100;
}

} // namespace

std::string format_duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "?";
    long long s = (long long)std::llround(seconds);
    char buf[32];
    if (s >= 3600)
        std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
    else
        std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
    return buf;
}

std::string ProgressBar::render(const std::string &stage, int64_t done, int64_t total, double elapsed_s,
                                const std::string &detail, int width) {
    char buf[256];
    std::string line = stage;
    if (total > 0) {
        int64_t d = std::clamp<int64_t>(done, 0, total);
        double frac = (double)d / (double)total;
        const int bar_w = 20;
        int filled = (int)(frac * bar_w);
        line += " [" + std::string(filled, '#') + std::string(bar_w - filled, '.') + "]";
        std::snprintf(buf, sizeof buf, " %lld/%lld %3d%%", (long long)done, (long long)total, (int)(frac * 100));
        line += buf;
        line += " " + format_duration(elapsed_s);
        // The ETA extrapolates the stage's average rate; it is only shown once there is a rate.
        if (d > 0 && d < total && elapsed_s > 0.2)
            line += " ETA " + format_duration(elapsed_s * (double)(total - d) / (double)d);
    } else {
        std::snprintf(buf, sizeof buf, " %lld", (long long)done);
        line += buf;
        line += " " + format_duration(elapsed_s);
    }
    if (!detail.empty()) line += "  " + detail;
    if (width > 1 && (int)line.size() > width - 1) line.resize(width - 1);
    return line;
}

ProgressBar::ProgressBar(FILE *out) : out_(out), tty_(isatty(fileno(out)) != 0) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::end_line() {
    if (line_open_ && tty_) std::fputc('\n', out_);
    line_open_ = false;
    std::fflush(out_);
}

void ProgressBar::finish() {
    end_line();
    stage_.clear();
    stage_complete_ = false;
}

void ProgressBar::update(const char *stage, int64_t done, int64_t total, const char *detail) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    std::string st = stage ? stage : "";
    bool complete = total > 0 && done >= total;
    // A stage name differing from the last one, or the same stage starting over after it
    // completed (e.g. perplexity before and after quantization), opens a new line.
    if (st != stage_ || (stage_complete_ && !complete)) {
        end_line();
        stage_ = st;
        stage_start_ = now;
        stage_complete_ = false;
        last_decile_ = -1;
        last_draw_ = now - std::chrono::seconds(1);
    } else if (stage_complete_) {
        return;  // a repeated final report
    }
    double elapsed = std::chrono::duration<double>(now - stage_start_).count();
    std::string text = detail ? detail : "";
    if (tty_) {
        // Redraw at most ~20 times a second, but always draw the final state.
        if (!complete && now - last_draw_ < std::chrono::milliseconds(50)) return;
        std::string line = render(st, done, total, elapsed, text, terminal_width(out_));
        std::fprintf(out_, "\r%s\x1b[K", line.c_str());
        line_open_ = true;
    } else {
        int decile = total > 0 ? (int)(10 * std::clamp<int64_t>(done, 0, total) / total) : -1;
        if (decile == last_decile_ && !complete) return;
        last_decile_ = decile;
        std::fprintf(out_, "%s\n", render(st, done, total, elapsed, text, 0).c_str());
    }
    last_draw_ = now;
    if (complete) {
        stage_complete_ = true;
        end_line();
    }
    std::fflush(out_);
}

int32_t progress_callback(const char *stage, int64_t done, int64_t total, const char *detail, void *user_data) {
    if (user_data) static_cast<ProgressBar *>(user_data)->update(stage, done, total, detail);
    return interrupted() ? 1 : 0;
}

} // namespace common

// stream_printer.cpp — see stream_printer.h.
#include "stream_printer.h"

#include <algorithm>

namespace common {

StreamPrinter::StreamPrinter(FILE *out, std::vector<std::string> stops) : out_(out), stops_(std::move(stops)) {
    stops_.erase(std::remove(stops_.begin(), stops_.end(), std::string()), stops_.end());
}

void StreamPrinter::emit(size_t upto) {
    if (upto <= printed_) return;
    if (out_) {
        std::fwrite(text_.data() + printed_, 1, upto - printed_, out_);
        std::fflush(out_);
    }
    printed_ = upto;
}

bool StreamPrinter::push(const char *text, size_t len) {
    if (stopped_) return true;
    text_.append(text, len);
    // The earliest complete stop string ends the reply. Only the region that could contain a new
    // match is searched: the held-back tail plus the new piece.
    size_t longest = 0;
    for (const auto &s : stops_) longest = std::max(longest, s.size());
    size_t from = printed_ > longest ? printed_ - longest : 0;
    size_t cut = std::string::npos;
    for (const auto &s : stops_) {
        size_t p = text_.find(s, from);
        if (p != std::string::npos) cut = std::min(cut, p);
    }
    if (cut != std::string::npos) {
        text_.resize(cut);
        printed_ = std::min(printed_, cut);
        emit(cut);
        stopped_ = true;
        return true;
    }
    // Hold back the longest tail that is a proper prefix of some stop string.
    size_t hold = 0;
    for (const auto &s : stops_)
        for (size_t k = std::min(s.size() - 1, text_.size()); k > hold; k--)
            if (text_.compare(text_.size() - k, k, s, 0, k) == 0) {
                hold = k;
                break;
            }
    emit(text_.size() - hold);
    return false;
}

void StreamPrinter::finish() { emit(text_.size()); }

} // namespace common

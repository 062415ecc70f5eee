// stream_printer.h — prints streamed generation text while cutting it at stop strings.
//
// Tokens arrive a piece at a time, so a stop string ("<|im_end|>", "[INST]") may come split over
// several pieces. The printer holds back the tail of the text that could still grow into a stop
// string, prints the rest, and once a stop string is complete it drops it (and anything after)
// and reports that generation should stop.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace common {

class StreamPrinter {
public:
    // out may be NULL (collect only).
    StreamPrinter(FILE *out, std::vector<std::string> stops);

    // Adds a piece; prints what is certain. Returns true once a stop string has been seen.
    bool push(const char *text, size_t len);
    // Prints whatever was held back (generation ended without a stop string).
    void finish();

    bool stopped() const { return stopped_; }
    const std::string &text() const { return text_; }  // the reply so far, cut at a stop string

private:
    void emit(size_t upto);

    FILE *out_;
    std::vector<std::string> stops_;
    std::string text_;
    size_t printed_ = 0;
    bool stopped_ = false;
};

} // namespace common

// test_example_common.cpp — the example programs' helpers in common/: the argument parser, size
// parsing, the progress line, and the stream printer that cuts replies at stop strings.
#include <doctest/doctest.h>

#include "testutil.h"

// common/ is not part of libgptq, and the sanitizer build has no examples (so no gptq_common
// library): the test compiles the helpers it checks into itself.
#include "../common/args.cpp"
#include "../common/progress.cpp"
#include "../common/signals.cpp"
#include "../common/stream_printer.cpp"
#include "../common/util.cpp"

#include <cstdio>
#include <fstream>

namespace {

// argv from a list of words (argv[0] included).
struct Argv {
    explicit Argv(std::vector<std::string> w) : words(std::move(w)) {
        for (auto &s : words) ptrs.push_back(&s[0]);
        ptrs.push_back(nullptr);
    }
    int argc() const { return (int)words.size(); }
    char **argv() { return ptrs.data(); }
    std::vector<std::string> words;
    std::vector<char *> ptrs;
};

} // namespace

TEST_CASE("args: typed options, --x=v, toggles, positionals, defaults in --help") {
    std::string model, in, out;
    int32_t threads = 0, sym = 1, act = 1;
    float temp = 0.8f;
    int64_t shard = 0;
    common::ArgParser p("tool", "IN OUT", "Does things.");
    p.add_string("-m,--model", "DIR", "model", &model);
    p.add_int("-t,--threads", "N", "threads", &threads);
    p.add_float("--temp", "T", "temperature", &temp);
    p.add_switch("--asym", "asymmetric", &sym, 0);
    p.add_toggle("act-order", "act order", &act);
    p.add("--shard-size", "SIZE", "shard", [&shard](const std::string &v) { return common::parse_size(v, &shard); });
    p.add_positional("IN", "input", &in, true);
    p.add_positional("OUT", "output", &out, false);

    std::string help = p.usage();
    CHECK(help.find("--threads N") != std::string::npos);
    CHECK(help.find("(default: 0.8)") != std::string::npos);
    CHECK(help.find("--no-act-order") != std::string::npos);

    Argv a({"tool", "a", "-m", "dir", "--threads=3", "--temp", "0", "--asym", "--no-act-order", "b",
            "--shard-size", "2G"});
    REQUIRE(p.parse(a.argc(), a.argv()) == 0);
    CHECK(model == "dir");
    CHECK(threads == 3);
    CHECK(temp == 0.0f);
    CHECK(sym == 0);
    CHECK(act == 0);
    CHECK(in == "a");
    CHECK(out == "b");
    CHECK(shard == 2LL * 1024 * 1024 * 1024);
    CHECK(p.was_set("-t"));
    CHECK(p.was_set("--threads"));
    CHECK(p.was_set("-m"));
    CHECK_FALSE(p.was_set("--shard-sizes"));
}

TEST_CASE("args: errors return 1, --help returns -1") {
    std::string in;
    int32_t n = 5;
    common::ArgParser p("tool", "IN", "x");
    p.add_int("-n", "N", "count", &n);
    p.add_positional("IN", "input", &in, true);
    Argv unknown({"tool", "x", "--bogus"});
    CHECK(p.parse(unknown.argc(), unknown.argv()) == 1);
    Argv bad_int({"tool", "x", "-n", "12abc"});
    CHECK(p.parse(bad_int.argc(), bad_int.argv()) == 1);
    CHECK(n == 5);
    Argv missing_value({"tool", "x", "-n"});
    CHECK(p.parse(missing_value.argc(), missing_value.argv()) == 1);
    Argv missing_positional({"tool"});
    CHECK(p.parse(missing_positional.argc(), missing_positional.argv()) == 1);
    Argv extra({"tool", "x", "y"});
    CHECK(p.parse(extra.argc(), extra.argv()) == 1);
    Argv negative({"tool", "x", "-n", "-3"});
    CHECK(p.parse(negative.argc(), negative.argv()) == 0);
    CHECK(n == -3);
    Argv help({"tool", "--help"});
    CHECK(p.parse(help.argc(), help.argv()) == -1);
}

TEST_CASE("parse_size: binary units, plain bytes, rejects junk") {
    int64_t v = -1;
    CHECK(common::parse_size("0", &v).empty());
    CHECK(v == 0);
    CHECK(common::parse_size("4096", &v).empty());
    CHECK(v == 4096);
    CHECK(common::parse_size("512M", &v).empty());
    CHECK(v == 512LL << 20);
    CHECK(common::parse_size("1.5GiB", &v).empty());
    CHECK(v == 3LL << 29);
    CHECK(common::parse_size("2g", &v).empty());
    CHECK(v == 2LL << 30);
    CHECK_FALSE(common::parse_size("2X", &v).empty());
    CHECK_FALSE(common::parse_size("-1G", &v).empty());
    CHECK_FALSE(common::parse_size("G", &v).empty());
    CHECK_FALSE(common::parse_size("", &v).empty());
}

TEST_CASE("progress line: bar, counts, ETA from the average rate, truncation") {
    CHECK(common::format_duration(0) == "0:00");
    CHECK(common::format_duration(75) == "1:15");
    CHECK(common::format_duration(3723) == "1:02:03");
    CHECK(common::format_duration(-1) == "?");

    // A quarter done in 10 s: 30 s to go.
    std::string line = common::ProgressBar::render("quantize", 12, 48, 10.0, "layer 3/8", 0);
    CHECK(line == "quantize [#####...............] 12/48  25% 0:10 ETA 0:30  layer 3/8");
    // Complete: no ETA.
    line = common::ProgressBar::render("load", 1, 1, 2.0, "", 0);
    CHECK(line == "load [####################] 1/1 100% 0:02");
    // Unknown total: a count only.
    CHECK(common::ProgressBar::render("calib", 7, 0, 1.0, "", 0) == "calib 7 0:01");
    // Never wider than the terminal.
    CHECK(common::ProgressBar::render("perplexity", 1, 3, 1.0, std::string(300, 'x'), 60).size() == 59);
}

TEST_CASE("stream printer: stop strings split across pieces are cut, other text passes through") {
    std::string path = testutil::temp_dir("stream") + "/out.txt";
    FILE *f = std::fopen(path.c_str(), "w+");
    REQUIRE(f);
    {
        common::StreamPrinter p(f, {"<|im_end|>", "[INST]"});
        CHECK_FALSE(p.push("Hello", 5));
        CHECK_FALSE(p.push(" wor", 4));
        CHECK_FALSE(p.push("ld<|im", 6));  // "<|im" could still be a stop string: held back
        CHECK_FALSE(p.push("_e", 2));
        CHECK(p.push("nd|> trailing", 13));
        CHECK(p.stopped());
        CHECK(p.text() == "Hello world");
        CHECK(p.push("more", 4));  // nothing after a stop
        CHECK(p.text() == "Hello world");
    }
    std::fflush(f);
    std::rewind(f);
    char buf[64] = {};
    size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    CHECK(std::string(buf, n) == "Hello world");
    std::fclose(f);

    // A held-back prefix that turns out not to be a stop string is printed in the end.
    common::StreamPrinter q(nullptr, {"[INST]"});
    CHECK_FALSE(q.push("a [IN", 5));
    CHECK_FALSE(q.push("TO", 2));
    q.finish();
    CHECK(q.text() == "a [INTO");
    // No stop strings: everything passes.
    common::StreamPrinter r(nullptr, {});
    CHECK_FALSE(r.push("[INST]", 6));
    CHECK(r.text() == "[INST]");
}

TEST_CASE("util: directory sizes, byte formatting, base names, same_path") {
    std::string dir = testutil::temp_dir("util");
    { std::ofstream(dir + "/a.bin") << std::string(1000, 'a'); }
    { std::ofstream(dir + "/b.bin") << std::string(234, 'b'); }
    CHECK(common::dir_size_bytes(dir) == 1234);
    CHECK(common::dir_size_bytes(dir + "/missing") == -1);
    CHECK(common::format_bytes(999) == "999 B");
    CHECK(common::format_bytes(13600000) == "13.6 MB");
    CHECK(common::format_bytes(4100000) == "4.10 MB");
    CHECK(common::base_name("/a/b/") == "b");
    CHECK(common::base_name("models/docs-llama-8m") == "docs-llama-8m");
    CHECK(common::same_path(dir, dir + "/"));
    CHECK(common::same_path(dir + "/../" + common::base_name(dir), dir));
    CHECK_FALSE(common::same_path(dir, dir + "/a.bin"));
    CHECK(common::file_exists(dir + "/a.bin"));
    CHECK_FALSE(common::file_exists(dir));
    CHECK_FALSE(common::dir_is_empty(dir));
    std::string empty = testutil::temp_dir("util-empty");
    CHECK(common::dir_is_empty(empty));
    CHECK_FALSE(common::dir_is_empty(empty + "/missing"));
    std::string text, err;
    CHECK(common::read_file(dir + "/b.bin", &text, &err));
    CHECK(text.size() == 234);
    CHECK_FALSE(common::read_file(dir + "/nope", &text, &err));
    CHECK(err.find("nope") != std::string::npos);
}

// args.h — a small command-line parser shared by the example programs.
//
// Each option is a list of names ("-m,--model"), an optional metavar (options without one are
// switches), a help line, and a setter that receives the value text and may reject it. Values are
// given as "--name VALUE", "--name=VALUE" or "-x VALUE". --help/-h prints the generated usage and
// exits 0; a bad command line prints what is wrong plus a hint and exits 1.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace common {

class ArgParser {
public:
    // A setter gets the option's value text ("" for switches); it returns an error text, or ""
    // when the value is accepted.
    using Setter = std::function<std::string(const std::string &value)>;

    ArgParser(std::string program, std::string usage_line, std::string summary);

    // Generic option. names: comma-separated, e.g. "-t,--threads". metavar: "" for a switch.
    void add(const std::string &names, const std::string &metavar, const std::string &help, Setter set);

    // Typed conveniences; the current value of *out is shown in --help as the default.
    void add_string(const std::string &names, const std::string &metavar, const std::string &help, std::string *out);
    void add_int(const std::string &names, const std::string &metavar, const std::string &help, int32_t *out);
    void add_int64(const std::string &names, const std::string &metavar, const std::string &help, int64_t *out);
    void add_uint64(const std::string &names, const std::string &metavar, const std::string &help, uint64_t *out);
    void add_float(const std::string &names, const std::string &metavar, const std::string &help, float *out);
    // A switch that stores `value` into *out (e.g. --sym stores 1, --asym stores 0).
    void add_switch(const std::string &names, const std::string &help, int32_t *out, int32_t value);
    // A --x / --no-x pair for an int32_t flag.
    void add_toggle(const std::string &name, const std::string &help, int32_t *out);

    // Positional arguments are taken in order; required ones missing is an error.
    void add_positional(const std::string &name, const std::string &help, std::string *out, bool required);

    // A paragraph printed after the option list (examples, notes).
    void set_epilog(std::string text) { epilog_ = std::move(text); }

    // Parses argv. Returns 0 on success; on --help prints usage to stdout and returns -1 (callers
    // exit 0); on error prints to stderr and returns 1 (callers exit 1). parse_or_exit does that.
    int parse(int argc, char **argv);
    void parse_or_exit(int argc, char **argv);

    // Whether an option (any of its names) appeared on the command line.
    bool was_set(const std::string &name) const;

    std::string usage() const;
    const std::string &program() const { return program_; }

private:
    struct Option {
        std::vector<std::string> names;
        std::string metavar;
        std::string help;
        Setter set;
        bool seen = false;
    };
    struct Positional {
        std::string name, help;
        std::string *out;
        bool required;
    };
    Option *find(const std::string &name);
    const Option *find(const std::string &name) const;

    std::string program_, usage_line_, summary_, epilog_;
    std::vector<Option> options_;
    std::vector<Positional> positionals_;
};

// Parsers for common value syntaxes; each returns "" or an error text.
std::string parse_int64(const std::string &text, int64_t *out);
std::string parse_double(const std::string &text, double *out);
// "2G", "512M", "1.5GiB", "100000" (bytes; K/M/G/T are powers of 1024); "0" is 0.
std::string parse_size(const std::string &text, int64_t *out);

} // namespace common

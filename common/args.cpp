// args.cpp — see args.h.
#include "args.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace common {

namespace {

std::vector<std::string> split_names(const std::string &names) {
    std::vector<std::string> out;
    std::stringstream ss(names);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty()) out.push_back(item);
    return out;
}

std::string with_default(const std::string &help, const std::string &def) {
    return help + " (default: " + def + ")";
}

std::string float_text(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

} // namespace

std::string parse_int64(const std::string &text, int64_t *out) {
    if (text.empty()) return "expected an integer, got an empty value";
    errno = 0;
    char *end = nullptr;
    long long v = std::strtoll(text.c_str(), &end, 0);
    if (errno == ERANGE) return "integer out of range: '" + text + "'";
    if (*end != '\0') return "expected an integer, got '" + text + "'";
    *out = v;
    return "";
}

std::string parse_double(const std::string &text, double *out) {
    if (text.empty()) return "expected a number, got an empty value";
    errno = 0;
    char *end = nullptr;
    double v = std::strtod(text.c_str(), &end);
    if (*end != '\0' || errno == ERANGE || !std::isfinite(v)) return "expected a finite number, got '" + text + "'";
    *out = v;
    return "";
}

std::string parse_size(const std::string &text, int64_t *out) {
    if (text.empty()) return "expected a size such as 2G or 512M, got an empty value";
    char *end = nullptr;
    errno = 0;
    double v = std::strtod(text.c_str(), &end);
    if (end == text.c_str() || errno == ERANGE || !std::isfinite(v) || v < 0)
        return "expected a size such as 2G or 512M, got '" + text + "'";
    std::string unit(end);
    for (char &c : unit) c = (char)std::toupper((unsigned char)c);
    double mult = 1;
    if (unit.empty() || unit == "B") mult = 1;
    else if (unit == "K" || unit == "KB" || unit == "KIB") mult = 1024.0;
    else if (unit == "M" || unit == "MB" || unit == "MIB") mult = 1024.0 * 1024;
    else if (unit == "G" || unit == "GB" || unit == "GIB") mult = 1024.0 * 1024 * 1024;
    else if (unit == "T" || unit == "TB" || unit == "TIB") mult = 1024.0 * 1024 * 1024 * 1024;
    else return "unknown size unit '" + std::string(end) + "' in '" + text + "' (use K, M, G or T)";
    double bytes = v * mult;
    if (bytes > 9.0e18) return "size too large: '" + text + "'";
    *out = (int64_t)std::llround(bytes);
    return "";
}

ArgParser::ArgParser(std::string program, std::string usage_line, std::string summary)
    : program_(std::move(program)), usage_line_(std::move(usage_line)), summary_(std::move(summary)) {}

void ArgParser::add(const std::string &names, const std::string &metavar, const std::string &help, Setter set) {
    Option o;
    o.names = split_names(names);
    o.metavar = metavar;
    o.help = help;
    o.set = std::move(set);
    options_.push_back(std::move(o));
}

void ArgParser::add_string(const std::string &names, const std::string &metavar, const std::string &help,
                           std::string *out) {
    add(names, metavar, out->empty() ? help : with_default(help, *out), [out](const std::string &v) {
        *out = v;
        return std::string();
    });
}

void ArgParser::add_int(const std::string &names, const std::string &metavar, const std::string &help, int32_t *out) {
    add(names, metavar, with_default(help, std::to_string(*out)), [out](const std::string &v) {
        int64_t x = 0;
        std::string err = parse_int64(v, &x);
        if (!err.empty()) return err;
        if (x < INT32_MIN || x > INT32_MAX) return "integer out of range: '" + v + "'";
        *out = (int32_t)x;
        return std::string();
    });
}

void ArgParser::add_int64(const std::string &names, const std::string &metavar, const std::string &help,
                          int64_t *out) {
    add(names, metavar, with_default(help, std::to_string(*out)),
        [out](const std::string &v) { return parse_int64(v, out); });
}

void ArgParser::add_uint64(const std::string &names, const std::string &metavar, const std::string &help,
                           uint64_t *out) {
    add(names, metavar, with_default(help, std::to_string(*out)), [out](const std::string &v) {
        if (v.empty() || v[0] == '-') return "expected a non-negative integer, got '" + v + "'";
        errno = 0;
        char *end = nullptr;
        unsigned long long x = std::strtoull(v.c_str(), &end, 0);
        if (*end != '\0' || errno == ERANGE) return "expected a non-negative integer, got '" + v + "'";
        *out = x;
        return std::string();
    });
}

void ArgParser::add_float(const std::string &names, const std::string &metavar, const std::string &help,
                          float *out) {
    add(names, metavar, with_default(help, float_text(*out)), [out](const std::string &v) {
        double x = 0;
        std::string err = parse_double(v, &x);
        if (!err.empty()) return err;
        *out = (float)x;
        return std::string();
    });
}

void ArgParser::add_switch(const std::string &names, const std::string &help, int32_t *out, int32_t value) {
    add(names, "", help, [out, value](const std::string &) {
        *out = value;
        return std::string();
    });
}

void ArgParser::add_toggle(const std::string &name, const std::string &help, int32_t *out) {
    std::string def = *out ? "on" : "off";
    add_switch("--" + name, with_default(help, def), out, 1);
    add_switch("--no-" + name, "turn --" + name + " off", out, 0);
}

void ArgParser::add_positional(const std::string &name, const std::string &help, std::string *out, bool required) {
    positionals_.push_back({name, help, out, required});
}

ArgParser::Option *ArgParser::find(const std::string &name) {
    for (auto &o : options_)
        for (auto &n : o.names)
            if (n == name) return &o;
    return nullptr;
}

const ArgParser::Option *ArgParser::find(const std::string &name) const {
    return const_cast<ArgParser *>(this)->find(name);
}

bool ArgParser::was_set(const std::string &name) const {
    const Option *o = find(name);
    return o && o->seen;
}

std::string ArgParser::usage() const {
    std::string s = "usage: " + program_ + " " + usage_line_ + "\n\n" + summary_ + "\n";
    if (!positionals_.empty()) {
        s += "\narguments:\n";
        for (auto &p : positionals_) {
            char line[512];
            std::snprintf(line, sizeof line, "  %-26s %s\n", p.name.c_str(), p.help.c_str());
            s += line;
        }
    }
    s += "\noptions:\n";
    std::string all = "  -h, --help";
    char line[1024];
    std::snprintf(line, sizeof line, "%-28s %s\n", all.c_str(), "print this help and exit");
    s += line;
    for (auto &o : options_) {
        std::string left = "  ";
        for (size_t i = 0; i < o.names.size(); i++) left += (i ? ", " : "") + o.names[i];
        if (!o.metavar.empty()) left += " " + o.metavar;
        if (left.size() > 28) {
            s += left + "\n";
            left.clear();
        }
        std::snprintf(line, sizeof line, "%-28s %s\n", left.c_str(), o.help.c_str());
        s += line;
    }
    if (!epilog_.empty()) s += "\n" + epilog_ + "\n";
    return s;
}

int ArgParser::parse(int argc, char **argv) {
    size_t next_positional = 0;
    bool only_positionals = false;
    auto error = [&](const std::string &msg) {
        std::fprintf(stderr, "%s: %s\n(see %s --help)\n", program_.c_str(), msg.c_str(), program_.c_str());
        return 1;
    };
    for (int i = 1; i < argc; i++) {
        std::string arg = argv[i];
        bool looks_like_option = !only_positionals && arg.size() > 1 && arg[0] == '-';
        if (looks_like_option && arg == "--") {
            only_positionals = true;
            continue;
        }
        if (!looks_like_option) {
            if (next_positional >= positionals_.size()) return error("unexpected argument '" + arg + "'");
            *positionals_[next_positional++].out = arg;
            continue;
        }
        if (arg == "-h" || arg == "--help") {
            std::fputs(usage().c_str(), stdout);
            return -1;
        }
        std::string name = arg, value;
        bool has_inline_value = false;
        size_t eq = arg.find('=');
        if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
            name = arg.substr(0, eq);
            value = arg.substr(eq + 1);
            has_inline_value = true;
        }
        Option *o = find(name);
        if (!o) return error("unknown option '" + name + "'");
        if (o->metavar.empty()) {
            if (has_inline_value) return error("option '" + name + "' takes no value");
        } else if (!has_inline_value) {
            if (i + 1 >= argc) return error("option '" + name + "' needs a value (" + o->metavar + ")");
            value = argv[++i];
        }
        std::string err = o->set(value);
        if (!err.empty()) return error("option '" + name + "': " + err);
        o->seen = true;
    }
    for (size_t k = next_positional; k < positionals_.size(); k++)
        if (positionals_[k].required) return error("missing argument " + positionals_[k].name);
    return 0;
}

void ArgParser::parse_or_exit(int argc, char **argv) {
    int rc = parse(argc, argv);
    if (rc < 0) std::exit(0);
    if (rc > 0) std::exit(1);
}

} // namespace common

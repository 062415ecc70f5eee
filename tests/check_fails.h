// check_fails.h — asserting that internal code fails the way the C API will report it.
#pragma once

#include "src/common.h"

#include <doctest/doctest.h>

#include <string>

// Runs expr, which must throw gptq::Error with this status and a message containing needle.
#define CHECK_FAILS(expr, status_, needle)                                                   \
    do {                                                                                     \
        gptq_status st_ = GPTQ_OK;                                                           \
        std::string msg_ = "(no error)";                                                     \
        try {                                                                                \
            (void)(expr);                                                                    \
        } catch (const gptq::Error &e) {                                                     \
            st_ = e.status();                                                                \
            msg_ = e.what();                                                                 \
        }                                                                                    \
        INFO("message: " << msg_);                                                           \
        CHECK(st_ == (status_));                                                             \
        CHECK(msg_.find(needle) != std::string::npos);                                       \
    } while (0)

"""Where the tests find the library, the shared models and the repository."""

import os
import unittest

import gptq

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
SHARED = os.environ.get("GPTQ_SHARED_DIR") or os.path.join(REPO, "..", "shared")
STORIES = os.path.join(SHARED, "models", "stories260k")
DOCS_8M = os.path.join(REPO, "models", "docs-llama-8m")


def golden(name):
    return os.path.join(STORIES, "golden", name)


def read_text(path):
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def golden_ids():
    with open(golden("greedy_n200_token_ids.txt")) as f:
        return [int(line.split()[2]) for line in f if line.strip()]


def require_library_and_models(test):
    """Skips the test case when libgptq or the shared models are missing, saying which."""
    try:
        gptq.version()
    except gptq.LibraryNotFoundError as e:
        raise unittest.SkipTest(str(e))
    if not os.path.isdir(STORIES):
        raise unittest.SkipTest("shared models not found at %s (set GPTQ_SHARED_DIR)" % STORIES)


# BOS, then 200 greedy tokens from an empty prompt, no repetition penalty: the run the golden
# text was made with (llama2.c -n 200; the golden id file lists those 200 tokens).
GOLDEN_OPTIONS = dict(max_tokens=200, temperature=0.0, repeat_penalty=1.0, add_bos=True)

// test_chat_templates.cpp — the chat templates of common/ (used by gptq-chat): each family's
// rendering of a two-turn conversation with a system prompt, character for character as Hugging
// Face's apply_chat_template renders the reference template of that family, and the recognition of
// a family from tokenizer_config.json.
#include <doctest/doctest.h>

#include "testutil.h"

// common/ is not part of libgptq, and the sanitizer build has no examples (so no gptq_common
// library): the test compiles the helper it checks into itself.
#include "../common/chat_template.cpp"

#include <algorithm>
#include <cstdio>
#include <fstream>

using common::ChatMessage;
using common::ChatTemplate;

namespace {

// System prompt, a first exchange, and a second user message awaiting the reply.
std::vector<ChatMessage> two_turns() {
    return {{"system", "You are a helpful assistant."},
            {"user", "Hello!"},
            {"assistant", "Hi there."},
            {"user", "How are you?"}};
}

} // namespace

TEST_CASE("llama2: system folded into the first [INST], BOS/EOS around each exchange") {
    std::string want = "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST] Hi there. </s>"
                       "<s>[INST] How are you? [/INST]";
    CHECK(common::render_chat(ChatTemplate::Llama2, two_turns(), true) == want);
}

TEST_CASE("llama2: contents are stripped, no system block without a system message") {
    std::vector<ChatMessage> m = {{"user", "  Hello!\n"}, {"assistant", " Hi there. "}, {"user", "\nBye "}};
    CHECK(common::render_chat(ChatTemplate::Llama2, m, true) ==
          "<s>[INST] Hello! [/INST] Hi there. </s><s>[INST] Bye [/INST]");
}

TEST_CASE("chatml: one <|im_start|> block per message, then the assistant's opening") {
    std::string want = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                       "<|im_start|>user\nHello!<|im_end|>\n"
                       "<|im_start|>assistant\nHi there.<|im_end|>\n"
                       "<|im_start|>user\nHow are you?<|im_end|>\n"
                       "<|im_start|>assistant\n";
    CHECK(common::render_chat(ChatTemplate::ChatML, two_turns(), true) == want);
    // Without the generation prompt the last block is the user's.
    CHECK(common::render_chat(ChatTemplate::ChatML, two_turns(), false) ==
          want.substr(0, want.size() - std::string("<|im_start|>assistant\n").size()));
}

TEST_CASE("zephyr: <|role|> tags, EOS after each message") {
    std::string want = "<|system|>\nYou are a helpful assistant.</s>\n"
                       "<|user|>\nHello!</s>\n"
                       "<|assistant|>\nHi there.</s>\n"
                       "<|user|>\nHow are you?</s>\n"
                       "<|assistant|>\n";
    CHECK(common::render_chat(ChatTemplate::Zephyr, two_turns(), true) == want);
}

TEST_CASE("plain: one document; the reply continues the user's text, a new user message starts a line") {
    CHECK(common::render_chat(ChatTemplate::Plain, two_turns(), true) ==
          "You are a helpful assistant.\n\nHello!Hi there.\nHow are you?");
    // One-shot without a system prompt: the prompt exactly (gptq-chat -p relies on this).
    CHECK(common::render_chat(ChatTemplate::Plain, {{"user", "Once upon a time"}}, true) == "Once upon a time");
    CHECK(common::render_chat(ChatTemplate::Plain, {{"user", ""}}, true) == "");
}

TEST_CASE("special texts: gptq-chat renders with empty BOS/EOS (the library adds the real BOS id)") {
    common::SpecialTexts none;
    none.bos.clear();
    none.eos.clear();
    CHECK(common::render_chat(ChatTemplate::Llama2, two_turns(), true, none) ==
          "[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST] Hi there. "
          "[INST] How are you? [/INST]");
    CHECK(common::render_chat(ChatTemplate::Zephyr, {{"user", "Hi"}}, true, none) == "<|user|>\nHi\n<|assistant|>\n");
}

TEST_CASE("detection by markers in the template text") {
    // Shapes of the families' published templates (abridged).
    const char *llama2 = "{% if messages[0]['role'] == 'system' %}{% set system_message = messages[0]['content'] %}"
                         "{% endif %}{% for message in loop_messages %}{% if message['role'] == 'user' %}"
                         "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% endif %}{% endfor %}";
    const char *mistral = "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
                          "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}"
                          "{{ message['content'] + eos_token }}{% endif %}{% endfor %}";
    const char *chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                         "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
                         "{{ '<|im_start|>assistant\\n' }}{% endif %}";
    const char *zephyr = "{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
                         "{{ '<|user|>\\n' + message['content'] + eos_token }}\n{% elif message['role'] == "
                         "'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n{% endif %}"
                         "\n{% endfor %}";
    const char *other = "{% for message in messages %}{{ message['role'] + ': ' + message['content'] }}{% endfor %}";
    CHECK(common::detect_template(llama2) == ChatTemplate::Llama2);
    CHECK(common::detect_template(mistral) == ChatTemplate::Llama2);
    CHECK(common::detect_template(chatml) == ChatTemplate::ChatML);
    CHECK(common::detect_template(zephyr) == ChatTemplate::Zephyr);
    CHECK(common::detect_template(other) == ChatTemplate::Plain);
    CHECK(common::detect_template("") == ChatTemplate::Plain);
}

TEST_CASE("tokenizer_config.json: string, named list, missing key, broken JSON") {
    std::string text, err;
    REQUIRE(common::chat_template_from_config_json(
        R"({"bos_token": "<s>", "chat_template": "{{ '<|im_start|>' }}"})", &text, &err));
    CHECK(text == "{{ '<|im_start|>' }}");

    // A list of named templates: "default" wins over earlier entries.
    REQUIRE(common::chat_template_from_config_json(
        R"({"chat_template": [{"name": "tool_use", "template": "<|user|>"},
                              {"name": "default", "template": "[INST]"}]})",
        &text, &err));
    CHECK(text == "[INST]");

    CHECK_FALSE(common::chat_template_from_config_json(R"({"bos_token": "<s>"})", &text, &err));
    CHECK(err.find("chat_template") != std::string::npos);
    CHECK_FALSE(common::chat_template_from_config_json("{\"chat_template\": ", &text, &err));
    CHECK(err.find("JSON") != std::string::npos);
    CHECK_FALSE(common::chat_template_from_config_json(R"({"chat_template": 3})", &text, &err));
}

TEST_CASE("a model directory's family comes from its tokenizer_config.json; none means plain") {
    std::string dir = testutil::temp_dir("chat-template");
    std::string why;
    CHECK(common::detect_template_for_model(dir, &why) == ChatTemplate::Plain);
    CHECK(why.find("tokenizer_config.json") != std::string::npos);
    {
        std::ofstream f(dir + "/tokenizer_config.json");
        f << R"({"chat_template": "{% for m in messages %}{{ '<|user|>\n' + m['content'] }}{% endfor %}"})";
    }
    CHECK(common::detect_template_for_model(dir, &why) == ChatTemplate::Zephyr);
    CHECK(why.find("zephyr") != std::string::npos);
    std::remove((dir + "/tokenizer_config.json").c_str());
    std::remove(dir.c_str());
}

TEST_CASE("template names and stop strings") {
    ChatTemplate t;
    for (ChatTemplate each : {ChatTemplate::Plain, ChatTemplate::Llama2, ChatTemplate::ChatML, ChatTemplate::Zephyr}) {
        REQUIRE(common::parse_template_name(common::template_name(each), &t));
        CHECK(t == each);
    }
    CHECK(common::parse_template_name("llama-2", &t));
    CHECK(t == ChatTemplate::Llama2);
    CHECK_FALSE(common::parse_template_name("vicuna", &t));
    CHECK(common::stop_strings(ChatTemplate::Plain).empty());
    auto chatml = common::stop_strings(ChatTemplate::ChatML);
    CHECK(std::find(chatml.begin(), chatml.end(), "<|im_end|>") != chatml.end());
    auto llama = common::stop_strings(ChatTemplate::Llama2);
    CHECK(std::find(llama.begin(), llama.end(), "[INST]") != llama.end());
}

// chat_template.cpp — see chat_template.h.
#include "chat_template.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

namespace common {

namespace {

std::string strip(const std::string &s) {
    const char *ws = " \t\n\r\f\v";
    size_t b = s.find_first_not_of(ws);
    if (b == std::string::npos) return "";
    size_t e = s.find_last_not_of(ws);
    return s.substr(b, e - b + 1);
}

// Plain: the conversation as one document. The assistant's text continues the user's text
// directly (a base model completes what it was given); each new user message starts a new line.
std::string render_plain(const std::vector<ChatMessage> &msgs) {
    std::string out;
    bool first = true;
    for (const auto &m : msgs) {
        if (m.role == "system") {
            if (!m.content.empty()) out += m.content + "\n\n";
            continue;
        }
        if (m.role == "user" && !first) out += "\n";
        out += m.content;
        first = false;
    }
    return out;
}

// Llama-2 chat: the system prompt is folded into the first user turn; every user turn opens with
// BOS, every assistant turn closes with EOS (Meta's reference template, contents stripped).
std::string render_llama2(const std::vector<ChatMessage> &msgs, const SpecialTexts &sp) {
    std::string out, system;
    bool have_system = false;
    size_t i = 0;
    if (!msgs.empty() && msgs[0].role == "system") {
        system = msgs[0].content;
        have_system = true;
        i = 1;
    }
    bool first_turn = true;
    for (; i < msgs.size(); i++) {
        const auto &m = msgs[i];
        std::string content = m.content;
        if (first_turn && have_system) content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
        first_turn = false;
        if (m.role == "user")
            out += sp.bos + "[INST] " + strip(content) + " [/INST]";
        else if (m.role == "assistant")
            out += " " + strip(content) + " " + sp.eos;
    }
    return out;
}

std::string render_chatml(const std::vector<ChatMessage> &msgs, bool gen) {
    std::string out;
    for (const auto &m : msgs) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    if (gen) out += "<|im_start|>assistant\n";
    return out;
}

std::string render_zephyr(const std::vector<ChatMessage> &msgs, bool gen, const SpecialTexts &sp) {
    std::string out;
    for (const auto &m : msgs) out += "<|" + m.role + "|>\n" + m.content + sp.eos + "\n";
    if (gen) out += "<|assistant|>\n";
    return out;
}

} // namespace

std::string render_chat(ChatTemplate tmpl, const std::vector<ChatMessage> &messages, bool add_generation_prompt,
                        const SpecialTexts &special) {
    switch (tmpl) {
    case ChatTemplate::Plain: return render_plain(messages);
    case ChatTemplate::Llama2: return render_llama2(messages, special);
    case ChatTemplate::ChatML: return render_chatml(messages, add_generation_prompt);
    case ChatTemplate::Zephyr: return render_zephyr(messages, add_generation_prompt, special);
    }
    return render_plain(messages);
}

ChatTemplate detect_template(const std::string &t) {
    // ChatML and Zephyr markers are checked first: some of their templates also mention "[INST]"
    // in comments or error branches, while Llama-2 templates never contain <|...|> role tags.
    if (t.find("<|im_start|>") != std::string::npos) return ChatTemplate::ChatML;
    if (t.find("<|user|>") != std::string::npos || t.find("<|assistant|>") != std::string::npos)
        return ChatTemplate::Zephyr;
    if (t.find("[INST]") != std::string::npos) return ChatTemplate::Llama2;
    return ChatTemplate::Plain;
}

bool chat_template_from_config_json(const std::string &json_text, std::string *template_text, std::string *err) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(json_text);
    } catch (const std::exception &e) {
        *err = std::string("not valid JSON: ") + e.what();
        return false;
    }
    if (!j.is_object() || !j.contains("chat_template")) {
        *err = "no \"chat_template\" key";
        return false;
    }
    const auto &ct = j["chat_template"];
    if (ct.is_string()) {
        *template_text = ct.get<std::string>();
        return true;
    }
    if (ct.is_array()) {
        // Named templates: prefer "default", else the first one with a template string.
        const nlohmann::json *pick = nullptr;
        for (const auto &e : ct) {
            if (!e.is_object() || !e.contains("template") || !e["template"].is_string()) continue;
            if (!pick) pick = &e;
            if (e.contains("name") && e["name"] == "default") pick = &e;
        }
        if (pick) {
            *template_text = (*pick)["template"].get<std::string>();
            return true;
        }
    }
    *err = "\"chat_template\" is neither a string nor a list of named templates";
    return false;
}

ChatTemplate detect_template_for_model(const std::string &model_dir, std::string *why) {
    std::string path = model_dir + "/tokenizer_config.json";
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        *why = "no tokenizer_config.json: plain";
        return ChatTemplate::Plain;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    std::string text, err;
    if (!chat_template_from_config_json(ss.str(), &text, &err)) {
        *why = path + ": " + err + ": plain";
        return ChatTemplate::Plain;
    }
    ChatTemplate t = detect_template(text);
    *why = std::string("tokenizer_config.json chat_template looks like ") + template_name(t);
    if (t == ChatTemplate::Plain) *why = "tokenizer_config.json chat_template not recognised: plain";
    return t;
}

bool parse_template_name(const std::string &name, ChatTemplate *out) {
    if (name == "plain" || name == "none") *out = ChatTemplate::Plain;
    else if (name == "llama2" || name == "llama-2" || name == "inst") *out = ChatTemplate::Llama2;
    else if (name == "chatml") *out = ChatTemplate::ChatML;
    else if (name == "zephyr") *out = ChatTemplate::Zephyr;
    else return false;
    return true;
}

const char *template_name(ChatTemplate tmpl) {
    switch (tmpl) {
    case ChatTemplate::Plain: return "plain";
    case ChatTemplate::Llama2: return "llama2";
    case ChatTemplate::ChatML: return "chatml";
    case ChatTemplate::Zephyr: return "zephyr";
    }
    return "plain";
}

std::vector<std::string> stop_strings(ChatTemplate tmpl) {
    switch (tmpl) {
    case ChatTemplate::Plain: return {};
    case ChatTemplate::Llama2: return {"[INST]", "</s>"};
    case ChatTemplate::ChatML: return {"<|im_end|>", "<|im_start|>"};
    case ChatTemplate::Zephyr: return {"</s>", "<|user|>", "<|system|>"};
    }
    return {};
}

} // namespace common

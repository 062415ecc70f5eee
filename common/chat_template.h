// chat_template.h — rendering a conversation into the prompt text a model was tuned on.
//
// Four families cover the Llama-family chat models this project targets:
//   plain   no markup: the conversation is one growing document (right for base models)
//   llama2  <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] ...
//   chatml  <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n
//   zephyr  <|{role}|>\n{content}</s>\n ... <|assistant|>\n
// The strings match what Hugging Face's apply_chat_template produces with the reference Jinja
// templates of these families (bos "<s>", eos "</s>"). A model's template is not executed (no
// Jinja engine here): its family is recognised from markers in the template text.
#pragma once

#include <string>
#include <vector>

namespace common {

enum class ChatTemplate { Plain, Llama2, ChatML, Zephyr };

struct ChatMessage {
    std::string role;     // "system", "user" or "assistant"
    std::string content;
};

// The special-token texts spliced into the rendering. The C API tokenizes prompts as plain text
// (a literal "</s>" would not become the EOS id), so the chat program renders with empty strings
// and lets gptq_generate add the real BOS; the defaults reproduce Hugging Face's strings.
struct SpecialTexts {
    std::string bos = "<s>";
    std::string eos = "</s>";
};

// Renders messages (an optional leading system message, then alternating user/assistant turns).
// add_generation_prompt appends the opening of the assistant's next turn.
std::string render_chat(ChatTemplate tmpl, const std::vector<ChatMessage> &messages, bool add_generation_prompt,
                        const SpecialTexts &special = SpecialTexts());

// The family of a Jinja chat template text by its markers; Plain when none is recognised.
ChatTemplate detect_template(const std::string &template_text);

// Reads the "chat_template" of a tokenizer_config.json text (a string, or a list of
// {"name", "template"} objects where "default" wins). Returns false when there is none or the
// JSON cannot be parsed (err says why, for a warning).
bool chat_template_from_config_json(const std::string &json_text, std::string *template_text, std::string *err);

// model_dir/tokenizer_config.json -> family; Plain when the file or its chat_template is missing.
// *why gets a short explanation for the user ("tokenizer_config.json: ChatML markers", ...).
ChatTemplate detect_template_for_model(const std::string &model_dir, std::string *why);

// "plain", "llama2" (also "llama-2", "inst"), "chatml", "zephyr". Returns false for other names.
bool parse_template_name(const std::string &name, ChatTemplate *out);
const char *template_name(ChatTemplate tmpl);

// Texts that mark the end of the assistant's turn or the start of the next one: generation stops
// there (the model's EOS token stops it too). Empty for Plain.
std::vector<std::string> stop_strings(ChatTemplate tmpl);

} // namespace common

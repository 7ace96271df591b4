//! Chat templates: the Jinja template a model ships (GGUF `tokenizer.chat_template`, or
//! `tokenizer_config.json`'s `chat_template`) rendered with minijinja, with the Python string
//! methods and helpers (`raise_exception`, `strftime_now`) Hugging Face templates rely on.

use minijinja::{Environment, ErrorKind, Value, context};
use serde::{Deserialize, Serialize};

use crate::{InferenceError, Result};

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// A compiled chat template and the special tokens templates refer to.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

const NAME: &str = "chat";

impl ChatTemplate {
    pub fn new(source: String, bos_token: String, eos_token: String) -> Result<Self> {
        let mut env = Environment::new();
        // Hugging Face renders with Jinja2's defaults for these.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        minijinja_contrib::add_to_environment(&mut env);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<Value, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_function("strftime_now", |format: String| {
            chrono::Local::now().format(&format).to_string()
        });
        env.add_template_owned(NAME, source)
            .map_err(|e| InferenceError::Template(e.to_string()))?;
        Ok(Self {
            env,
            bos_token,
            eos_token,
        })
    }

    /// The prompt for `messages`, ending with the assistant's turn opened when
    /// `add_generation_prompt`.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| InferenceError::Template(e.to_string()))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos_token,
                eos_token => self.eos_token,
            })
            .map_err(|e| match e.kind() {
                // The template refused the conversation (e.g. roles out of order).
                ErrorKind::InvalidOperation => InferenceError::InvalidRequest(format!(
                    "the model's chat template refused these messages: {}",
                    e.detail().unwrap_or("invalid conversation")
                )),
                _ => InferenceError::Template(e.to_string()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(pairs: &[(&str, &str)]) -> Vec<Message> {
        pairs
            .iter()
            .map(|(role, content)| Message {
                role: role.to_string(),
                content: content.to_string(),
            })
            .collect()
    }

    /// SmolLM2's template (ChatML with a default system prompt).
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chatml_with_a_default_system_prompt() {
        let template =
            ChatTemplate::new(SMOLLM2.into(), "<|im_start|>".into(), "<|im_end|>".into()).unwrap();
        let prompt = template.render(&messages(&[("user", "Hi")]), true).unwrap();
        assert_eq!(
            prompt,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let with_system = template
            .render(&messages(&[("system", "Be brief."), ("user", "Hi")]), false)
            .unwrap();
        assert!(with_system.starts_with("<|im_start|>system\nBe brief.<|im_end|>"));
        assert!(!with_system.ends_with("assistant\n"));
    }

    #[test]
    fn python_methods_and_raise_exception_work() {
        let source = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversation must start with the user') }}{% endif %}{{ bos_token }}{% for m in messages %}{{ m['content'].strip().upper() }}{% endfor %}";
        let template = ChatTemplate::new(source.into(), "<s>".into(), "</s>".into()).unwrap();
        assert_eq!(
            template
                .render(&messages(&[("user", "  hi ")]), true)
                .unwrap(),
            "<s>HI"
        );
        let err = template
            .render(&messages(&[("assistant", "x")]), true)
            .unwrap_err();
        assert!(
            matches!(err, InferenceError::InvalidRequest(ref m) if m.contains("must start with the user")),
            "{err}"
        );
    }

    #[test]
    fn broken_templates_are_refused_at_load() {
        assert!(ChatTemplate::new("{% for %}".into(), String::new(), String::new()).is_err());
    }
}

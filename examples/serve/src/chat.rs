//! The chat template of `/v1/chat/completions`: the messages rendered to one prompt by
//! a Jinja template (minijinja), the default one [`DEFAULT_TEMPLATE`] or a Hugging Face
//! style `chat_template` (`--chat-template FILE`). As `transformers` renders them: with
//! `trim_blocks` and `lstrip_blocks`, Python's string / dict / list methods
//! (minijinja-contrib's pycompat), `raise_exception(message)`, and the variables
//! `messages`, `add_generation_prompt` (true), `bos_token` and `eos_token`.

use minijinja::{Environment, Error, ErrorKind};
use serde::Serialize;

/// The default template, for the small decoder (byte tokenizer, no special tokens):
/// `<|role|>\ncontent\n` per message, then `<|assistant|>\n`.
pub const DEFAULT_TEMPLATE: &str = "{% for message in messages %}
<|{{ message.role }}|>
{{ message.content }}
{% endfor %}
{% if add_generation_prompt %}
<|assistant|>
{% endif %}
";

/// One message of a chat request.
#[derive(Clone, Debug, Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// A compiled chat template and the special tokens it is given.
pub struct Template {
    env: Environment<'static>,
    bos: String,
    eos: String,
}

impl Template {
    /// Compiles `source` (errors name the template's line).
    pub fn new(source: String, bos: &str, eos: &str) -> Result<Template, String> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<String, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_template_owned("chat", source)
            .map_err(|e| format!("chat template: {e:#}"))?;
        let (bos, eos) = (bos.to_owned(), eos.to_owned());
        Ok(Template { env, bos, eos })
    }

    /// The prompt of `messages`, ending with the assistant's turn.
    pub fn render(&self, messages: &[Message]) -> Result<String, String> {
        let template = self.env.get_template("chat").map_err(|e| e.to_string())?;
        let context = minijinja::context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => self.bos,
            eos_token => self.eos,
        };
        template.render(context).map_err(|e| match e.kind() {
            // `raise_exception`'s message alone.
            ErrorKind::InvalidOperation => e.detail().unwrap_or("").to_owned(),
            _ => format!("chat template: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(role: &str, content: &str) -> Message {
        let (role, content) = (role.into(), content.into());
        Message { role, content }
    }

    #[test]
    fn the_default_and_a_hugging_face_style_template() {
        let t = Template::new(DEFAULT_TEMPLATE.into(), "", "").unwrap();
        let m = [message("system", "Be brief."), message("user", "Hi")];
        let prompt = t.render(&m).unwrap();
        assert_eq!(
            prompt,
            "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n"
        );
        // A template in the style of Hugging Face's: methods, raise_exception, tokens.
        let hf = "{{ bos_token }}{% for m in messages %}
{% if m['role'] not in ['user', 'assistant'] %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}
[{{ m['role'].upper() }}] {{ m['content'].strip() }}{{ eos_token }}
{% endfor %}
{% if add_generation_prompt %}[ASSISTANT]{% endif %}";
        let t = Template::new(hf.into(), "<s>", "</s>").unwrap();
        let prompt = t.render(&[message("user", "  Hello ")]).unwrap();
        assert_eq!(prompt, "<s>[USER] Hello</s>\n[ASSISTANT]");
        let refused = t.render(&m).unwrap_err();
        assert_eq!(refused, "Only user and assistant roles are supported!");
        assert!(Template::new("{% for %}".into(), "", "").is_err());
    }
}

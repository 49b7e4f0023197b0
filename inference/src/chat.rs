//! Chat templates: the model's own Jinja template turns messages into a
//! prompt.
//!
//! The template is, in order of preference: the GGUF metadata's
//! `tokenizer.chat_template`; `chat_template` in the `tokenizer_config.json`
//! beside the model (a string, or a list of `{name, template}` of which the
//! one named `default` is used); else [`FALLBACK_TEMPLATE`] (ChatML).
//! [`ChatTemplate::source`] says which.
//!
//! Templates run in [minijinja](https://docs.rs/minijinja) with Python string
//! methods (`.strip()`, `.startswith()` …, from `minijinja-contrib`),
//! `raise_exception(msg)`, and the variables `messages`,
//! `add_generation_prompt`, `bos_token` and `eos_token`. Rendering is
//! bounded by [`FUEL`] so that a hostile template cannot loop forever (fuel
//! bounds instructions, not memory: a template can still build a large
//! string in a few steps, so templates are trusted as part of the model,
//! whose digest covers them); every failure is an [`Error::Template`].

use std::path::{Path, PathBuf};

use minijinja::{Environment, ErrorKind};
use serde::Serialize;

use crate::error::{Error, Result};

/// The ChatML template used when a model ships none: each message as
/// `<|im_start|>{role}\n{content}<|im_end|>\n`, then `<|im_start|>assistant\n`
/// when a generation prompt is asked for.
pub const FALLBACK_TEMPLATE: &str = "{%- for message in messages %}\
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}\
{%- endfor %}\
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/// The most template instructions one rendering may execute.
pub const FUEL: u64 = 1_000_000;

/// Where a [`ChatTemplate`] came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateSource {
    /// `tokenizer.chat_template` in the GGUF metadata.
    Gguf,
    /// `chat_template` in `tokenizer_config.json`.
    TokenizerConfig,
    /// None shipped with the model: [`FALLBACK_TEMPLATE`].
    Fallback,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// `system`, `user`, `assistant`, … (the template decides what it accepts).
    pub role: String,
    pub content: String,
}

impl Message {
    /// A message with this role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A compiled chat template with the special tokens it may refer to.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    text: String,
    source: TemplateSource,
    /// The file the template came from (none for the fallback).
    path: Option<PathBuf>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles `text`. `path` names the file it came from, for errors.
    pub fn new(
        text: &str,
        source: TemplateSource,
        path: Option<&Path>,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<Self> {
        let mut env = Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_fuel(Some(FUEL));
        env.add_function("raise_exception", |msg: String| -> Result<String, _> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_template_owned("chat", text.to_string())
            .map_err(|e| template_error(path, &e))?;
        Ok(ChatTemplate {
            env,
            text: text.to_string(),
            source,
            path: path.map(Path::to_path_buf),
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        })
    }

    /// The ChatML [`FALLBACK_TEMPLATE`].
    pub fn fallback(bos_token: &str, eos_token: &str) -> Self {
        // A constant that compiles (tested), so this cannot fail.
        Self::new(
            FALLBACK_TEMPLATE,
            TemplateSource::Fallback,
            None,
            bos_token,
            eos_token,
        )
        .unwrap_or_else(|e| unreachable!("the fallback template compiles: {e}"))
    }

    /// Renders `messages` into a prompt; with `add_generation_prompt` the
    /// prompt ends where the assistant's answer starts.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| template_error(self.path.as_deref(), &e))?;
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
        .map_err(|e| template_error(self.path.as_deref(), &e))
    }

    /// Where the template came from.
    pub fn source(&self) -> &TemplateSource {
        &self.source
    }

    /// The template's Jinja text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The `bos_token` the template sees.
    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    /// The `eos_token` the template sees.
    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }
}

fn template_error(path: Option<&Path>, e: &minijinja::Error) -> Error {
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason.push_str(&format!(": {s}"));
        source = s.source();
    }
    Error::Template {
        path: path.map(Path::to_path_buf),
        reason,
    }
}

/// The template text in a parsed `tokenizer_config.json`, if any.
pub(crate) fn config_template(path: &Path, config: &serde_json::Value) -> Result<Option<String>> {
    let bad = |reason: &str| Error::Template {
        path: Some(path.to_path_buf()),
        reason: reason.into(),
    };
    match config.get("chat_template") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(serde_json::Value::Array(list)) => {
            for item in list {
                if item.get("name").and_then(|n| n.as_str()) == Some("default") {
                    return item
                        .get("template")
                        .and_then(|t| t.as_str())
                        .map(|t| Some(t.to_string()))
                        .ok_or_else(|| bad("chat_template \"default\" has no template string"));
                }
            }
            Err(bad("chat_template list has no entry named \"default\""))
        }
        Some(_) => Err(bad("chat_template is neither a string nor a list")),
    }
}

/// A special token in `tokenizer_config.json`: a string or `{content: …}`.
pub(crate) fn config_token(config: &serde_json::Value, key: &str) -> Option<String> {
    match config.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        v => v.get("content")?.as_str().map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_is_chatml() {
        let t = ChatTemplate::fallback("", "");
        let p = t
            .render(&[Message::new("user", "Hi")], true)
            .expect("renders");
        assert_eq!(p, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
        assert_eq!(t.source(), &TemplateSource::Fallback);
    }

    #[test]
    fn config_template_forms() {
        let p = Path::new("tokenizer_config.json");
        let v = serde_json::json!({"chat_template": "x"});
        assert_eq!(config_template(p, &v).unwrap().as_deref(), Some("x"));
        let v = serde_json::json!({"chat_template": [
            {"name": "tool_use", "template": "t"}, {"name": "default", "template": "d"}]});
        assert_eq!(config_template(p, &v).unwrap().as_deref(), Some("d"));
        let v = serde_json::json!({"chat_template": [{"name": "tool_use", "template": "t"}]});
        assert!(config_template(p, &v).is_err());
        let v = serde_json::json!({"chat_template": 3});
        assert!(config_template(p, &v).is_err());
        assert!(config_template(p, &serde_json::json!({}))
            .unwrap()
            .is_none());
        let v = serde_json::json!({"bos_token": {"content": "<s>"}, "eos_token": "</s>"});
        assert_eq!(config_token(&v, "bos_token").as_deref(), Some("<s>"));
        assert_eq!(config_token(&v, "eos_token").as_deref(), Some("</s>"));
    }
}

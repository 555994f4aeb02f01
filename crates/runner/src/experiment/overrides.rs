//! Command-line overrides `--set train.epochs=50 --set flow.0.planar.k=8`, applied to the YAML
//! document before it is parsed, so that they are type-checked exactly like the file.

use serde_yaml::{Mapping, Value};

use crate::error::{Result, RunnerError};

/// One `path=value` override; `value` is read as YAML (`8`, `0.5`, `[64, 64]`, `{k: 4}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The key's path, e.g. `["flow", "0", "planar", "k"]`.
    pub path: Vec<String>,
    /// The value, parsed as YAML.
    pub value: Value,
    /// As the user typed it, for messages.
    pub text: String,
}

impl Override {
    /// Parses `a.b.0.c=value`.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |message: String| RunnerError::Config {
            file: "--set".into(),
            location: None,
            message,
        };
        let (path, value) = text.split_once('=').ok_or_else(|| {
            bad(format!(
                "`{text}`: expected KEY=VALUE, e.g. train.epochs=50"
            ))
        })?;
        let path: Vec<String> = path.trim().split('.').map(str::to_string).collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(bad(format!("`{text}`: empty key segment")));
        }
        let value: Value = serde_yaml::from_str(value)
            .map_err(|e| bad(format!("`{text}`: the value is not valid YAML: {e}")))?;
        Ok(Self {
            path,
            value,
            text: text.to_string(),
        })
    }
}

/// Applies the overrides to `doc` in order. Sequence indices are numbers (`flow.0`); a
/// missing mapping key is created (unknown keys are then refused by the typed parse).
pub fn apply(doc: &mut Value, overrides: &[Override]) -> Result<()> {
    for o in overrides {
        let mut node = &mut *doc;
        for (depth, key) in o.path.iter().enumerate() {
            let so_far = o.path[..=depth].join(".");
            node = match node {
                Value::Sequence(items) => {
                    let len = items.len();
                    let index: usize = key.parse().map_err(|_| RunnerError::Config {
                        file: "--set".into(),
                        location: None,
                        message: format!(
                            "`{}`: `{so_far}` indexes a list, expected a number",
                            o.text
                        ),
                    })?;
                    items.get_mut(index).ok_or_else(|| RunnerError::Config {
                        file: "--set".into(),
                        location: None,
                        message: format!(
                            "`{}`: `{so_far}` is past the end of a list of {len}",
                            o.text
                        ),
                    })?
                }
                Value::Mapping(map) => map
                    .entry(Value::String(key.clone()))
                    .or_insert(Value::Mapping(Mapping::new())),
                Value::Null => {
                    *node = Value::Mapping(Mapping::new());
                    match node {
                        Value::Mapping(map) => map
                            .entry(Value::String(key.clone()))
                            .or_insert(Value::Mapping(Mapping::new())),
                        _ => unreachable!("just set to a mapping"),
                    }
                }
                _ => {
                    return Err(RunnerError::Config {
                        file: "--set".into(),
                        location: None,
                        message: format!(
                            "`{}`: `{}` is a value, not a section",
                            o.text,
                            o.path[..depth].join(".")
                        ),
                    })
                }
            };
        }
        *node = o.value.clone();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_reach_nested_keys_and_list_items() {
        let mut doc: Value =
            serde_yaml::from_str("train: {epochs: 3}\nflow:\n  - planar: {k: 2}\n").unwrap();
        let sets = ["train.epochs=50", "flow.0.planar.k=8", "optimizer.lr=0.01"]
            .map(|s| Override::parse(s).unwrap());
        apply(&mut doc, &sets).unwrap();
        let text = serde_yaml::to_string(&doc).unwrap();
        assert!(
            text.contains("epochs: 50") && text.contains("k: 8") && text.contains("lr: 0.01"),
            "{text}"
        );
    }

    #[test]
    fn bad_overrides_say_what_is_wrong() {
        let mut doc: Value = serde_yaml::from_str("flow:\n  - planar: {k: 2}\nname: x\n").unwrap();
        for (set, want) in [
            ("flow.3.planar.k=1", "past the end"),
            ("flow.a=1", "expected a number"),
            ("name.x=1", "is a value"),
            ("novalue", "KEY=VALUE"),
        ] {
            let err = Override::parse(set)
                .and_then(|o| apply(&mut doc, &[o]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{set}: {err}");
        }
    }
}

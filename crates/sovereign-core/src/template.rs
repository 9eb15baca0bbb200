//! `{{path}}` templates for handler payloads (URLs, headers, bodies, argv).
//!
//! A template refers to values of a context object by dotted path: `{{payload.symbol}}`,
//! `{{trigger.kind}}`, `{{trigger.data.price}}`, `{{task_id}}`. Strings are inserted as they are,
//! other JSON values in their compact JSON form, `null` as nothing; a path that names nothing is
//! an error of the run ([`Missing`]). Pure
//! string work: no I/O, no escaping decisions beyond that (the caller picks where text goes).

use serde_json::Value;

/// A template named a value the run does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the template names {{{{{path}}}}}, which this run does not have")]
pub struct Missing {
    pub path: String,
}

/// Render every `{{ path }}` in `template` from `ctx`. A path that names nothing is an error
/// (never an empty string or a `null` sent on); a value that is `null` renders as nothing.
pub fn render(template: &str, ctx: &Value) -> Result<String, Missing> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let path = after[..end].trim();
                match lookup(ctx, path)? {
                    Value::String(s) => out.push_str(s),
                    Value::Null => {}
                    other => out.push_str(&other.to_string()),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether `text` holds a `{{…}}` template.
pub fn is_template(text: &str) -> bool {
    text.find("{{")
        .is_some_and(|start| text[start..].contains("}}"))
}

/// Render templates inside every string of a JSON value. A string that is exactly one
/// `{{path}}` is replaced by the referenced value itself, keeping its JSON type.
pub fn render_value(value: &Value, ctx: &Value) -> Result<Value, Missing> {
    Ok(match value {
        Value::String(s) => {
            let trimmed = s.trim();
            if let Some(inner) = trimmed
                .strip_prefix("{{")
                .and_then(|t| t.strip_suffix("}}"))
            {
                if !inner.contains("{{") && !inner.contains("}}") {
                    return lookup(ctx, inner.trim()).cloned();
                }
            }
            Value::String(render(s, ctx)?)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(v, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, ctx)?)))
                .collect::<Result<_, Missing>>()?,
        ),
        other => other.clone(),
    })
}

fn lookup<'a>(ctx: &'a Value, path: &str) -> Result<&'a Value, Missing> {
    path.split('.')
        .try_fold(ctx, |v, key| match v {
            Value::Object(map) => map.get(key),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
        .ok_or_else(|| Missing {
            path: path.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_table_of_cases() {
        let ctx =
            json!({"payload": {"symbol": "ES", "qty": 2, "legs": ["a", "b"]}, "task_id": "t1"});
        let cases = [
            ("plain", "plain"),
            ("{{payload.symbol}}", "ES"),
            ("/q?s={{ payload.symbol }}&n={{payload.qty}}", "/q?s=ES&n=2"),
            ("{{payload.legs.1}}", "b"),
            ("{{task_id}}-{{task_id}}", "t1-t1"),
            ("open {{ never closed", "open {{ never closed"),
        ];
        for (template, expected) in cases {
            assert_eq!(
                render(template, &ctx).as_deref(),
                Ok(expected),
                "template {template:?}"
            );
        }
        // A value the run does not have is an error, never an empty string.
        for (template, path) in [
            ("{{missing.path}}x", "missing.path"),
            ("{{payload.legs.7}}", "payload.legs.7"),
            ("{{payload.symbol.deeper}}", "payload.symbol.deeper"),
        ] {
            assert_eq!(
                render(template, &ctx),
                Err(Missing { path: path.into() }),
                "template {template:?}"
            );
        }
        assert_eq!(
            render_value(&json!({"qty": "{{trigger.data.qty}}"}), &ctx),
            Err(Missing {
                path: "trigger.data.qty".into()
            })
        );
        assert!(is_template("a{{b}}") && !is_template("a{{b") && !is_template("ab"));
    }

    #[test]
    fn whole_string_template_keeps_json_type() {
        let ctx = json!({"payload": {"qty": 2, "o": {"k": true}}});
        let body = json!({"n": "{{payload.qty}}", "o": "{{payload.o}}", "s": "q={{payload.qty}}"});
        assert_eq!(
            render_value(&body, &ctx),
            Ok(json!({"n": 2, "o": {"k": true}, "s": "q=2"}))
        );
    }
}

//! The IAM policies `template.yaml` gives each function, read from the template, and the check
//! IAM makes of a call against them: action, resource and, for the table, the partition keys the
//! call names (`dynamodb:LeadingKeys` under `ForAllValues:StringLike`, with a `Null` check so a
//! call that names no key is not let through by an empty set).
//!
//! The template is read by its house layout (one statement per `- Sid:`, flow lists for
//! `Action`, `Resource` and `dynamodb:LeadingKeys`); a statement this reader cannot follow fails
//! the test rather than being skipped.

use std::collections::BTreeSet;

/// One `Allow` statement.
#[derive(Debug, Clone)]
pub struct Statement {
    /// `Sid`.
    pub sid: String,
    /// Actions (`dynamodb:PutItem`, …).
    pub actions: Vec<String>,
    /// Resources by logical name: `Table`, `Table/index/gsi1`, `InboundQueue`, `ssm:…`.
    pub resources: Vec<String>,
    /// `dynamodb:LeadingKeys` patterns; `None` when the statement has no such condition.
    pub leading_keys: Option<Vec<String>>,
    /// `"Null": {dynamodb:LeadingKeys: "false"}`: the call must name a partition key.
    pub keys_required: bool,
}

/// A call as IAM sees it, with its resource by logical name (see [`Statement::resources`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Request {
    pub action: String,
    pub resource: String,
    pub leading_keys: Vec<String>,
}

fn flow_list(value: &str) -> Vec<String> {
    let value = value.trim();
    let inner = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(value);
    inner
        .split(',')
        .map(|s| s.trim().trim_matches('"').trim_matches('\'').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `!GetAtt Table.Arn` → `Table`; `!Sub "${Table.Arn}/index/gsi1"` → `Table/index/gsi1`;
/// an SSM parameter ARN → `ssm:{parameter name reference}`.
fn resource_name(value: &str) -> String {
    let v = value.trim().trim_matches('"');
    if v == "*" {
        return "*".to_owned();
    }
    if let Some(name) = v.strip_prefix("!Ref ") {
        return format!("ref:{}", name.trim());
    }
    if let Some(att) = v.strip_prefix("!GetAtt ") {
        return att.trim().trim_end_matches(".Arn").to_owned();
    }
    let sub = v
        .strip_prefix("!Sub ")
        .unwrap_or(v)
        .trim()
        .trim_matches('"');
    if let Some(param) = sub.split(":parameter").nth(1) {
        return format!("ssm:{param}");
    }
    if let Some(rest) = sub.strip_prefix("${")
        && let Some((att, tail)) = rest.split_once('}')
    {
        return format!("{}{tail}", att.trim_end_matches(".Arn"));
    }
    panic!("a Resource this reader does not follow: {value}");
}

/// The statements of `function`'s `Policies` (its logical name, e.g. `IngestFunction`).
pub fn statements(template: &str, function: &str) -> Vec<Statement> {
    let header = format!("  {function}:");
    let body: Vec<&str> = template
        .lines()
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("   "))
        .collect();
    assert!(!body.is_empty(), "{function} missing from template.yaml");
    let policies: Vec<&str> = body
        .iter()
        .skip_while(|l| l.trim() != "Policies:")
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("        "))
        .copied()
        .collect();
    let mut out: Vec<Statement> = Vec::new();
    let mut in_resource_list = false;
    for line in policies {
        let t = line.trim().trim_start_matches("- ");
        if let Some(sid) = t.strip_prefix("Sid: ") {
            out.push(Statement {
                sid: sid.trim().to_owned(),
                actions: Vec::new(),
                resources: Vec::new(),
                leading_keys: None,
                keys_required: false,
            });
            in_resource_list = false;
            continue;
        }
        let Some(statement) = out.last_mut() else {
            continue;
        };
        if in_resource_list && line.trim_start().starts_with("- ") && !t.contains(':') {
            statement.resources.push(resource_name(t));
            continue;
        }
        in_resource_list = false;
        if let Some(actions) = t.strip_prefix("Action: ") {
            statement.actions = flow_list(actions);
        } else if let Some(resources) = t.strip_prefix("Resource:") {
            let r = resources.trim();
            if r.is_empty() {
                in_resource_list = true;
            } else if r.starts_with('[') {
                statement.resources = split_resources(r)
                    .iter()
                    .map(|x| resource_name(x))
                    .collect();
            } else {
                statement.resources = vec![resource_name(r)];
            }
        } else if let Some(keys) = t.strip_prefix("dynamodb:LeadingKeys: ") {
            match keys.trim() {
                k if k.starts_with('[') => statement.leading_keys = Some(flow_list(k)),
                "\"false\"" | "'false'" => statement.keys_required = true,
                k => panic!("{function} {}: dynamodb:LeadingKeys: {k}?", statement.sid),
            }
        } else if let Some(effect) = t.strip_prefix("Effect: ") {
            assert_eq!(
                effect.trim(),
                "Allow",
                "{function}: only Allow statements are read"
            );
        }
    }
    for s in &out {
        assert!(
            !s.actions.is_empty() && !s.resources.is_empty(),
            "{function} {}: no Action or Resource read",
            s.sid
        );
    }
    out
}

/// `[!GetAtt A.Arn, !Sub "${B.Arn}/index/gsi1"]` → its two items (commas inside quotes kept).
fn split_resources(list: &str) -> Vec<String> {
    let inner = list
        .trim()
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(list);
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in inner.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => items.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    items.push(current);
    items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// IAM's `StringLike`: `*` any run of characters, `?` one character.
pub fn string_like(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    // Iterative wildcard match with backtracking to the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None::<usize>, 0);
    while j < v.len() {
        if i < p.len() && (p[i] == '?' || p[i] == v[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    while i < p.len() && p[i] == '*' {
        i += 1;
    }
    i == p.len()
}

impl Statement {
    /// Whether this statement allows `request`.
    pub fn allows(&self, request: &Request) -> bool {
        let action = self.actions.iter().any(|a| string_like(a, &request.action));
        let resource = self
            .resources
            .iter()
            .any(|r| r == "*" || *r == request.resource);
        // `ForAllValues:StringLike`: every key named matches a pattern, which an empty set does
        // (IAM's rule), hence the `Null` condition beside it.
        let keys = self.leading_keys.as_ref().is_none_or(|patterns| {
            request
                .leading_keys
                .iter()
                .all(|k| patterns.iter().any(|p| string_like(p, k)))
        });
        let named = !self.keys_required || !request.leading_keys.is_empty();
        action && resource && keys && named
    }
}

/// The requests no statement allows.
pub fn denied<'r>(
    statements: &[Statement],
    requests: impl IntoIterator<Item = &'r Request>,
) -> BTreeSet<&'r Request> {
    requests
        .into_iter()
        .filter(|r| !statements.iter().any(|s| s.allows(r)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_like_is_iams() {
        assert!(string_like("doc#conv#*", "doc#conv#abc"));
        assert!(string_like("doc#conv#*", "doc#conv#"));
        assert!(!string_like("doc#conv#*", "doc#conv-active#x"));
        assert!(string_like("doc#dedup-scheme", "doc#dedup-scheme"));
        assert!(!string_like("doc#dedup-scheme", "doc#dedup-scheme2"));
        assert!(string_like("a*b*c", "axxbyyc"));
        assert!(!string_like("a*b*c", "axxbyy"));
        assert!(string_like("?#*", "x#"));
    }
}

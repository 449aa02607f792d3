//! A connector's manifest as the host keeps it, and its validation.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DisplayName {
    pub zh: String,
    pub en: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperationSpec {
    pub name: String,
    pub display: DisplayName,
    pub config_schema: Value,
    pub input_schema: Value,
    pub output_schema: Value,
    pub side_effects: bool,
}

impl OperationSpec {
    /// The customer contact the operation makes, if it reaches one (checked at upload).
    pub fn contact(&self) -> Option<trellis_model::contact_policy::ContactDecl> {
        trellis_model::contact_policy::ContactDecl::of_input_schema(&self.input_schema)
            .ok()
            .flatten()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    pub hosts: Vec<String>,
    pub secrets: Vec<String>,
    pub kv: bool,
}

/// What a connector says it is: read from its `describe` export when it is uploaded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub display: DisplayName,
    pub description: String,
    pub operations: Vec<OperationSpec>,
    pub capabilities: Capabilities,
    pub inbound: bool,
    pub poll: bool,
}

impl Manifest {
    /// The semver major version flows refer to (`name@major`).
    pub fn major(&self) -> u64 {
        semver::Version::parse(&self.version)
            .map(|v| v.major)
            .unwrap_or(0)
    }

    pub fn operation(&self, name: &str) -> Option<&OperationSpec> {
        self.operations.iter().find(|o| o.name == name)
    }

    /// Every problem with the manifest, each as `pointer: message`.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !is_kebab(&self.name) {
            problems.push(format!(
                "/name: {:?} must be kebab-case (a-z, 0-9, '-'), 1-64 characters",
                self.name
            ));
        }
        if let Err(e) = semver::Version::parse(&self.version) {
            problems.push(format!(
                "/version: {:?} is not a semantic version: {e}",
                self.version
            ));
        }
        if self.operations.is_empty() {
            problems.push("/operations: a connector needs at least one operation".into());
        }
        for (i, op) in self.operations.iter().enumerate() {
            if !is_snake(&op.name) {
                problems.push(format!(
                    "/operations/{i}/name: {:?} must be snake_case (a-z, 0-9, '_')",
                    op.name
                ));
            }
            if self.operations[..i].iter().any(|o| o.name == op.name) {
                problems.push(format!(
                    "/operations/{i}/name: {:?} is declared twice",
                    op.name
                ));
            }
            for (field, schema) in [
                ("config_schema", &op.config_schema),
                ("input_schema", &op.input_schema),
                ("output_schema", &op.output_schema),
            ] {
                if let Err(e) = jsonschema::validator_for(schema) {
                    problems.push(format!(
                        "/operations/{i}/{field}: not a valid JSON Schema: {e}"
                    ));
                }
            }
            match trellis_model::contact_policy::ContactDecl::of_input_schema(&op.input_schema) {
                Ok(Some(_)) if !op.side_effects => problems.push(format!(
                    "/operations/{i}/side_effects: an operation that reaches customers ({}) changes something outside; declare side_effects",
                    trellis_model::contact_policy::CONTACT_KEY
                )),
                Ok(_) => {}
                Err(e) => problems.push(format!("/operations/{i}/input_schema: {e}")),
            }
        }
        for (i, host) in self.capabilities.hosts.iter().enumerate() {
            if let Err(e) = check_host_pattern(host) {
                problems.push(format!("/capabilities/hosts/{i}: {e}"));
            }
        }
        for (i, secret) in self.capabilities.secrets.iter().enumerate() {
            if !is_snake(secret) {
                problems.push(format!(
                    "/capabilities/secrets/{i}: {secret:?} must be snake_case"
                ));
            }
        }
        problems
    }
}

/// A connector name: kebab-case, 1-64 characters, starting with a letter.
pub fn is_kebab(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_snake(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A host pattern is `*`, `host`, `host:port` or `*.domain[:port]`.
pub fn check_host_pattern(pattern: &str) -> Result<(), String> {
    if pattern == "*" {
        return Ok(());
    }
    let (host, port) = match pattern.rsplit_once(':') {
        Some((h, p)) => {
            if p != "*" && p.parse::<u16>().is_err() {
                return Err(format!("{pattern:?}: the port must be a number or *"));
            }
            (h, Some(p))
        }
        None => (pattern, None),
    };
    let _ = port;
    let name = host.strip_prefix("*.").unwrap_or(host);
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{pattern:?} is not a host pattern (host, host:port, *.domain or *)"
        ))
    }
}

/// Whether `host` (lowercase) with `port` matches `pattern`. A pattern without a port
/// matches any port; `*.example.com` matches subdomains, not `example.com` itself.
pub fn host_matches(pattern: &str, host: &str, port: u16) -> bool {
    if pattern == "*" {
        return true;
    }
    let (p_host, p_port) = match pattern.rsplit_once(':') {
        Some((h, "*")) => (h, None),
        Some((h, p)) => match p.parse::<u16>() {
            Ok(p) => (h, Some(p)),
            Err(_) => return false,
        },
        None => (pattern, None),
    };
    if p_port.is_some_and(|p| p != port) {
        return false;
    }
    let p_host = p_host.to_ascii_lowercase();
    match p_host.strip_prefix("*.") {
        Some(domain) => host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
        None => p_host == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        assert!(host_matches("*", "example.com", 443));
        assert!(host_matches("api.example.com", "api.example.com", 8443));
        assert!(host_matches(
            "api.example.com:8443",
            "api.example.com",
            8443
        ));
        assert!(!host_matches(
            "api.example.com:8443",
            "api.example.com",
            443
        ));
        assert!(host_matches("*.example.com", "a.b.example.com", 443));
        assert!(!host_matches("*.example.com", "example.com", 443));
        assert!(!host_matches("*.example.com", "badexample.com", 443));
        assert!(!host_matches("example.com", "example.com.evil.net", 443));
        assert!(host_matches("127.0.0.1", "127.0.0.1", 3000));
        assert!(check_host_pattern("*.example.com:443").is_ok());
        assert!(check_host_pattern("http://x").is_err());
        assert!(check_host_pattern("a b").is_err());
    }

    #[test]
    fn manifest_problems_name_their_pointer() {
        let m = Manifest {
            name: "Bad_Name".into(),
            version: "one".into(),
            display: DisplayName::default(),
            description: String::new(),
            operations: vec![
                OperationSpec {
                    name: "go".into(),
                    display: DisplayName::default(),
                    config_schema: serde_json::json!({"type": "object"}),
                    input_schema: serde_json::json!({"type": 12}),
                    output_schema: serde_json::json!(true),
                    side_effects: false,
                },
                OperationSpec {
                    name: "go".into(),
                    display: DisplayName::default(),
                    config_schema: serde_json::json!(true),
                    input_schema: serde_json::json!(true),
                    output_schema: serde_json::json!(true),
                    side_effects: false,
                },
            ],
            capabilities: Capabilities {
                hosts: vec!["https://x".into()],
                secrets: vec!["Token".into()],
                kv: false,
            },
            inbound: false,
            poll: false,
        };
        let problems = m.problems();
        let pointers: Vec<&str> = problems
            .iter()
            .map(|p| p.split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(
            pointers,
            [
                "/name",
                "/version",
                "/operations/0/input_schema",
                "/operations/1/name",
                "/capabilities/hosts/0",
                "/capabilities/secrets/0"
            ]
        );
    }
}

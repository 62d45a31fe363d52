//! A pure IAM policy matcher: enough of IAM's evaluation logic to answer "may CloudTrail assume
//! this role" and "may this role write CloudTrail's log stream", without calling AWS.
//!
//! Supported: `Action`/`NotAction`, `Resource`/`NotResource`, `Principal`/`NotPrincipal`,
//! `*` and `?` wildcards, case-insensitive actions, explicit Deny over Allow. Conditions are
//! evaluated only for context keys the caller knows for certain (CloudTrail's `aws:SourceArn`
//! and `aws:SourceAccount` when it assumes the role); any other condition makes the statement
//! "cannot verify", which the rules turn into a warning rather than a guess.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Documents larger than this are not IAM policies (IAM caps managed policies at 6,144
/// characters and trust policies lower); refusing them bounds time and memory on hostile input.
pub const MAX_POLICY_BYTES: usize = 131_072;

/// A string or a list of strings, as IAM accepts for most policy elements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let slice: &[String] = match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        };
        slice.iter().map(String::as_str)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    Allow,
    Deny,
}

/// `"*"` or a map such as `{"Service": "cloudtrail.amazonaws.com"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PrincipalSpec {
    Any(String),
    Map(BTreeMap<String, OneOrMany>),
}

/// A condition value may be a string, bool or number, alone or in a list.
pub type ConditionBlock = BTreeMap<String, BTreeMap<String, serde_json::Value>>;

/// Reads a policy element that is present in the document. IAM's grammar has no `null`, but
/// serde would read `"Resource": null` as an absent element, and an absent Resource means "the
/// role itself": a null would silently widen an Allow to everything. So a null is refused, and
/// the document with it, as IAM refuses it.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub effect: Effect,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub principal: Option<PrincipalSpec>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_principal: Option<PrincipalSpec>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub action: Option<OneOrMany>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_action: Option<OneOrMany>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub resource: Option<OneOrMany>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_resource: Option<OneOrMany>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub condition: Option<ConditionBlock>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum StatementList {
    One(Box<Statement>),
    Many(Vec<Statement>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawDocument {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    statement: StatementList,
}

/// A parsed IAM policy document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawDocument", into = "RawDocument")]
pub struct PolicyDocument {
    pub version: Option<String>,
    pub statements: Vec<Statement>,
}

impl From<RawDocument> for PolicyDocument {
    fn from(raw: RawDocument) -> Self {
        let statements = match raw.statement {
            StatementList::One(s) => vec![*s],
            StatementList::Many(v) => v,
        };
        Self {
            version: raw.version,
            statements,
        }
    }
}

impl From<PolicyDocument> for RawDocument {
    fn from(doc: PolicyDocument) -> Self {
        RawDocument {
            version: doc.version,
            statement: StatementList::Many(doc.statements),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("policy document is {0} bytes, more than the {MAX_POLICY_BYTES} trailwatch reads")]
    TooLarge(usize),
    #[error("policy document is not valid URL encoding: {0}")]
    Encoding(String),
    #[error("policy document is not a valid IAM policy: {0}")]
    Json(String),
}

impl PolicyDocument {
    /// Parses a document as IAM returns it: JSON, or URL-encoded JSON (IAM's query API encodes
    /// `AssumeRolePolicyDocument` and policy versions that way).
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge(text.len()));
        }
        let trimmed = text.trim_start();
        let decoded;
        let json = if trimmed.starts_with('{') {
            text
        } else {
            decoded = percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map_err(|e| PolicyError::Encoding(e.to_string()))?;
            &decoded
        };
        serde_json::from_str(json).map_err(|e| PolicyError::Json(e.to_string()))
    }
}

/// Who makes the request, for trust policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestPrincipal<'a> {
    Service(&'a str),
}

/// One request to evaluate. Context keys are compared case-insensitively.
#[derive(Debug, Clone)]
pub struct AccessRequest<'a> {
    pub action: &'a str,
    pub resource: &'a str,
    pub principal: Option<RequestPrincipal<'a>>,
    /// Condition keys whose values are known for certain, for example `aws:SourceAccount`.
    pub context: &'a [(&'a str, &'a str)],
}

/// The outcome of evaluating a request against a set of policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Denied explicitly by a Deny statement, or implicitly because nothing allows it.
    Denied {
        explicit: bool,
    },
    /// The outcome hangs on conditions trailwatch cannot evaluate; names the statements.
    Unverifiable {
        statements: Vec<String>,
    },
}

/// Matches `text` against an IAM pattern where `*` is any run and `?` any one character.
///
/// Iterative with a single backtrack point, so it is linear-ish and cannot blow the stack or
/// go exponential on hostile patterns such as `a*a*a*a*…b`.
pub fn glob_match(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let fold = |c: char| {
        if case_insensitive {
            c.to_ascii_lowercase()
        } else {
            c
        }
    };
    let p: Vec<char> = pattern.chars().map(fold).collect();
    let t: Vec<char> = text.chars().map(fold).collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    True,
    False,
    Unknown,
}

impl Statement {
    pub fn label(&self, index: usize) -> String {
        match &self.sid {
            Some(sid) if !sid.is_empty() => sid.clone(),
            _ => format!("statement #{}", index + 1),
        }
    }

    /// Whether the statement's Action/NotAction covers `action` (case-insensitive).
    pub fn matches_action(&self, action: &str) -> bool {
        match (&self.action, &self.not_action) {
            (Some(list), _) => list.iter().any(|p| glob_match(p, action, true)),
            (None, Some(list)) => !list.iter().any(|p| glob_match(p, action, true)),
            (None, None) => false,
        }
    }

    /// Whether the statement's Resource/NotResource covers `resource`. Trust policies carry
    /// no Resource element; there the role itself is the implied resource.
    pub fn matches_resource(&self, resource: &str) -> bool {
        match (&self.resource, &self.not_resource) {
            (Some(list), _) => list.iter().any(|p| glob_match(p, resource, false)),
            (None, Some(list)) => !list.iter().any(|p| glob_match(p, resource, false)),
            (None, None) => true,
        }
    }

    fn matches_principal(&self, principal: Option<RequestPrincipal<'_>>) -> bool {
        let Some(RequestPrincipal::Service(service)) = principal else {
            // Identity policies have no Principal element; it is the role itself.
            return self.principal.is_none() && self.not_principal.is_none();
        };
        let names = |spec: &PrincipalSpec| match spec {
            PrincipalSpec::Any(s) => s == "*",
            PrincipalSpec::Map(map) => map.iter().any(|(kind, values)| {
                kind.eq_ignore_ascii_case("Service")
                    && values
                        .iter()
                        .any(|v| v == "*" || v.eq_ignore_ascii_case(service))
            }),
        };
        match (&self.principal, &self.not_principal) {
            (Some(spec), _) => names(spec),
            (None, Some(spec)) => !names(spec),
            (None, None) => false,
        }
    }

    fn condition_truth(&self, context: &[(&str, &str)]) -> Truth {
        let Some(block) = &self.condition else {
            return Truth::True;
        };
        let mut result = Truth::True;
        for (operator, keys) in block {
            for (key, values) in keys {
                match condition_entry(operator, key, values, context) {
                    Truth::False => return Truth::False,
                    Truth::Unknown => result = Truth::Unknown,
                    Truth::True => {}
                }
            }
        }
        result
    }
}

fn condition_values(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::Array(items) => items.iter().flat_map(condition_values).collect(),
        serde_json::Value::String(s) => vec![s.clone()],
        other => vec![other.to_string()],
    }
}

/// Evaluates one `Operator: {Key: Values}` entry. Unknown operators and unknown keys give
/// `Unknown`: the request context trailwatch builds is never complete.
fn condition_entry(
    operator: &str,
    key: &str,
    values: &serde_json::Value,
    context: &[(&str, &str)],
) -> Truth {
    let op = operator
        .strip_prefix("ForAnyValue:")
        .or_else(|| operator.strip_prefix("ForAllValues:"))
        .unwrap_or(operator);
    let (op, if_exists) = match op.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (op, false),
    };
    let found = context
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| *v);
    let expected = condition_values(values);
    if op == "Null" {
        return match found {
            // Only keys in the context are known to be present; absence is not known.
            Some(_) => bool_truth(expected.iter().any(|v| v == "false")),
            None => Truth::Unknown,
        };
    }
    let Some(actual) = found else {
        return if if_exists {
            Truth::True
        } else {
            Truth::Unknown
        };
    };
    let any = |f: &dyn Fn(&str) -> bool| expected.iter().any(|e| f(e));
    match op {
        "StringEquals" | "ArnEquals" => bool_truth(any(&|e| e == actual)),
        "StringNotEquals" | "ArnNotEquals" => bool_truth(!any(&|e| e == actual)),
        "StringEqualsIgnoreCase" => bool_truth(any(&|e| e.eq_ignore_ascii_case(actual))),
        "StringNotEqualsIgnoreCase" => bool_truth(!any(&|e| e.eq_ignore_ascii_case(actual))),
        "StringLike" | "ArnLike" => bool_truth(any(&|e| glob_match(e, actual, false))),
        "StringNotLike" | "ArnNotLike" => bool_truth(!any(&|e| glob_match(e, actual, false))),
        _ => Truth::Unknown,
    }
}

fn bool_truth(b: bool) -> Truth {
    if b {
        Truth::True
    } else {
        Truth::False
    }
}

/// Evaluates `request` against `policies` with IAM's rules: an explicit Deny wins, then an
/// Allow, else implicit deny. Statements whose conditions cannot be evaluated make the answer
/// `Unverifiable` wherever they could change it.
pub fn evaluate(policies: &[&PolicyDocument], request: &AccessRequest<'_>) -> Decision {
    let mut allowed = false;
    let mut unsure_allow = Vec::new();
    let mut unsure_deny = Vec::new();
    for policy in policies {
        for (index, statement) in policy.statements.iter().enumerate() {
            if !(statement.matches_principal(request.principal)
                && statement.matches_action(request.action)
                && statement.matches_resource(request.resource))
            {
                continue;
            }
            let truth = statement.condition_truth(request.context);
            match (statement.effect, truth) {
                (Effect::Deny, Truth::True) => return Decision::Denied { explicit: true },
                (Effect::Deny, Truth::Unknown) => unsure_deny.push(statement.label(index)),
                (Effect::Allow, Truth::True) => allowed = true,
                (Effect::Allow, Truth::Unknown) => unsure_allow.push(statement.label(index)),
                (_, Truth::False) => {}
            }
        }
    }
    match (allowed, unsure_deny.is_empty(), unsure_allow.is_empty()) {
        (true, true, _) => Decision::Allowed,
        (true, false, _) => Decision::Unverifiable {
            statements: unsure_deny,
        },
        (false, _, false) => Decision::Unverifiable {
            statements: unsure_allow,
        },
        (false, _, true) => Decision::Denied { explicit: false },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(json: &str) -> PolicyDocument {
        PolicyDocument::parse(json).unwrap()
    }

    fn identity_request<'a>(action: &'a str, resource: &'a str) -> AccessRequest<'a> {
        AccessRequest {
            action,
            resource,
            principal: None,
            context: &[],
        }
    }

    const STREAM: &str = "arn:aws:logs:us-east-1:111122223333:log-group:ct:log-stream:111122223333_CloudTrail_us-east-1";

    /// Found by the policy fuzz test: read as absent, `"Resource": null` allowed every resource.
    #[test]
    fn a_null_element_is_refused_not_read_as_absent() {
        for element in [
            "Resource",
            "NotResource",
            "Action",
            "Principal",
            "Condition",
        ] {
            let json = format!(
                r#"{{"Statement":[{{"Effect":"Allow","Action":"*","Principal":"*","{element}":null}}]}}"#
            );
            assert!(PolicyDocument::parse(&json).is_err(), "{json}");
        }
        assert!(PolicyDocument::parse(
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Principal":"*"}]}"#
        )
        .is_ok());
    }

    #[test]
    fn glob_handles_star_question_and_case() {
        assert!(glob_match("logs:Put*", "logs:PutLogEvents", false));
        assert!(glob_match("LOGS:put*", "logs:PutLogEvents", true));
        assert!(!glob_match("LOGS:put*", "logs:PutLogEvents", false));
        assert!(glob_match("a?c", "abc", false));
        assert!(!glob_match("a?c", "ac", false));
        assert!(glob_match("*", "", false));
        assert!(glob_match("arn:*:log-group:ct:*", STREAM, false));
        assert!(!glob_match(
            "arn:aws:logs:us-east-1:111122223333:log-group:ct",
            STREAM,
            false
        ));
    }

    #[test]
    fn glob_is_fast_on_hostile_patterns() {
        let pattern = "a*".repeat(500) + "b";
        let text = "a".repeat(5_000);
        assert!(!glob_match(&pattern, &text, false));
    }

    #[test]
    fn url_encoded_trust_policy_parses() {
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22cloudtrail.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%7D";
        let d = doc(encoded);
        assert_eq!(d.statements.len(), 1);
        assert_eq!(d.statements[0].effect, Effect::Allow);
    }

    #[test]
    fn explicit_deny_beats_allow() {
        let d = doc(
            r#"{"Statement":[{"Effect":"Allow","Action":"logs:*","Resource":"*"},
                              {"Effect":"Deny","Action":"logs:PutLogEvents","Resource":"*"}]}"#,
        );
        assert_eq!(
            evaluate(&[&d], &identity_request("logs:PutLogEvents", STREAM)),
            Decision::Denied { explicit: true }
        );
        assert_eq!(
            evaluate(&[&d], &identity_request("logs:CreateLogStream", STREAM)),
            Decision::Allowed
        );
    }

    #[test]
    fn not_action_and_not_resource_invert_the_match() {
        let d = doc(
            r#"{"Statement":{"Effect":"Allow","NotAction":"iam:*","NotResource":"arn:aws:logs:*:*:log-group:other:*"}}"#,
        );
        assert_eq!(
            evaluate(&[&d], &identity_request("logs:PutLogEvents", STREAM)),
            Decision::Allowed
        );
        assert_eq!(
            evaluate(&[&d], &identity_request("iam:PassRole", STREAM)),
            Decision::Denied { explicit: false }
        );
        let other = "arn:aws:logs:us-east-1:1:log-group:other:log-stream:x";
        assert_eq!(
            evaluate(&[&d], &identity_request("logs:PutLogEvents", other)),
            Decision::Denied { explicit: false }
        );
    }

    #[test]
    fn unknown_condition_on_the_only_allow_cannot_be_verified() {
        let d = doc(
            r#"{"Statement":{"Sid":"OnlyFromVpc","Effect":"Allow","Action":"logs:*","Resource":"*",
                 "Condition":{"StringEquals":{"aws:SourceVpc":"vpc-1"}}}}"#,
        );
        assert_eq!(
            evaluate(&[&d], &identity_request("logs:PutLogEvents", STREAM)),
            Decision::Unverifiable {
                statements: vec!["OnlyFromVpc".into()]
            }
        );
    }

    #[test]
    fn conditional_deny_makes_an_allow_unverifiable() {
        let d = doc(
            r#"{"Statement":[{"Effect":"Allow","Action":"logs:*","Resource":"*"},
                {"Effect":"Deny","Action":"logs:*","Resource":"*","Condition":{"Bool":{"aws:ViaAWSService":"false"}}}]}"#,
        );
        assert!(matches!(
            evaluate(&[&d], &identity_request("logs:PutLogEvents", STREAM)),
            Decision::Unverifiable { .. }
        ));
    }

    #[test]
    fn trust_policy_with_source_conditions_is_evaluated_for_real() {
        let d = doc(
            r#"{"Statement":{"Effect":"Allow","Principal":{"Service":["cloudtrail.amazonaws.com"]},
                "Action":"sts:AssumeRole","Condition":{
                  "StringEquals":{"aws:SourceAccount":"111122223333"},
                  "ArnLike":{"aws:SourceArn":"arn:aws:cloudtrail:*:111122223333:trail/*"}}}}"#,
        );
        let trail = "arn:aws:cloudtrail:us-east-1:111122223333:trail/main";
        let ok = AccessRequest {
            action: "sts:AssumeRole",
            resource: "arn:aws:iam::111122223333:role/r",
            principal: Some(RequestPrincipal::Service("cloudtrail.amazonaws.com")),
            context: &[
                ("aws:SourceArn", trail),
                ("aws:SourceAccount", "111122223333"),
            ],
        };
        assert_eq!(evaluate(&[&d], &ok), Decision::Allowed);
        let other_account = AccessRequest {
            context: &[
                ("aws:SourceArn", trail),
                ("aws:SourceAccount", "999999999999"),
            ],
            ..ok.clone()
        };
        assert_eq!(
            evaluate(&[&d], &other_account),
            Decision::Denied { explicit: false }
        );
        let wrong_service = AccessRequest {
            principal: Some(RequestPrincipal::Service("ec2.amazonaws.com")),
            ..ok
        };
        assert_eq!(
            evaluate(&[&d], &wrong_service),
            Decision::Denied { explicit: false }
        );
    }

    #[test]
    fn identity_statement_never_matches_a_service_principal_request() {
        // An identity policy's Allow does not let a service assume the role.
        let d = doc(r#"{"Statement":{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}}"#);
        let req = AccessRequest {
            action: "sts:AssumeRole",
            resource: "r",
            principal: Some(RequestPrincipal::Service("cloudtrail.amazonaws.com")),
            context: &[],
        };
        assert_eq!(evaluate(&[&d], &req), Decision::Denied { explicit: false });
    }

    #[test]
    fn oversized_and_malformed_documents_are_clear_errors() {
        let big = format!("{{\"Statement\":\"{}\"}}", "x".repeat(MAX_POLICY_BYTES));
        assert!(matches!(
            PolicyDocument::parse(&big),
            Err(PolicyError::TooLarge(_))
        ));
        assert!(matches!(
            PolicyDocument::parse(r#"{"Statement":{"Effect":"Maybe"}}"#),
            Err(PolicyError::Json(_))
        ));
        assert!(matches!(
            PolicyDocument::parse("%FF%FE"),
            Err(PolicyError::Encoding(_))
        ));
    }
}

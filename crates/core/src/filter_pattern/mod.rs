//! A matcher for CloudWatch Logs metric filter patterns, used to decide whether a metric filter
//! would really count a `StopLogging` or `DeleteTrail` event.
//!
//! Rather than grepping the pattern text for "StopLogging" (which `$.eventName != StopLogging`
//! would fool), trailwatch runs each pattern against a real-shaped CloudTrail record. Supported:
//! JSON patterns (`{ ($.eventName = StopLogging) || ($.eventName = DeleteTrail) }`) with `=`,
//! `!=`, numeric comparisons, `*` wildcards, `%regex%` values, `IS NULL`, `NOT EXISTS`,
//! `IS TRUE/FALSE`, `&&`, `||` and parentheses; term patterns (`StopLogging`, `"Stop Logging"`,
//! `?a ?b`, `-x`, `%regex%`); and the empty pattern. Space-delimited `[...]` patterns cannot
//! apply to JSON records and never match. What is not understood is an error, never a silent
//! "does not match": the rules quote such a pattern rather than guess.

mod regex;

use crate::policy::glob_match;
use regex::Regex;
use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("filter pattern is not understood: {0}")]
pub struct PatternError(String);

/// Patterns are capped at 1,024 characters by CloudWatch Logs; more is not a real pattern.
const MAX_PATTERN_CHARS: usize = 1024;
/// Parentheses deeper than this are refused, which bounds recursion on hostile input.
const MAX_DEPTH: usize = 64;

/// Whether `pattern` matches the JSON log `event`.
pub fn matches(pattern: &str, event: &Value) -> Result<bool, PatternError> {
    if pattern.chars().count() > MAX_PATTERN_CHARS {
        return Err(PatternError(format!(
            "longer than {MAX_PATTERN_CHARS} characters"
        )));
    }
    let trimmed = pattern.trim();
    if trimmed.is_empty() {
        return Ok(true);
    }
    if let Some(inner) = trimmed
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
    {
        let tokens = tokenize(inner)?;
        let mut parser = Parser {
            tokens: &tokens,
            pos: 0,
            depth: 0,
        };
        let expr = parser.or_expr()?;
        if parser.pos != tokens.len() {
            return Err(PatternError(format!(
                "unexpected {:?} after the expression",
                tokens[parser.pos]
            )));
        }
        return Ok(expr.eval(event));
    }
    if trimmed.starts_with('[') {
        return Ok(false);
    }
    term_match(trimmed, &event.to_string())
}

/// One term of a term pattern: a plain string to find, or a `%regex%`.
enum Term {
    Text(String),
    Regex(Regex),
}

impl Term {
    fn parse(text: &str) -> Result<Self, PatternError> {
        match text
            .strip_prefix('%')
            .and_then(|rest| rest.strip_suffix('%'))
        {
            Some(expression) if text.len() >= 2 => Ok(Term::Regex(Regex::parse(expression)?)),
            _ => Ok(Term::Text(text.to_string())),
        }
    }

    fn found_in(&self, text: &str) -> bool {
        match self {
            Term::Text(term) => text.contains(term.as_str()),
            Term::Regex(regex) => regex.is_match(text),
        }
    }
}

fn term_match(pattern: &str, text: &str) -> Result<bool, PatternError> {
    let mut any_of = Vec::new();
    for term in split_terms(pattern) {
        if let Some(optional) = term.strip_prefix('?') {
            any_of.push(Term::parse(optional)?);
        } else if let Some(excluded) = term.strip_prefix('-') {
            if Term::parse(excluded)?.found_in(text) {
                return Ok(false);
            }
        } else if !Term::parse(&term)?.found_in(text) {
            return Ok(false);
        }
    }
    Ok(any_of.is_empty() || any_of.iter().any(|t| t.found_in(text)))
}

fn split_terms(pattern: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in pattern.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    terms.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        terms.push(current);
    }
    terms
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Selector(String),
    Op(String),
    Word(String),
    Quoted(String),
    /// `%regex%`, without the percent signs.
    Regex(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, PatternError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            '&' | '|' => {
                if chars.get(i + 1) != Some(&c) {
                    return Err(PatternError(format!("lone '{c}'")));
                }
                tokens.push(if c == '&' { Token::And } else { Token::Or });
                i += 2;
            }
            '=' | '!' | '<' | '>' => {
                let mut op = c.to_string();
                if chars.get(i + 1) == Some(&'=') {
                    op.push('=');
                }
                if op == "!" {
                    return Err(PatternError("lone '!'".into()));
                }
                i += op.len();
                tokens.push(Token::Op(op));
            }
            '%' => {
                let close = chars[i + 1..]
                    .iter()
                    .position(|c| *c == '%')
                    .ok_or_else(|| PatternError("unterminated %regex%".into()))?;
                tokens.push(Token::Regex(chars[i + 1..i + 1 + close].iter().collect()));
                i += close + 2;
            }
            '"' => {
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(PatternError("unterminated quote".into())),
                        Some('\\') => {
                            if let Some(next) = chars.get(i + 1) {
                                value.push(*next);
                            }
                            i += 2;
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            value.push(*ch);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token::Quoted(value));
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(
                        chars[i],
                        '(' | ')' | '=' | '!' | '<' | '>' | '&' | '|' | '"' | '%'
                    )
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if word.starts_with("$.") || word == "$" {
                    tokens.push(Token::Selector(word));
                } else {
                    tokens.push(Token::Word(word));
                }
            }
        }
    }
    Ok(tokens)
}

#[derive(Debug)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare {
        path: String,
        op: String,
        value: String,
        quoted: bool,
    },
    /// `$.path = %regex%` (or `!=`).
    Matches {
        path: String,
        negated: bool,
        regex: Regex,
    },
    IsNull(String),
    NotExists(String),
    IsBool(String, bool),
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn next(&mut self) -> Option<&Token> {
        let token = self.tokens.get(self.pos);
        self.pos += 1;
        token
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn or_expr(&mut self) -> Result<Expr, PatternError> {
        let mut left = self.and_expr()?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and_expr()?));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, PatternError> {
        let mut left = self.primary()?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.primary()?));
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr, PatternError> {
        match self.next().cloned() {
            Some(Token::Open) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(PatternError(format!(
                        "nested deeper than {MAX_DEPTH} parentheses"
                    )));
                }
                let inner = self.or_expr()?;
                if self.next() != Some(&Token::Close) {
                    return Err(PatternError("missing ')'".into()));
                }
                self.depth -= 1;
                Ok(inner)
            }
            Some(Token::Selector(path)) => self.comparison(path),
            other => Err(PatternError(format!("expected '(' or '$.', got {other:?}"))),
        }
    }

    fn comparison(&mut self, path: String) -> Result<Expr, PatternError> {
        match self.next().cloned() {
            Some(Token::Op(op)) => match self.next().cloned() {
                Some(Token::Word(value)) => Ok(Expr::Compare {
                    path,
                    op,
                    value,
                    quoted: false,
                }),
                Some(Token::Quoted(value)) => Ok(Expr::Compare {
                    path,
                    op,
                    value,
                    quoted: true,
                }),
                Some(Token::Regex(expression)) if op == "=" || op == "!=" => Ok(Expr::Matches {
                    path,
                    negated: op == "!=",
                    regex: Regex::parse(&expression)?,
                }),
                other => Err(PatternError(format!("expected a value, got {other:?}"))),
            },
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("IS") => match self.next().cloned() {
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("NULL") => Ok(Expr::IsNull(path)),
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("TRUE") => {
                    Ok(Expr::IsBool(path, true))
                }
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("FALSE") => {
                    Ok(Expr::IsBool(path, false))
                }
                other => Err(PatternError(format!(
                    "expected NULL, TRUE or FALSE, got {other:?}"
                ))),
            },
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("NOT") => match self.next().cloned() {
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("EXISTS") => {
                    Ok(Expr::NotExists(path))
                }
                other => Err(PatternError(format!("expected EXISTS, got {other:?}"))),
            },
            other => Err(PatternError(format!(
                "expected an operator after {path}, got {other:?}"
            ))),
        }
    }
}

fn lookup<'v>(event: &'v Value, path: &str) -> Option<&'v Value> {
    let mut current = event;
    let rest = path.strip_prefix('$')?;
    for segment in rest.split('.').filter(|s| !s.is_empty()) {
        let (name, index) = match segment.split_once('[') {
            Some((name, idx)) => (name, idx.strip_suffix(']')?.parse::<usize>().ok()),
            None => (segment, None),
        };
        if !name.is_empty() {
            current = current.get(name)?;
        }
        if let Some(i) = index {
            current = current.get(i)?;
        }
    }
    Some(current)
}

impl Expr {
    fn eval(&self, event: &Value) -> bool {
        match self {
            Expr::And(a, b) => a.eval(event) && b.eval(event),
            Expr::Or(a, b) => a.eval(event) || b.eval(event),
            Expr::Matches {
                path,
                negated,
                regex,
            } => {
                let text = match lookup(event, path) {
                    None | Some(Value::Null) => return false,
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                };
                regex.is_match(&text) != *negated
            }
            Expr::IsNull(path) => matches!(lookup(event, path), Some(Value::Null)),
            Expr::NotExists(path) => lookup(event, path).is_none(),
            Expr::IsBool(path, b) => lookup(event, path) == Some(&Value::Bool(*b)),
            Expr::Compare {
                path,
                op,
                value,
                quoted,
            } => {
                let Some(actual) = lookup(event, path) else {
                    return false;
                };
                compare(actual, op, value, *quoted)
            }
        }
    }
}

fn compare(actual: &Value, op: &str, expected: &str, quoted: bool) -> bool {
    if let (false, Ok(expected_n), Some(actual_n)) =
        (quoted, expected.parse::<f64>(), actual.as_f64())
    {
        return match op {
            "=" => actual_n == expected_n,
            "!=" => actual_n != expected_n,
            "<" => actual_n < expected_n,
            "<=" => actual_n <= expected_n,
            ">" => actual_n > expected_n,
            ">=" => actual_n >= expected_n,
            _ => false,
        };
    }
    let actual_text = match actual {
        Value::String(s) => s.clone(),
        Value::Null => return false,
        other => other.to_string(),
    };
    let equal = glob_match(expected, &actual_text, false);
    match op {
        "=" => equal,
        "!=" => !equal,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stop_logging() -> Value {
        json!({"eventVersion":"1.09","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging",
               "userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/mallory"},
               "readOnly":false,"errorCode":null,"requestParameters":{"name":"main"},"recipientAccountId":"111122223333"})
    }

    #[test]
    fn cis_pattern_matches_stop_logging() {
        let cis = "{ ($.eventName = CreateTrail) || ($.eventName = UpdateTrail) || ($.eventName = DeleteTrail) || ($.eventName = StartLogging) || ($.eventName = StopLogging) }";
        assert_eq!(matches(cis, &stop_logging()), Ok(true));
    }

    #[test]
    fn negated_or_unrelated_patterns_do_not_match() {
        assert_eq!(
            matches("{ $.eventName != StopLogging }", &stop_logging()),
            Ok(false)
        );
        assert_eq!(
            matches("{ $.eventName = ConsoleLogin }", &stop_logging()),
            Ok(false)
        );
        assert_eq!(
            matches(
                "{ ($.eventName = StopLogging) && ($.userIdentity.type = Root) }",
                &stop_logging()
            ),
            Ok(false)
        );
    }

    #[test]
    fn wildcards_quotes_and_existence_tests() {
        let e = stop_logging();
        assert_eq!(matches(r#"{ $.eventName = "Stop*" }"#, &e), Ok(true));
        assert_eq!(
            matches(
                "{ $.eventSource = cloudtrail.* && $.errorCode IS NULL }",
                &e
            ),
            Ok(true)
        );
        assert_eq!(matches("{ $.errorMessage NOT EXISTS }", &e), Ok(true));
        assert_eq!(matches("{ $.readOnly IS FALSE }", &e), Ok(true));
    }

    #[test]
    fn term_patterns_search_the_raw_record() {
        let e = stop_logging();
        assert_eq!(matches("StopLogging", &e), Ok(true));
        assert_eq!(matches("?DeleteTrail ?StopLogging", &e), Ok(true));
        assert_eq!(matches("StopLogging -mallory", &e), Ok(false));
        assert_eq!(matches("", &e), Ok(true));
        assert_eq!(matches("[ip, user, ...]", &e), Ok(false));
    }

    #[test]
    fn regex_terms_and_values_are_understood() {
        let e = stop_logging();
        assert_eq!(matches("{ $.eventName = %Stop.*% }", &e), Ok(true));
        assert_eq!(matches("{ $.eventName = %^Delete% }", &e), Ok(false));
        assert_eq!(matches("{ $.eventName != %^Delete% }", &e), Ok(true));
        assert_eq!(
            matches("{ $.eventName = %StopLogging|DeleteTrail% }", &e),
            Ok(true)
        );
        assert_eq!(matches("%Stop[A-Z]ogging%", &e), Ok(true));
        assert_eq!(matches("?%DeleteTrail% ?%StopLog%", &e), Ok(true));
        assert_eq!(matches("%mallory% -%Stop%", &e), Ok(false));
        // Not CloudWatch's regex (no groups): an error, not a silent "does not match".
        assert!(matches("{ $.eventName = %(Stop|Delete)Logging% }", &e).is_err());
        assert!(matches("%(Stop)%", &e).is_err());
        assert!(matches("{ $.eventName = %Stop }", &e).is_err());
    }

    #[test]
    fn broken_and_hostile_patterns_are_errors() {
        assert!(matches("{ $.eventName = }", &stop_logging()).is_err());
        assert!(matches("{ ($.eventName = StopLogging }", &stop_logging()).is_err());
        let deep = format!("{{ {}$.a = 1{} }}", "(".repeat(200), ")".repeat(200));
        assert!(matches(&deep, &stop_logging()).is_err());
        assert!(matches(&"x".repeat(5000), &stop_logging()).is_err());
    }
}

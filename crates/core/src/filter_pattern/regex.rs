//! The regular expressions CloudWatch Logs accepts in filter patterns, between `%` signs:
//! literal characters, `.`, classes `[a-z]` and `[^…]`, the escapes `\d \w \s` (and their
//! capitals) and any escaped character, the quantifiers `? * + {n} {n,} {n,m}`, alternation
//! `|`, and the anchors `^` and `$`. Parentheses are not part of that syntax (CloudWatch Logs
//! refuses them), so there are no groups.
//!
//! Matching runs in time linear in the text for each element of the expression: the positions
//! reachable after each element are a set, and a repeated element extends each position by a
//! precomputed run length, so a hostile expression cannot backtrack exponentially.

use super::PatternError;

/// Longest expression read; CloudWatch Logs caps whole patterns at 1,024 characters.
const MAX_REGEX_CHARS: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
enum Atom {
    Any,
    Char(char),
    /// A class: its ranges, and whether it is negated.
    Class(Vec<(char, char)>, bool),
}

impl Atom {
    fn matches(&self, c: char) -> bool {
        match self {
            Atom::Any => c != '\n',
            Atom::Char(expected) => c == *expected,
            Atom::Class(ranges, negated) => {
                ranges.iter().any(|(low, high)| (*low..=*high).contains(&c)) != *negated
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Element {
    atom: Atom,
    min: usize,
    /// `None` for no upper bound.
    max: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
struct Branch {
    anchored_start: bool,
    anchored_end: bool,
    elements: Vec<Element>,
}

/// A compiled expression: its alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct Regex {
    branches: Vec<Branch>,
}

fn error(expression: &str, why: &str) -> PatternError {
    PatternError(format!("regular expression %{expression}%: {why}"))
}

/// `\d`, `\w`, `\s` and their negations as classes; any other escaped character is itself.
fn escape(c: char) -> Atom {
    let digits = vec![('0', '9')];
    let word = vec![('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')];
    let space = vec![
        (' ', ' '),
        ('\t', '\t'),
        ('\n', '\n'),
        ('\r', '\r'),
        ('\x0b', '\x0c'),
    ];
    match c {
        'd' => Atom::Class(digits, false),
        'D' => Atom::Class(digits, true),
        'w' => Atom::Class(word, false),
        'W' => Atom::Class(word, true),
        's' => Atom::Class(space, false),
        'S' => Atom::Class(space, true),
        'n' => Atom::Char('\n'),
        't' => Atom::Char('\t'),
        other => Atom::Char(other),
    }
}

impl Regex {
    pub fn parse(expression: &str) -> Result<Self, PatternError> {
        if expression.chars().count() > MAX_REGEX_CHARS {
            return Err(error(expression, "too long"));
        }
        let mut branches = Vec::new();
        for alternative in split_alternatives(expression) {
            branches.push(parse_branch(expression, &alternative)?);
        }
        Ok(Regex { branches })
    }

    /// Whether the expression matches somewhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        self.branches.iter().any(|b| branch_matches(b, &chars))
    }
}

/// The alternatives of an expression, split at each `|` outside a class or an escape.
fn split_alternatives(expression: &str) -> Vec<Vec<char>> {
    let mut alternatives = vec![Vec::new()];
    let mut chars = expression.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        let current = alternatives.last_mut().expect("one alternative at least");
        match c {
            '\\' => {
                current.push(c);
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            '[' => {
                in_class = true;
                current.push(c);
            }
            ']' => {
                in_class = false;
                current.push(c);
            }
            '|' if !in_class => alternatives.push(Vec::new()),
            other => current.push(other),
        }
    }
    alternatives
}

fn parse_branch(expression: &str, chars: &[char]) -> Result<Branch, PatternError> {
    let mut branch = Branch {
        anchored_start: false,
        anchored_end: false,
        elements: Vec::new(),
    };
    let mut i = 0;
    if chars.first() == Some(&'^') {
        branch.anchored_start = true;
        i = 1;
    }
    while i < chars.len() {
        let atom = match chars[i] {
            '$' if i + 1 == chars.len() => {
                branch.anchored_end = true;
                i += 1;
                continue;
            }
            '(' | ')' => return Err(error(expression, "parentheses are not supported")),
            '.' => Atom::Any,
            '\\' => {
                i += 1;
                escape(
                    *chars
                        .get(i)
                        .ok_or_else(|| error(expression, "ends with \\"))?,
                )
            }
            '[' => {
                let (class, next) = parse_class(expression, chars, i)?;
                i = next - 1;
                class
            }
            '*' | '+' | '?' | '{' => {
                return Err(error(expression, "a quantifier follows nothing"));
            }
            c => Atom::Char(c),
        };
        i += 1;
        let (min, max, next) = parse_quantifier(expression, chars, i)?;
        i = next;
        branch.elements.push(Element { atom, min, max });
    }
    Ok(branch)
}

/// A class starting at `chars[start] == '['`; returns it and the index after its `]`.
fn parse_class(
    expression: &str,
    chars: &[char],
    start: usize,
) -> Result<(Atom, usize), PatternError> {
    let mut i = start + 1;
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = *chars
            .get(i)
            .ok_or_else(|| error(expression, "unterminated [ class"))?;
        if c == ']' && !first {
            return Ok((Atom::Class(ranges, negated), i + 1));
        }
        first = false;
        let low = if c == '\\' {
            i += 1;
            match escape(
                *chars
                    .get(i)
                    .ok_or_else(|| error(expression, "ends with \\"))?,
            ) {
                Atom::Char(c) => c,
                Atom::Class(inner, false) => {
                    ranges.extend(inner);
                    i += 1;
                    continue;
                }
                _ => return Err(error(expression, "a negated escape inside a class")),
            }
        } else {
            c
        };
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|c| *c != ']') {
            let high = chars[i + 2];
            if high < low {
                return Err(error(expression, "a class range runs backwards"));
            }
            ranges.push((low, high));
            i += 3;
        } else {
            ranges.push((low, low));
            i += 1;
        }
    }
}

/// The quantifier at `chars[i]`, if any: its bounds and the index after it.
fn parse_quantifier(
    expression: &str,
    chars: &[char],
    i: usize,
) -> Result<(usize, Option<usize>, usize), PatternError> {
    Ok(match chars.get(i) {
        Some('?') => (0, Some(1), i + 1),
        Some('*') => (0, None, i + 1),
        Some('+') => (1, None, i + 1),
        Some('{') => {
            let close = chars[i..]
                .iter()
                .position(|c| *c == '}')
                .map(|p| i + p)
                .ok_or_else(|| error(expression, "unterminated {"))?;
            let inside: String = chars[i + 1..close].iter().collect();
            let number = |text: &str| {
                text.trim()
                    .parse::<usize>()
                    .map_err(|_| error(expression, "a bound that is not a number"))
            };
            let (min, max) = match inside.split_once(',') {
                None => {
                    let n = number(&inside)?;
                    (n, Some(n))
                }
                Some((low, "")) => (number(low)?, None),
                Some((low, high)) => (number(low)?, Some(number(high)?)),
            };
            if max.is_some_and(|max| max < min) || min > MAX_REGEX_CHARS {
                return Err(error(expression, "bounds out of order or too large"));
            }
            (min, max, close + 1)
        }
        _ => (1, Some(1), i),
    })
}

/// Whether `branch` matches somewhere in `text`: the set of positions reachable after each
/// element, starting anywhere (or at 0 when anchored).
fn branch_matches(branch: &Branch, text: &[char]) -> bool {
    let n = text.len();
    let mut reachable = vec![!branch.anchored_start; n + 1];
    reachable[0] = true;
    for element in &branch.elements {
        // run[p]: how many characters from p on the atom matches in a row.
        let mut run = vec![0usize; n + 1];
        for p in (0..n).rev() {
            if element.atom.matches(text[p]) {
                run[p] = run[p + 1] + 1;
            }
        }
        // Each reachable p reaches p+min ..= p+min(max, run[p]): intervals, marked by a
        // difference array.
        let mut marks = vec![0i64; n + 2];
        for p in (0..=n).filter(|p| reachable[*p]) {
            let longest = element.max.map_or(run[p], |max| max.min(run[p]));
            if longest >= element.min {
                marks[p + element.min] += 1;
                marks[p + longest + 1] -= 1;
            }
        }
        let mut open = 0;
        for (p, slot) in reachable.iter_mut().enumerate() {
            open += marks[p];
            *slot = open > 0;
        }
    }
    match branch.anchored_end {
        true => reachable[n],
        false => reachable.iter().any(|r| *r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(expression: &str, text: &str) -> bool {
        Regex::parse(expression).unwrap().is_match(text)
    }

    #[test]
    fn the_documented_examples_match() {
        assert!(found("AUTHORIZED", "user UNAUTHORIZED access"));
        assert!(found(
            r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}",
            "from 203.0.113.7"
        ));
        assert!(found("[Ee]rror|[Ff]ail", "a Failure"));
        assert!(!found("[Ee]rror|[Ff]ail", "all good"));
    }

    #[test]
    fn quantifiers_classes_and_anchors() {
        assert!(found("Stop.*Logging", "StopLogging"));
        assert!(found("^StopLogging$", "StopLogging"));
        assert!(!found("^Logging", "StopLogging"));
        assert!(!found("Stop$", "StopLogging"));
        assert!(found("[^a-z]+", "abc1"));
        assert!(!found("[^a-z]+", "abc"));
        assert!(found("a{2,3}b", "aaab"));
        assert!(!found("^a{2,3}b", "ab"));
        assert!(found(r"\w+@\w+", "mail me@example"));
    }

    #[test]
    fn parentheses_and_broken_expressions_are_refused() {
        for bad in ["(Stop|Delete)Logging", "*x", "[abc", "a{3,1}", "x\\"] {
            assert!(Regex::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_hostile_expression_stays_linear() {
        let expression = "a*".repeat(200) + "b";
        let text = "a".repeat(5_000);
        assert!(!found(&expression, &text));
    }
}

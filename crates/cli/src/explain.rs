//! `trailwatch explain CODE`: what a reason code means, why it matters and how to fix it, in the
//! terminal. The text is the README's section for the code, built into the binary, so the two
//! can never say different things; a test holds every code to having its section.

use trailwatch_core::reason::ReasonCode;

/// The README as it was when this binary was built.
const README: &str = include_str!("../../../README.md");

/// The README's section for `code`: the paragraphs under its `### \`CODE\`` heading, up to the
/// next heading.
pub fn section(code: ReasonCode) -> Option<&'static str> {
    let heading = format!("### `{}`\n", code.as_str());
    let start = README.find(&heading)? + heading.len();
    let rest = &README[start..];
    let end = rest.find("\n#").map_or(rest.len(), |at| at + 1);
    Some(rest[..end].trim())
}

/// What `trailwatch explain` prints for `text`, or, for a code trailwatch does not know, the
/// error that lists the codes it does.
pub fn explain(text: &str) -> Result<String, String> {
    let code: ReasonCode = text.trim().to_ascii_uppercase().parse().map_err(|_| {
        let known: Vec<&str> = ReasonCode::ALL.iter().map(|c| c.as_str()).collect();
        format!(
            "{text:?} is not a trailwatch reason code. The codes are:\n  {}",
            known.join("\n  ")
        )
    })?;
    let body = section(code).ok_or_else(|| {
        format!(
            "{} has no section in the README this binary was built with",
            code.as_str()
        )
    })?;
    Ok(format!(
        "{} ({}, {} severity)\n\n{}\n",
        code.as_str(),
        code.level().as_str(),
        code.severity().as_str(),
        plain(body)
    ))
}

/// Markdown made easier on a terminal: bold markers go, code spans stay quoted.
fn plain(markdown: &str) -> String {
    markdown.replace("**", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_code_has_its_readme_section() {
        let missing: Vec<&str> = ReasonCode::ALL
            .iter()
            .filter(|code| section(**code).is_none_or(str::is_empty))
            .map(|code| code.as_str())
            .collect();
        assert!(missing.is_empty(), "no README section for {missing:?}");
    }

    #[test]
    fn a_section_ends_where_the_next_heading_starts() {
        let stopped = section(ReasonCode::LoggingStopped).unwrap();
        assert!(stopped.starts_with("FAIL, HIGH."), "{stopped}");
        assert!(stopped.contains("start-logging"), "{stopped}");
        assert!(!stopped.contains("###"), "{stopped}");
        assert!(!stopped.contains("LOGGING_GAP"), "{stopped}");
    }

    #[test]
    fn explain_names_the_level_and_severity_and_accepts_lower_case() {
        let text = explain("logging_gap").unwrap();
        assert!(
            text.starts_with("LOGGING_GAP (FAIL, HIGH severity)\n\n"),
            "{text}"
        );
        assert!(text.contains("lookup-events"), "{text}");
    }

    #[test]
    fn an_unknown_code_lists_every_known_one() {
        let error = explain("CWL_NOPE").unwrap_err();
        assert!(error.contains("\"CWL_NOPE\" is not"), "{error}");
        for code in ReasonCode::ALL {
            assert!(error.contains(code.as_str()), "{error} lacks {code:?}");
        }
    }
}

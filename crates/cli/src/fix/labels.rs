//! Names for the resources of emitted code, made from the AWS names they declare so a reader
//! can tell which is which: Terraform labels (`aws_cloudtrail.management_events`) and
//! CloudFormation logical IDs (`TrailManagementEvents`). Two AWS names that read the same
//! once cleaned (`/a-b` and `/a_b`) get a numbered second name, never a clash.

use std::collections::BTreeSet;

#[derive(Debug, Default)]
pub struct Labels {
    taken: BTreeSet<(String, String)>,
}

impl Labels {
    /// `base`, or `base` with `separator` and the first free number, unique within `scope`.
    fn unique(&mut self, scope: &str, base: String, separator: &str) -> String {
        let mut candidate = base.clone();
        let mut number = 2;
        while !self.taken.insert((scope.to_string(), candidate.clone())) {
            candidate = format!("{base}{separator}{number}");
            number += 1;
        }
        candidate
    }

    /// A Terraform label, unique among `kind`'s: lowercase letters, digits and `_`,
    /// starting with a letter.
    pub fn next(&mut self, kind: &str, name: &str) -> String {
        let words: Vec<String> = name
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        let mut label = words.join("_");
        if !label.starts_with(|c: char| c.is_ascii_alphabetic()) {
            label = format!("r_{label}");
        }
        self.unique(kind, label.trim_end_matches('_').to_string(), "_")
    }

    /// A CloudFormation logical ID, unique in its template: `prefix` and the name's words,
    /// capitalised, letters and digits only (CloudFormation allows nothing else).
    pub fn logical_id(&mut self, prefix: &str, name: &str) -> String {
        let mut id = prefix.to_string();
        for word in name
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                id.push(first.to_ascii_uppercase());
                id.extend(chars);
            }
        }
        // CloudFormation caps logical IDs at 255 characters.
        id.truncate(240);
        // One template is one namespace, whatever the resource type.
        self.unique("template", id, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_and_never_clash() {
        let mut labels = Labels::default();
        assert_eq!(
            labels.next("aws_cloudwatch_log_group", "/aws/cloudtrail/Main-Trail"),
            "aws_cloudtrail_main_trail"
        );
        assert_eq!(labels.next("aws_cloudwatch_log_group", "/a-b"), "a_b");
        assert_eq!(labels.next("aws_cloudwatch_log_group", "/a_b"), "a_b_2");
        assert_eq!(labels.next("aws_cloudtrail", "a_b"), "a_b");
        assert_eq!(labels.next("aws_cloudtrail", "9lives"), "r_9lives");
        assert_eq!(
            labels.logical_id("LogGroup", "/aws/cloudtrail/main"),
            "LogGroupAwsCloudtrailMain"
        );
        assert_eq!(labels.logical_id("Trail", "a-b"), "TrailAB");
        assert_eq!(labels.logical_id("Trail", "a_b"), "TrailAB2");
    }
}

//! Just enough ARN parsing to find the account, region and name of trails, log groups and roles.

use std::fmt;

/// The six colon-separated parts of an ARN. The resource keeps any further colons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    pub fn parse(text: &'a str) -> Option<Self> {
        let mut parts = text.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let arn = Arn {
            partition: parts.next()?,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        };
        (!arn.partition.is_empty() && !arn.service.is_empty()).then_some(arn)
    }
}

/// A CloudWatch Logs log group, as named by a trail's `CloudWatchLogsLogGroupArn`.
///
/// CloudTrail stores that ARN with a trailing `:*` (`arn:aws:logs:r:a:log-group:name:*`),
/// and people paste it with or without. Both name the same group, so both map to one key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogGroupRef {
    pub partition: String,
    pub region: String,
    pub account: String,
    pub name: String,
}

impl LogGroupRef {
    pub fn from_arn(text: &str) -> Option<Self> {
        let arn = Arn::parse(text)?;
        if arn.service != "logs" {
            return None;
        }
        let rest = arn.resource.strip_prefix("log-group:")?;
        let name = rest.strip_suffix(":*").unwrap_or(rest);
        if name.is_empty() || arn.region.is_empty() || arn.account.is_empty() {
            return None;
        }
        Some(Self {
            partition: arn.partition.to_string(),
            region: arn.region.to_string(),
            account: arn.account.to_string(),
            name: name.to_string(),
        })
    }

    /// The ARN of the group itself, without the `:*` suffix: what people wrongly put in policies.
    pub fn bare_arn(&self) -> String {
        format!(
            "arn:{}:logs:{}:{}:log-group:{}",
            self.partition, self.region, self.account, self.name
        )
    }

    /// The ARN that covers every stream of the group: what a delivery policy should name.
    pub fn streams_arn(&self) -> String {
        format!("{}:*", self.bare_arn())
    }

    /// The log stream CloudTrail writes events of `region` to, for the trail owned by `account`.
    pub fn cloudtrail_stream_arn(&self, account: &str, region: &str) -> String {
        format!(
            "{}:log-stream:{}_CloudTrail_{}",
            self.bare_arn(),
            account,
            region
        )
    }
}

impl fmt::Display for LogGroupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.bare_arn())
    }
}

/// An IAM role named by ARN: `arn:aws:iam::123456789012:role/path/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleRef {
    pub arn: String,
    pub account: String,
    /// The role name without its path, which is what `iam:GetRole` takes.
    pub name: String,
}

impl RoleRef {
    pub fn from_arn(text: &str) -> Option<Self> {
        let arn = Arn::parse(text)?;
        if arn.service != "iam" {
            return None;
        }
        let path_and_name = arn.resource.strip_prefix("role/")?;
        let name = path_and_name.rsplit('/').next()?;
        if name.is_empty() || arn.account.is_empty() {
            return None;
        }
        Some(Self {
            arn: text.to_string(),
            account: arn.account.to_string(),
            name: name.to_string(),
        })
    }
}

/// Whether `name` has the shape of an AWS region name (`us-east-1`, `us-gov-west-1`): lower-case
/// words, digits and at least two hyphens. Used for configuration and for event fields alike.
pub fn looks_like_region(name: &str) -> bool {
    name.split('-').count() >= 3
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_group_arn_with_and_without_star_name_the_same_group() {
        let a =
            LogGroupRef::from_arn("arn:aws:logs:us-east-1:111122223333:log-group:ct:*").unwrap();
        let b = LogGroupRef::from_arn("arn:aws:logs:us-east-1:111122223333:log-group:ct").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.name, "ct");
        assert_eq!(
            a.cloudtrail_stream_arn("111122223333", "us-east-1"),
            "arn:aws:logs:us-east-1:111122223333:log-group:ct:log-stream:111122223333_CloudTrail_us-east-1"
        );
    }

    #[test]
    fn log_group_names_may_hold_slashes_and_colons_are_kept() {
        let g = LogGroupRef::from_arn(
            "arn:aws-us-gov:logs:us-gov-west-1:111122223333:log-group:aws-cloudtrail-logs/org:*",
        )
        .unwrap();
        assert_eq!(g.name, "aws-cloudtrail-logs/org");
        assert_eq!(g.partition, "aws-us-gov");
    }

    #[test]
    fn role_arn_with_path_gives_bare_name() {
        let r = RoleRef::from_arn("arn:aws:iam::111122223333:role/service/CloudTrail_CWL").unwrap();
        assert_eq!(r.name, "CloudTrail_CWL");
        assert_eq!(r.account, "111122223333");
    }

    #[test]
    fn garbage_is_not_an_arn() {
        assert!(Arn::parse("not-an-arn").is_none());
        assert!(LogGroupRef::from_arn("arn:aws:s3:::bucket").is_none());
        assert!(RoleRef::from_arn("arn:aws:iam::111122223333:user/bob").is_none());
        assert!(
            LogGroupRef::from_arn("arn:aws:logs:us-east-1:111122223333:log-group::*").is_none()
        );
    }
}

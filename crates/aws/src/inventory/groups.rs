//! The log groups of one region described together: one `DescribeLogGroups` page for the
//! name prefix they share, instead of one call per group.
//!
//! Trails' groups usually share a prefix (`cloudtrail/`, or the console's
//! `aws-cloudtrail-logs-<account>-`), and the API returns groups "ASCII-sorted by log group
//! name", a page at a time. So one page settles every wanted group up to the last name on it:
//! listed means it exists, not listed means it does not. Only the groups past the page's end,
//! or every group when the call fails, are then asked for on their own. The batch costs one
//! call more than the per-group reads at worst, and saves all but one at best.
//!
//! Metric filters go the same way: one page of the region's filters (sorted by filter name,
//! not group, so only a page that holds them all settles anything) instead of one call per
//! group. A region with more than a page of filters pays one call more.

use super::CloudTrailInventory;
use crate::error::unavailable;
use crate::mapping;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tracing::debug;
use trailwatch_core::snapshot::{LogGroup, MetricFilter};
use trailwatch_core::Observed;

/// One page: `DescribeLogGroups`' largest (`limit`, "the default is up to 50 items").
const GROUP_PAGE: i32 = 50;

/// The prefix every name in `names` starts with, cut back to a character boundary.
fn common_prefix(names: &BTreeSet<String>) -> String {
    let mut names = names.iter();
    let Some(first) = names.next() else {
        return String::new();
    };
    let mut end = first.len();
    for name in names {
        end = first
            .bytes()
            .zip(name.bytes())
            .take(end)
            .take_while(|(a, b)| a == b)
            .count();
    }
    while !first.is_char_boundary(end) {
        end -= 1;
    }
    first[..end].to_string()
}

/// What one sorted page of groups settles of `wanted`: each wanted name up to the page's
/// last name, as found or absent; the rest (past a truncated page's end) stays unsettled.
pub(crate) fn settle_page(
    wanted: &BTreeSet<String>,
    page: &[LogGroup],
    truncated: bool,
) -> (BTreeMap<String, Option<LogGroup>>, BTreeSet<String>) {
    let last = page.last().map(|g| g.log_group_name.as_str());
    let mut settled = BTreeMap::new();
    let mut unsettled = BTreeSet::new();
    for name in wanted {
        let found = page.iter().find(|g| &g.log_group_name == name);
        let within = !truncated || last.is_some_and(|last| name.as_str() <= last);
        match (found, within) {
            (Some(group), _) => {
                settled.insert(name.clone(), Some(group.clone()));
            }
            (None, true) => {
                settled.insert(name.clone(), None);
            }
            (None, false) => {
                unsettled.insert(name.clone());
            }
        }
    }
    (settled, unsettled)
}

impl CloudTrailInventory {
    /// The groups of `names` in `region` that one shared-prefix page settles; the others are
    /// left to [`CloudTrailInventory::describe_group`]. Names that share no prefix are not
    /// batched: the page would be the region's first 50 groups. (The caller batches only
    /// regions of several groups.)
    pub(crate) async fn describe_groups(
        &self,
        region: &str,
        names: &BTreeSet<String>,
    ) -> BTreeMap<String, Observed<Option<LogGroup>>> {
        let prefix = common_prefix(names);
        if prefix.is_empty() {
            return BTreeMap::new();
        }
        let page = self
            .clients(region)
            .logs
            .describe_log_groups()
            .log_group_name_prefix(&prefix)
            .limit(GROUP_PAGE)
            .send()
            .await;
        match page {
            Ok(page) => {
                let groups: Vec<LogGroup> = page
                    .log_groups()
                    .iter()
                    .filter_map(mapping::log_group)
                    .collect();
                let truncated = page.next_token().is_some_and(|t| !t.is_empty());
                let (settled, unsettled) = settle_page(names, &groups, truncated);
                if !unsettled.is_empty() {
                    debug!(
                        region,
                        prefix,
                        left = unsettled.len(),
                        "groups past one page"
                    );
                }
                settled.into_iter().map(|(n, g)| (n, Ok(g))).collect()
            }
            Err(e) => {
                let why = unavailable("DescribeLogGroups", &e);
                debug!(region, error = %why.describe(), "describing each group instead");
                BTreeMap::new()
            }
        }
    }
}

impl CloudTrailInventory {
    /// Every metric filter of `region` by log group name, when one page holds them all;
    /// `None` sends each group to its own `DescribeMetricFilters`.
    pub(crate) async fn region_filters(
        &self,
        region: &str,
    ) -> Option<HashMap<String, Vec<MetricFilter>>> {
        let page = match self
            .clients(region)
            .logs
            .describe_metric_filters()
            .limit(GROUP_PAGE)
            .send()
            .await
        {
            Ok(page) => page,
            Err(e) => {
                let why = unavailable("DescribeMetricFilters", &e);
                debug!(region, error = %why.describe(), "listing each group's filters instead");
                return None;
            }
        };
        if page.next_token().is_some_and(|t| !t.is_empty()) {
            debug!(region, "more than a page of filters: listing each group's");
            return None;
        }
        let mut by_group: HashMap<String, Vec<MetricFilter>> = HashMap::new();
        for filter in page.metric_filters() {
            if let Some(group) = filter.log_group_name() {
                by_group
                    .entry(group.to_string())
                    .or_default()
                    .push(mapping::metric_filter(filter));
            }
        }
        Some(by_group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str) -> LogGroup {
        LogGroup {
            log_group_name: name.into(),
            arn: None,
            retention_in_days: Some(365),
            creation_time: None,
            log_group_class: None,
            kms_key_id: None,
        }
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn the_shared_prefix_is_cut_at_a_character() {
        assert_eq!(
            common_prefix(&names(&["cloudtrail/audit", "cloudtrail/data"])),
            "cloudtrail/"
        );
        assert_eq!(
            common_prefix(&names(&[
                "aws-cloudtrail-logs-123456789012-0a1b",
                "aws-cloudtrail-logs-123456789012-9f8e"
            ])),
            "aws-cloudtrail-logs-123456789012-"
        );
        assert_eq!(common_prefix(&names(&["audit", "security"])), "");
        // "é" and "è" share their first byte, not their character.
        assert_eq!(common_prefix(&names(&["logs/é", "logs/è"])), "logs/");
        assert_eq!(common_prefix(&names(&["only/one"])), "only/one");
    }

    #[test]
    fn a_complete_page_settles_every_wanted_group() {
        let page = [group("cloudtrail/audit"), group("cloudtrail/other")];
        let (settled, unsettled) = settle_page(
            &names(&["cloudtrail/audit", "cloudtrail/deleted"]),
            &page,
            false,
        );
        assert!(unsettled.is_empty());
        assert_eq!(settled["cloudtrail/audit"], Some(group("cloudtrail/audit")));
        assert_eq!(
            settled["cloudtrail/deleted"], None,
            "absent from a complete listing"
        );
    }

    #[test]
    fn a_truncated_page_settles_only_up_to_its_last_name() {
        // Sorted: the page ends at "cloudtrail/m"; "cloudtrail/b" would have been on it.
        let page = [group("cloudtrail/a"), group("cloudtrail/m")];
        let (settled, unsettled) = settle_page(
            &names(&["cloudtrail/a", "cloudtrail/b", "cloudtrail/z"]),
            &page,
            true,
        );
        assert_eq!(settled["cloudtrail/a"], Some(group("cloudtrail/a")));
        assert_eq!(settled["cloudtrail/b"], None);
        assert_eq!(unsettled, names(&["cloudtrail/z"]));
        // An empty truncated page settles nothing.
        let (settled, unsettled) = settle_page(&names(&["cloudtrail/a"]), &[], true);
        assert!(settled.is_empty());
        assert_eq!(unsettled, names(&["cloudtrail/a"]));
    }
}

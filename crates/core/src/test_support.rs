//! Builders shared by the core's unit tests.

use crate::evaluate::{Evaluation, EvaluationKind, TrailSummary};
use crate::reason::{Reason, ReasonCode, Severity, Status};

/// A multi-region trail's evaluation in account 111122223333, us-east-1, with one reason
/// per code (message "m") and status and severity derived from them as the rules would.
pub fn trail_evaluation(name: &str, codes: &[ReasonCode]) -> Evaluation {
    let reasons: Vec<Reason> = codes.iter().map(|c| Reason::new(*c, "m")).collect();
    Evaluation {
        kind: EvaluationKind::Trail,
        resource_id: format!("arn:aws:cloudtrail:us-east-1:111122223333:trail/{name}"),
        account_id: "111122223333".into(),
        region: "us-east-1".into(),
        status: Status::from_reasons(&reasons),
        severity: Severity::worst_of(&reasons),
        reasons,
        trail: Some(TrailSummary {
            name: name.into(),
            home_region: "us-east-1".into(),
            is_multi_region: true,
            is_organization_trail: false,
            log_group_arn: None,
            role_arn: None,
            is_logging: Some(true),
            log_file_validation_enabled: true,
            s3_bucket_name: None,
        }),
        exemption: None,
    }
}

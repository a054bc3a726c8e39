//! The report's compliance sections, as pure functions of the report's
//! input: entitlements with their access reviews (contract section 14)
//! and overdue reviews, the vault's privileged credentials and the
//! privileged accounts sessions used, second factors (section 11).
//! [`super::finish`] calls them. May import: the report's model and input;
//! policy's entitlement reviews (values).

use std::collections::{BTreeMap, HashSet};

use time::OffsetDateTime;

use super::{day, ts};
use crate::policy::entitlements::{ReviewState as EntState, Reviewed, Source as EntSource};
use crate::report::input::{CredentialFact, EntitlementFact, ReportInput, Through};
use crate::report::model::*;

/// Overdue access reviews (contract section 14), one suspicious entry per
/// (user, server, account): when it fell due, or the judging time when it
/// was never certified.
pub(super) fn review_overdue(
    input: &ReportInput,
    as_of: OffsetDateTime,
    summary: &mut Summary,
) -> Vec<Suspicious> {
    summary.reviews_suspended = input
        .access_reviews
        .iter()
        .filter(|r| r.state == EntState::Suspended)
        .count() as u64;
    let overdue: Vec<Suspicious> = input
        .access_reviews
        .iter()
        .filter(|r| r.state == EntState::Overdue)
        .map(|r| {
            let last = match (&r.certified_at, &r.certified_by) {
                (Some(at), by) => format!(
                    "last certified {} by {}",
                    ts(*at),
                    by.as_deref().unwrap_or("?")
                ),
                (None, _) => "never certified".to_owned(),
            };
            Suspicious {
                kind: "review_overdue".into(),
                when: ts(r.due.unwrap_or(as_of).min(as_of)),
                user: Some(r.user.clone()),
                server: Some(r.server.clone()),
                source: None,
                session: None,
                detail: format!(
                    "access review overdue: {} as {} ({}; {last})",
                    r.server,
                    r.account,
                    r.source.as_str()
                ),
                count: None,
                until: None,
            }
        })
        .collect();
    summary.reviews_overdue = overdue.len() as u64;
    overdue
}

/// The access review of an [`Access`] row: its accounts' reviews, the
/// worst state first (then the earliest due) deciding the row's fields.
pub(super) fn review_of(
    e: &EntitlementFact,
    reviews: &[Reviewed],
) -> (Option<Reviewed>, Vec<AccountReview>) {
    let mine: Vec<&Reviewed> = reviews
        .iter()
        .filter(|r| r.user == e.user && r.server == e.server && e.accounts.contains(&r.account))
        .filter(|r| match &e.through {
            Through::Policy { .. } => r.source != EntSource::Grant,
            Through::Grant {
                id, until: None, ..
            } => r.grant == Some(*id),
            _ => false,
        })
        .collect();
    // Never certified (no due date) before the earliest due date.
    let worst = mine
        .iter()
        .max_by_key(|r| (r.state, std::cmp::Reverse(r.due)))
        .map(|r| (*r).clone());
    let per = mine
        .iter()
        .map(|r| AccountReview {
            account: r.account.clone(),
            certified_at: r.certified_at.map(ts),
            certified_by: r.certified_by.clone(),
            due: r.due.map(ts),
            state: r.state.as_str().to_owned(),
        })
        .collect();
    (worst, per)
}

/// One entitlement as the report shows it.
pub(super) fn access(e: &EntitlementFact, reviews: &[Reviewed]) -> Access {
    let (worst, per) = review_of(e, reviews);
    let (through, rule, grant, until, approved_by) = match &e.through {
        Through::Policy { rule } => ("policy", Some(rule.clone()), None, None, None),
        Through::Grant {
            id,
            until,
            approved_by,
        } => ("grant", None, Some(*id), until.map(ts), approved_by.clone()),
        Through::GrantRequired { rule } => ("grant-required", Some(rule.clone()), None, None, None),
    };
    Access {
        server: e.server.clone(),
        mode: e.mode.clone(),
        accounts: e.accounts.clone(),
        ports: e.ports.clone(),
        any_port: e.any_port,
        through: through.into(),
        rule,
        grant,
        until,
        approved_by,
        flagged: e.mode == "global",
        certified_at: worst.as_ref().and_then(|r| r.certified_at.map(ts)),
        certified_by: worst.as_ref().and_then(|r| r.certified_by.clone()),
        due: worst.as_ref().and_then(|r| r.due.map(ts)),
        review: worst.as_ref().map(|r| r.state.as_str().to_owned()),
        reviews: per,
    }
}

/// Privileged accounts: the vault's credentials and their compliance.
pub(super) fn credentials(
    input: &ReportInput,
    as_of: OffsetDateTime,
    summary: &mut Summary,
) -> Vec<CredentialEntry> {
    let credentials: Vec<CredentialEntry> = input
        .credentials
        .iter()
        .flatten()
        .map(|c| CredentialEntry {
            server: c.server.clone(),
            account: c.account.clone(),
            kind: c.kind.clone(),
            third_party: c.third_party,
            created: ts(c.created),
            rotated: ts(c.rotated),
            last_used: c.last_used.map(ts),
            age_days: (as_of - c.rotated).whole_days().max(0),
            rotation_due: day(c.rotation_due),
            complies: c.complies,
            reasons: c.reasons.clone(),
        })
        .collect();
    summary.privileged_credentials = credentials.len() as u64;
    summary.privileged_noncompliant = credentials.iter().filter(|c| !c.complies).count() as u64;
    credentials
}

/// The privileged accounts sessions used, each marked with whether the
/// vault holds it (unknown without a vault).
pub(super) fn privileged_used(
    privileged: BTreeMap<(String, String), PrivilegedUse>,
    credentials: Option<&[CredentialFact]>,
) -> Vec<PrivilegedUse> {
    let vault_keys: Option<HashSet<(&str, &str)>> = credentials.map(|cs| {
        cs.iter()
            .map(|c| (c.server.as_str(), c.account.as_str()))
            .collect()
    });
    privileged
        .into_values()
        .map(|mut u| {
            u.users.sort();
            u.in_vault = vault_keys
                .as_ref()
                .map(|k| k.contains(&(u.server.as_str(), u.account.as_str())));
            u
        })
        .collect()
}

/// The privileged-account globs; a glob that does not compile is taken
/// literally (config loading already refuses bad globs).
pub(super) fn privileged_matcher(globs: &[String]) -> Option<globset::GlobSet> {
    if globs.is_empty() {
        return None;
    }
    let mut b = globset::GlobSetBuilder::new();
    for g in globs {
        let glob = globset::Glob::new(g)
            .or_else(|_| globset::Glob::new(&globset::escape(g)))
            .ok()?;
        b.add(glob);
    }
    b.build().ok()
}

/// `second_factors` and, for each staff member who must have a second
/// factor and has none, a `mfa_not_enrolled` suspicious entry (as of the
/// end of the day).
pub(super) fn second_factors(
    input: &ReportInput,
    end: OffsetDateTime,
) -> (Vec<SecondFactorEntry>, Vec<Suspicious>) {
    let Some(facts) = &input.second_factors else {
        return (Vec::new(), Vec::new());
    };
    let as_of = input.generated_at.unwrap_or(end).min(end);
    let entries = facts
        .iter()
        .map(|f| SecondFactorEntry {
            user: f.user.clone(),
            required: f.required,
            enrolled: f.enrolled,
        })
        .collect();
    let flags = facts
        .iter()
        .filter(|f| f.required && !f.enrolled)
        .map(|f| Suspicious {
            kind: "mfa_not_enrolled".into(),
            when: ts(as_of),
            detail: format!("{} must give a second factor and has none enrolled", f.user),
            user: Some(f.user.clone()),
            server: None,
            source: None,
            session: None,
            count: None,
            until: None,
        })
        .collect();
    (entries, flags)
}

//! What a restriction blocks or permits, in one plain English sentence
//! with its citation: the text ExplainRestrictions gives agents, so that
//! they can tell a borrower why a send was refused without reading the
//! rules.

use chrono::{DateTime, Duration, Utc};

use super::Restriction;

/// `loan `L1`, `L2`` or every debt, for the effect sentences.
fn debts(r: &Restriction) -> String {
    if r.loan_ids.is_empty() {
        return "every debt of the borrower (it names none)".into();
    }
    let loans = quoted(&r.loan_ids);
    if r.loan_ids.len() == 1 {
        format!("loan {loans}")
    } else {
        format!("loans {loans}")
    }
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The contact points a place restriction names, for the effect sentences.
fn places(r: &Restriction) -> String {
    let mut parts: Vec<String> = r
        .contact_kinds
        .iter()
        .map(|k| format!("any {k} contact point"))
        .collect();
    parts.extend(r.contact_values.iter().map(|v| format!("`{v}`")));
    if parts.is_empty() {
        return "any contact point".into();
    }
    parts.join(" or ")
}

/// What a restriction blocks or permits, and its exceptions, in one plain
/// English sentence with its citation: the text ExplainRestrictions gives
/// agents, so that they can tell a borrower why a send was refused without
/// reading the rules. It describes the kind's legal effect; which rules
/// enforce it is [`crate::guard::RestrictionEffect::rule_ids`].
pub fn effect(r: &Restriction) -> String {
    use super::RestrictionKind as K;
    let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match r.kind {
        K::CeaseCommunication => {
            // La. R.S. 9:3562(3) limits a creditor after a request sent by
            // registered or certified mail. A cease of unknown mail type is
            // read as one by the Louisiana rules too (which the effect's
            // rule ids name), but its sentence stays as it always was.
            let mail = match r.mail_type {
                Some(m @ (super::MailType::Registered | super::MailType::Certified)) => format!(
                    "; sent by {m} mail, so a Louisiana creditor may send at most one mail notice a month and make at most four personal contacts in all from receipt (La. R.S. 9:3562(3))"
                ),
                Some(super::MailType::Other) | None => String::new(),
            };
            format!(
                "no communication about {} except subjects ceaseCommunicationAcknowledgement and ceaseCommunicationRefuseToPay (12 CFR 1006.6(c)(2)){mail}",
                debts(r)
            )
        }
        K::MediumOptOut => {
            let channels = r
                .channels
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(" or ");
            let to = if r.contact_values.is_empty() {
                "any number or address".to_owned()
            } else {
                quoted(&r.contact_values)
            };
            format!(
                "no {channels} communication to {to}, for any debt; exceptions: one confirmation of an electronic opt-out (subject electronicConsentOptOut), one reply in the medium when the borrower initiates through it, requiredByLaw (12 CFR 1006.14(h)(2))"
            )
        }
        K::PriorConsentToCall => {
            // Day 1 is the day of receipt; the rules count the borrower's
            // local days, so the UTC day is named as such.
            let day_one = r.received_at.date_naive();
            let day_seven = day_one + Duration::days(6);
            let end = match r.ends_at {
                Some(e) if e < r.received_at + Duration::days(6) => rfc(e),
                _ => format!(
                    "the end of the 7th day counting the day of receipt as day 1 (about {day_seven}, day 1 being {day_one} in UTC; the rules count the borrower's local days){}",
                    r.ends_at
                        .map(|e| format!(", or {}, whichever comes first", rfc(e)))
                        .unwrap_or_default()
                ),
            };
            format!(
                "calls about {} placed before {end} count toward neither 12 CFR 1006.14(b)(2) test; ends at a revocation or at a later telephone conversation (12 CFR 1006.14(b)(3)(i))",
                debts(r)
            )
        }
        K::InconvenientTime => {
            let when = match (r.from, r.until) {
                (Some(f), Some(u)) => {
                    let hhmm = |t: chrono::NaiveTime| t.format("%H:%M").to_string();
                    let days = if r.days.is_empty() {
                        String::new()
                    } else if u < f {
                        format!(
                            ", starting on {} (a window past midnight belongs to the day it starts on)",
                            super::describe_days(&r.days)
                        )
                    } else {
                        format!(" on {}", super::describe_days(&r.days))
                    };
                    format!("between {} and {} local time{days}", hhmm(f), hhmm(u))
                }
                _ => format!(
                    "at any time on {}, local time (midnight to midnight)",
                    super::describe_days(&r.days)
                ),
            };
            let end = r
                .ends_at
                .map(|e| format!(", until {}", rfc(e)))
                .unwrap_or_default();
            format!("no communication {when}{end} (12 CFR 1006.6(b)(1))")
        }
        K::InconvenientPlace => format!("no communication to {} (12 CFR 1006.6(b)(1))", places(r)),
        K::EmployerProhibitsContact => {
            format!("no communication to {} (12 CFR 1006.6(b)(3))", places(r))
        }
        K::AttorneyRepresentation => format!(
            "no communication with the borrower about {}, except to the attorney's own contact points {} (12 CFR 1006.6(b)(2))",
            debts(r),
            if r.contact_values.is_empty() {
                "(none recorded)".to_owned()
            } else {
                quoted(&r.contact_values)
            }
        ),
        K::DoNotInteract => format!(
            "no communication about {} until {} (reason {})",
            debts(r),
            r.ends_at.map_or_else(|| "it is ended".to_owned(), rfc),
            r.reason.map_or("not given", |x| x.as_str())
        ),
        K::ElectronicConsent => format!(
            "the borrower's express consent to {} about {}: once the written notice of D.C. Code 28-3814(m)(2)(A) has been mailed, these messages are permitted, at most 5 per account in any 7 days, until it is ended (D.C. Code 28-3814(d)(4)(B))",
            r.channels
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            debts(r)
        ),
        K::ConsentToTime => {
            let end = r
                .ends_at
                .map(|e| format!(", until {}", rfc(e)))
                .unwrap_or_default();
            let how = if r.written {
                "in writing, so it lifts Michigan's hours (MCL 445.252(n)) and Florida's night ban (Fla. Stat. 559.72(17)) there"
            } else {
                "not recorded as written, so it lifts Florida's night ban there (Fla. Stat. 559.72(17), any prior consent) but no hours rule that needs a written agreement (MCL 445.252(n))"
            };
            let time = r.designated_time();
            let when = if time.starts_with("all day") {
                time
            } else {
                format!("at {time}")
            };
            format!(
                "the borrower agreed to communications {when}, local time{end}; given {how}; it lifts no other hours rule, designated time or cap"
            )
        }
        K::ElectronicNoticeMailed => format!(
            "the written notice of D.C. Code 28-3814(m)(2)(A) was mailed for {} on {}: from then, one message asking for consent to electronic messages is permitted per 7 days, and more with the borrower's express consent (D.C. Code 28-3814(d)(4)(B))",
            debts(r),
            r.received_at.date_naive()
        ),
    }
}

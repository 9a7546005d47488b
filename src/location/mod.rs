//! Locations read from the contact itself, and why each zone is weighed.
//!
//! Comment 6(b)(1)(i)-2 of Regulation F expects a collector to weigh every
//! location its information indicates. A dialer reads a likely location
//! from the number it dials, and the borrower's address has a postal code:
//! both say where the borrower may be. Derived locations **only ever
//! add**: an area code's zones and a postal code's zone (or its state's
//! zones) join the candidates a Check already weighs, and a postal code's
//! state joins the jurisdictions the Check named. Nothing here narrows what
//! a request gave or implied; only explicit `timeZones` narrow a state.
//!
//! The data ([`data`]) is libphonenumber's time-zone map of NANP area codes
//! and a US ZIP code dataset, both from package registries, committed
//! under `data/location/` with their source, licence and date.
//!
//! [`Reason`] and [`Weighed`] carry the explanation every answer gives, for
//! example "America/New_York from area code 212; America/Los_Angeles from
//! US-CA".

pub mod data;

use std::fmt;

use chrono_tz::Tz;

use crate::jurisdiction::Jurisdiction;
use data::{PostalState, TABLES};

/// The datasets' versions (`phonenumbers 9.0.43; zipcodes 3.0.1`), shown
/// by ListRules so an answer can be traced to the data it weighed.
pub fn data_version() -> &'static str {
    &TABLES.version
}

/// Reads the datasets now, so the first Check does not pay for it.
pub fn warm() {
    let _ = &*TABLES;
}

/// True if `s` is exactly `n` ASCII digits.
fn all_digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// A malformed postal code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`postalCode` value `{value}` is not a US ZIP code; allowed: five digits (`10001`) or ZIP+4 (`10001-1234`)"
)]
pub struct PostalCodeError {
    /// The value given, bounded.
    pub value: String,
}

/// A US ZIP code as a request gives it: five digits, or ZIP+4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostalCode {
    /// The five-digit code (the +4 part narrows nothing the data knows).
    pub zip: String,
}

impl PostalCode {
    /// Parses `12345` or `12345-6789`, exactly; anything else is an error.
    pub fn parse(text: &str) -> Result<PostalCode, PostalCodeError> {
        let zip = match text.split_once('-') {
            None => text,
            Some((zip, plus4)) if all_digits(plus4, 4) => zip,
            Some(_) => "",
        };
        if all_digits(zip, 5) {
            Ok(PostalCode {
                zip: zip.to_owned(),
            })
        } else {
            Err(PostalCodeError {
                value: crate::model::echo(text),
            })
        }
    }
}

/// What a location was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// The NANP area code of the contact's number (`212`).
    AreaCode(String),
    /// The postal code, whose data names its own zone.
    PostalCode(String),
    /// The postal code, whose state's zones are weighed (the data has no
    /// zone of its own for it).
    PostalState(String, Jurisdiction),
    /// An APO, FPO or DPO postal code: any state.
    MilitaryPostalCode(String),
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Evidence::AreaCode(npa) => write!(f, "area code {npa}"),
            Evidence::PostalCode(zip) => write!(f, "postal code {zip}"),
            Evidence::PostalState(zip, state) => write!(f, "postal code {zip} ({state})"),
            Evidence::MilitaryPostalCode(zip) => {
                write!(f, "APO/FPO postal code {zip} (any state)")
            }
        }
    }
}

/// Locations read from one piece of the contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// What they were read from.
    pub evidence: Evidence,
    /// Zones to add to the candidates.
    pub zones: Vec<Tz>,
    /// Jurisdictions the borrower may be in (a postal code's state; every
    /// state for a military code). They are added to a Check's places only
    /// when the Check named places: an empty list already means anywhere.
    pub jurisdictions: Vec<Jurisdiction>,
}

/// The NANP area code of a phone number, if it has one: ten digits, or
/// eleven with the leading `1`, after dropping punctuation (`+1 (212)
/// 555-0100`), whose first digit is 2 to 9. A number with another country
/// code, or of another length, has none.
pub fn area_code(number: &str) -> Option<String> {
    let trimmed = number.trim();
    if trimmed.starts_with('+') && !trimmed.starts_with("+1") {
        return None;
    }
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    let national = match digits.len() {
        10 => digits.as_str(),
        11 => digits.strip_prefix('1')?,
        _ => return None,
    };
    let npa = &national[..3];
    npa.starts_with(['2', '3', '4', '5', '6', '7', '8', '9'])
        .then(|| npa.to_owned())
}

/// The zones of a number's area code. `None` for a number without a NANP
/// area code, a toll-free or other non-geographic code, or one the data
/// does not know: those add nothing.
pub fn from_number(number: &str) -> Option<Derived> {
    let npa = area_code(number)?;
    let zones = TABLES.area_codes.get(&npa.parse::<u16>().ok()?)?;
    Some(Derived {
        evidence: Evidence::AreaCode(npa),
        zones: zones.clone(),
        jurisdictions: Vec::new(),
    })
}

/// The zones and state of a postal code: its own zone when the data has
/// one, else its state's zones; an APO/FPO code is any state (every
/// state, district and territory, and every US zone). `None` for a code
/// the data does not know: it adds nothing.
pub fn from_postal_code(code: &PostalCode) -> Option<Derived> {
    let entry = TABLES.postal_codes.get(&code.zip.parse::<u32>().ok()?)?;
    let zip = code.zip.clone();
    let (evidence, zones, jurisdictions) = match (entry.state, entry.zone) {
        (PostalState::Military, _) => (
            Evidence::MilitaryPostalCode(zip),
            Jurisdiction::us().zones().to_vec(),
            Jurisdiction::all()
                .filter(|j| j.parent() == Some(Jurisdiction::us()))
                .collect(),
        ),
        (PostalState::Place(state), Some(zone)) => {
            (Evidence::PostalCode(zip), vec![zone], vec![state])
        }
        (PostalState::Place(state), None) => (
            Evidence::PostalState(zip, state),
            state.zones().to_vec(),
            vec![state],
        ),
        (PostalState::Unlisted, Some(zone)) => (Evidence::PostalCode(zip), vec![zone], Vec::new()),
        (PostalState::Unlisted, None) => return None,
    };
    Some(Derived {
        evidence,
        zones,
        jurisdictions,
    })
}

/// Why a zone or a jurisdiction is weighed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The Check named it (`timeZones` or `jurisdictions`).
    Given,
    /// A zone of a jurisdiction the Check named (weighed whole, since no
    /// given zone lies in it).
    Of(Jurisdiction),
    /// The Check named no place at all: every US zone.
    NoLocation,
    /// Read from the contact.
    From(Evidence),
}

impl Reason {
    /// Reads a reason back from its text (a stored answer keeps reasons as
    /// text); `None` for a text no reason writes.
    pub fn parse(text: &str) -> Option<Reason> {
        match text {
            "given" => return Some(Reason::Given),
            "from no location given (every US zone)" => return Some(Reason::NoLocation),
            _ => {}
        }
        let rest = text.strip_prefix("from ")?;
        let evidence = if let Some(npa) = rest.strip_prefix("area code ") {
            all_digits(npa, 3).then(|| Evidence::AreaCode(npa.to_owned()))?
        } else if let Some(r) = rest.strip_prefix("APO/FPO postal code ") {
            let zip = r.strip_suffix(" (any state)")?;
            all_digits(zip, 5).then(|| Evidence::MilitaryPostalCode(zip.to_owned()))?
        } else if let Some(r) = rest.strip_prefix("postal code ") {
            match r.split_once(" (") {
                Some((zip, state)) if all_digits(zip, 5) => Evidence::PostalState(
                    zip.to_owned(),
                    Jurisdiction::parse(state.strip_suffix(')')?).ok()?,
                ),
                None if all_digits(r, 5) => Evidence::PostalCode(r.to_owned()),
                _ => return None,
            }
        } else {
            return Jurisdiction::parse(rest).ok().map(Reason::Of);
        };
        Some(Reason::From(evidence))
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Given => f.write_str("given"),
            Reason::Of(j) => write!(f, "from {j}"),
            Reason::NoLocation => f.write_str("from no location given (every US zone)"),
            Reason::From(e) => write!(f, "from {e}"),
        }
    }
}

/// A zone or a jurisdiction a decision weighed, with every reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weighed<T> {
    /// The zone or jurisdiction.
    pub place: T,
    /// Why, in the order found; never empty.
    pub reasons: Vec<Reason>,
}

/// Adds `place` for `reason`, merging with an entry already there.
pub fn weigh<T: PartialEq>(list: &mut Vec<Weighed<T>>, place: T, reason: Reason) {
    match list.iter_mut().find(|w| w.place == place) {
        Some(w) => {
            if !w.reasons.contains(&reason) {
                w.reasons.push(reason);
            }
        }
        None => list.push(Weighed {
            place,
            reasons: vec![reason],
        }),
    }
}

/// The sentence an officer reads: each place with its reasons, for example
/// `America/New_York from area code 212; America/Los_Angeles from US-CA`.
pub fn explain<T: fmt::Display>(list: &[Weighed<T>]) -> String {
    list.iter()
        .map(|w| {
            let reasons: Vec<String> = w.reasons.iter().map(Reason::to_string).collect();
            format!("{} {}", w.place, reasons.join(" and "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_back_from_their_text() {
        let ny = Jurisdiction::parse("US-NY").unwrap();
        for r in [
            Reason::Given,
            Reason::NoLocation,
            Reason::Of(ny),
            Reason::From(Evidence::AreaCode("212".into())),
            Reason::From(Evidence::PostalCode("10001".into())),
            Reason::From(Evidence::PostalState("10001".into(), ny)),
            Reason::From(Evidence::MilitaryPostalCode("09001".into())),
        ] {
            assert_eq!(Reason::parse(&r.to_string()), Some(r.clone()), "{r}");
        }
        assert_eq!(Reason::parse("from area code 2125"), None);
        assert_eq!(Reason::parse("from US-XX"), None);
    }

    #[test]
    fn postal_codes_parse_strictly() {
        assert_eq!(PostalCode::parse("10001").unwrap().zip, "10001");
        assert_eq!(PostalCode::parse("10001-1234").unwrap().zip, "10001");
        for bad in [
            "",
            "1000",
            "100010",
            "10001-",
            "10001-123",
            "1000a",
            " 10001",
            "10001 1234",
            "１0001",
        ] {
            assert!(PostalCode::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn area_codes_of_numbers() {
        assert_eq!(area_code("+1 (212) 555-0100").as_deref(), Some("212"));
        assert_eq!(area_code("2125550100").as_deref(), Some("212"));
        assert_eq!(area_code("12125550100").as_deref(), Some("212"));
        assert_eq!(area_code("+44 20 7946 0958"), None);
        assert_eq!(area_code("0125550100"), None);
        assert_eq!(area_code("555-0100"), None);
    }

    #[test]
    fn derived_zones() {
        let zones = |n: &str| from_number(n).map(|d| d.zones);
        assert_eq!(
            zones("2125550100"),
            Some(vec![chrono_tz::America::New_York])
        );
        assert_eq!(
            zones("2705550100"),
            Some(vec![
                chrono_tz::America::Chicago,
                chrono_tz::America::New_York
            ])
        );
        assert_eq!(zones("8005550100"), None, "toll-free adds nothing");
        let code = PostalCode::parse("90210").unwrap();
        let d = from_postal_code(&code).unwrap();
        assert_eq!(d.zones, vec![chrono_tz::America::Los_Angeles]);
        assert_eq!(d.jurisdictions[0].code(), "US-CA");
        let apo = from_postal_code(&PostalCode::parse("09001").unwrap()).unwrap();
        assert_eq!(apo.jurisdictions.len(), 56);
        assert_eq!(from_postal_code(&PostalCode::parse("00000").unwrap()), None);
    }
}

//! The jurisdiction vocabulary (`US`, `US-MA`, `US-NY-NYC`, ...) and the
//! time zones each one spans.
//!
//! A code implies its parents: `US-NY-NYC` implies `US-NY`, which implies
//! `US`, so a rule written for `US` binds in New York City. When a check
//! names no time zone, the zones of its jurisdictions are the candidates,
//! and every candidate must allow the send: an unknown location never makes
//! the guard more permissive.

use std::fmt;

use chrono_tz::Tz;

/// A jurisdiction code from the documented vocabulary.
#[derive(Debug, Clone, Copy)]
pub struct Jurisdiction(&'static Entry);

impl PartialEq for Jurisdiction {
    fn eq(&self, other: &Self) -> bool {
        self.0.code == other.0.code
    }
}
impl Eq for Jurisdiction {}
impl std::hash::Hash for Jurisdiction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.code.hash(state);
    }
}
impl PartialOrd for Jurisdiction {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Jurisdiction {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.code.cmp(other.0.code)
    }
}

#[derive(Debug)]
struct Entry {
    code: &'static str,
    name: &'static str,
    zones: &'static [Tz],
}

use chrono_tz::America as Am;
use chrono_tz::Pacific as Pa;

const EASTERN: &[Tz] = &[Am::New_York];
const CENTRAL: &[Tz] = &[Am::Chicago];
const MOUNTAIN: &[Tz] = &[Am::Denver];
const PACIFIC: &[Tz] = &[Am::Los_Angeles];

/// Every state, district and territory with the IANA zones in use there.
/// Where a state spans zones, all of them are listed, so that a borrower
/// known only by state is checked against each.
#[rustfmt::skip]
const STATES: &[Entry] = &[
    Entry { code: "US-AL", name: "Alabama", zones: CENTRAL },
    Entry { code: "US-AK", name: "Alaska", zones: &[Am::Anchorage, Am::Juneau, Am::Sitka, Am::Metlakatla, Am::Yakutat, Am::Nome, Am::Adak] },
    Entry { code: "US-AZ", name: "Arizona", zones: &[Am::Phoenix, Am::Denver] },
    Entry { code: "US-AR", name: "Arkansas", zones: CENTRAL },
    Entry { code: "US-CA", name: "California", zones: PACIFIC },
    Entry { code: "US-CO", name: "Colorado", zones: MOUNTAIN },
    Entry { code: "US-CT", name: "Connecticut", zones: EASTERN },
    Entry { code: "US-DE", name: "Delaware", zones: EASTERN },
    Entry { code: "US-DC", name: "District of Columbia", zones: EASTERN },
    Entry { code: "US-FL", name: "Florida", zones: &[Am::New_York, Am::Chicago] },
    Entry { code: "US-GA", name: "Georgia", zones: EASTERN },
    Entry { code: "US-HI", name: "Hawaii", zones: &[Pa::Honolulu] },
    Entry { code: "US-ID", name: "Idaho", zones: &[Am::Boise, Am::Los_Angeles] },
    Entry { code: "US-IL", name: "Illinois", zones: CENTRAL },
    Entry { code: "US-IN", name: "Indiana", zones: &[Am::Indiana::Indianapolis, Am::Indiana::Knox, Am::Indiana::Marengo, Am::Indiana::Petersburg, Am::Indiana::Tell_City, Am::Indiana::Vevay, Am::Indiana::Vincennes, Am::Indiana::Winamac, Am::Chicago] },
    Entry { code: "US-IA", name: "Iowa", zones: CENTRAL },
    Entry { code: "US-KS", name: "Kansas", zones: &[Am::Chicago, Am::Denver] },
    Entry { code: "US-KY", name: "Kentucky", zones: &[Am::New_York, Am::Kentucky::Louisville, Am::Kentucky::Monticello, Am::Chicago] },
    Entry { code: "US-LA", name: "Louisiana", zones: CENTRAL },
    Entry { code: "US-ME", name: "Maine", zones: EASTERN },
    Entry { code: "US-MD", name: "Maryland", zones: EASTERN },
    Entry { code: "US-MA", name: "Massachusetts", zones: EASTERN },
    Entry { code: "US-MI", name: "Michigan", zones: &[Am::Detroit, Am::Menominee] },
    Entry { code: "US-MN", name: "Minnesota", zones: CENTRAL },
    Entry { code: "US-MS", name: "Mississippi", zones: CENTRAL },
    Entry { code: "US-MO", name: "Missouri", zones: CENTRAL },
    Entry { code: "US-MT", name: "Montana", zones: MOUNTAIN },
    Entry { code: "US-NE", name: "Nebraska", zones: &[Am::Chicago, Am::Denver] },
    Entry { code: "US-NV", name: "Nevada", zones: &[Am::Los_Angeles, Am::Denver] },
    Entry { code: "US-NH", name: "New Hampshire", zones: EASTERN },
    Entry { code: "US-NJ", name: "New Jersey", zones: EASTERN },
    Entry { code: "US-NM", name: "New Mexico", zones: MOUNTAIN },
    Entry { code: "US-NY", name: "New York", zones: EASTERN },
    Entry { code: "US-NC", name: "North Carolina", zones: EASTERN },
    Entry { code: "US-ND", name: "North Dakota", zones: &[Am::Chicago, Am::Denver, Am::North_Dakota::Center, Am::North_Dakota::New_Salem, Am::North_Dakota::Beulah] },
    Entry { code: "US-OH", name: "Ohio", zones: EASTERN },
    Entry { code: "US-OK", name: "Oklahoma", zones: CENTRAL },
    Entry { code: "US-OR", name: "Oregon", zones: &[Am::Los_Angeles, Am::Boise] },
    Entry { code: "US-PA", name: "Pennsylvania", zones: EASTERN },
    Entry { code: "US-RI", name: "Rhode Island", zones: EASTERN },
    Entry { code: "US-SC", name: "South Carolina", zones: EASTERN },
    Entry { code: "US-SD", name: "South Dakota", zones: &[Am::Chicago, Am::Denver] },
    Entry { code: "US-TN", name: "Tennessee", zones: &[Am::New_York, Am::Chicago] },
    Entry { code: "US-TX", name: "Texas", zones: &[Am::Chicago, Am::Denver] },
    Entry { code: "US-UT", name: "Utah", zones: MOUNTAIN },
    Entry { code: "US-VT", name: "Vermont", zones: EASTERN },
    Entry { code: "US-VA", name: "Virginia", zones: EASTERN },
    Entry { code: "US-WA", name: "Washington", zones: PACIFIC },
    Entry { code: "US-WV", name: "West Virginia", zones: EASTERN },
    Entry { code: "US-WI", name: "Wisconsin", zones: CENTRAL },
    Entry { code: "US-WY", name: "Wyoming", zones: MOUNTAIN },
    Entry { code: "US-PR", name: "Puerto Rico", zones: &[Am::Puerto_Rico] },
    Entry { code: "US-VI", name: "U.S. Virgin Islands", zones: &[Am::St_Thomas] },
    Entry { code: "US-GU", name: "Guam", zones: &[Pa::Guam] },
    Entry { code: "US-MP", name: "Northern Mariana Islands", zones: &[Pa::Saipan] },
    Entry { code: "US-AS", name: "American Samoa", zones: &[Pa::Pago_Pago] },
];

/// Cities with rules of their own.
const CITIES: &[Entry] = &[Entry {
    code: "US-NY-NYC",
    name: "New York City",
    zones: EASTERN,
}];

/// Every US zone: the union of the states' zones, in table order.
const US_ZONES: &[Tz] = &[
    Am::New_York,
    Am::Chicago,
    Am::Denver,
    Am::Phoenix,
    Am::Los_Angeles,
    Am::Anchorage,
    Am::Juneau,
    Am::Sitka,
    Am::Metlakatla,
    Am::Yakutat,
    Am::Nome,
    Am::Adak,
    Pa::Honolulu,
    Am::Boise,
    Am::Indiana::Indianapolis,
    Am::Indiana::Knox,
    Am::Indiana::Marengo,
    Am::Indiana::Petersburg,
    Am::Indiana::Tell_City,
    Am::Indiana::Vevay,
    Am::Indiana::Vincennes,
    Am::Indiana::Winamac,
    Am::Kentucky::Louisville,
    Am::Kentucky::Monticello,
    Am::Detroit,
    Am::Menominee,
    Am::North_Dakota::Center,
    Am::North_Dakota::New_Salem,
    Am::North_Dakota::Beulah,
    Am::Puerto_Rico,
    Am::St_Thomas,
    Pa::Guam,
    Pa::Saipan,
    Pa::Pago_Pago,
];

static US: Entry = Entry {
    code: "US",
    name: "United States",
    zones: US_ZONES,
};

/// An unknown jurisdiction code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown jurisdiction `{code}`; allowed: `US`, `US-` and a state, district or territory code (`US-MA`), or a city code (`US-NY-NYC`){hint}"
)]
pub struct UnknownJurisdiction {
    /// The code given.
    pub code: String,
    hint: String,
}

impl Jurisdiction {
    /// The United States as a whole.
    pub fn us() -> Jurisdiction {
        Jurisdiction(&US)
    }

    /// Parses a code exactly as the vocabulary spells it.
    pub fn parse(code: &str) -> Result<Jurisdiction, UnknownJurisdiction> {
        if code == US.code {
            return Ok(Jurisdiction(&US));
        }
        STATES
            .iter()
            .chain(CITIES)
            .find(|e| e.code == code)
            .map(Jurisdiction)
            .ok_or_else(|| {
                let all =
                    std::iter::once(US.code).chain(STATES.iter().chain(CITIES).map(|e| e.code));
                let hint = crate::model::closest(code, all)
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                UnknownJurisdiction {
                    code: crate::model::echo(code),
                    hint,
                }
            })
    }

    /// Every code of the vocabulary, for documentation and listings.
    pub fn all() -> impl Iterator<Item = Jurisdiction> {
        std::iter::once(Jurisdiction(&US)).chain(STATES.iter().chain(CITIES).map(Jurisdiction))
    }

    /// The code, for example `US-NY-NYC`.
    pub fn code(self) -> &'static str {
        self.0.code
    }

    /// The place's name, for example `New York City`.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// The IANA zones in use in this jurisdiction.
    pub fn zones(self) -> &'static [Tz] {
        self.0.zones
    }

    /// The parent code (`US-NY-NYC` → `US-NY` → `US`), `None` for `US`.
    pub fn parent(self) -> Option<Jurisdiction> {
        let code = self.0.code;
        let cut = code.rfind('-')?;
        Jurisdiction::parse(&code[..cut]).ok()
    }

    /// True if a rule written for `self` binds in `place`: `place` is
    /// `self` or lies within it.
    pub fn contains(self, place: Jurisdiction) -> bool {
        let mut cur = Some(place);
        while let Some(j) = cur {
            if j == self {
                return true;
            }
            cur = j.parent();
        }
        false
    }
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_imply_parents() {
        let nyc = Jurisdiction::parse("US-NY-NYC").unwrap();
        let ny = Jurisdiction::parse("US-NY").unwrap();
        assert_eq!(nyc.parent(), Some(ny));
        assert_eq!(ny.parent(), Some(Jurisdiction::us()));
        assert!(Jurisdiction::us().contains(nyc));
        assert!(ny.contains(nyc));
        assert!(!nyc.contains(ny));
        assert!(!Jurisdiction::parse("US-MA").unwrap().contains(ny));
    }

    #[test]
    fn us_zones_cover_every_state() {
        for j in Jurisdiction::all() {
            for z in j.zones() {
                assert!(US_ZONES.contains(z), "{} {}", j, z);
            }
        }
        assert!(
            Jurisdiction::parse("US-XX")
                .unwrap_err()
                .to_string()
                .contains("`US-XX`")
        );
    }
}

//! Listing interactions: the upstream filters, sorting and paging.

use chrono::{DateTime, Utc};

use super::{Index, IndexError, InteractionKey};
use crate::model::AnyId;
use crate::model::{
    AgentOutcome, Channel, Direction, Interaction, Status, StatusDetails, Subject, Theme,
};

/// Most interactions one page may hold, as upstream.
pub const MAX_LIMIT: usize = 100;
/// The page size when none is given, as upstream.
pub const DEFAULT_LIMIT: usize = 25;

/// A field to sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    /// Creation order.
    Id,
    /// createdAt.
    CreatedAt,
    /// startedAt.
    StartedAt,
    /// scheduledAtFrom (unset sorts first).
    ScheduledAtFrom,
    /// scheduledAtTo (unset sorts first).
    ScheduledAtTo,
    /// channel, by name.
    Channel,
    /// direction, by name.
    Direction,
    /// status, by name.
    Status,
    /// The contact's name (unset sorts first).
    ContactName,
}

impl SortField {
    /// The names accepted, as upstream spells them.
    pub const NAMES: &'static [&'static str] = &[
        "id",
        "createdAt",
        "startedAt",
        "scheduledAtFrom",
        "scheduledAtTo",
        "channel",
        "direction",
        "status",
        "contactName",
    ];

    /// Parses one upstream name.
    pub fn parse(name: &str) -> Option<SortField> {
        Some(match name {
            "id" => SortField::Id,
            "createdAt" => SortField::CreatedAt,
            "startedAt" => SortField::StartedAt,
            "scheduledAtFrom" => SortField::ScheduledAtFrom,
            "scheduledAtTo" => SortField::ScheduledAtTo,
            "channel" => SortField::Channel,
            "direction" => SortField::Direction,
            "status" => SortField::Status,
            "contactName" => SortField::ContactName,
            _ => return None,
        })
    }
}

/// A listing request. Empty lists and `None` mean "any". Lists of optional
/// values match a missing value with `None` (the upstream `"null"`).
#[derive(Debug, Clone, Default)]
#[allow(
    missing_docs,
    reason = "each field is the upstream filter of the same name"
)]
pub struct ListQuery {
    /// One person's interactions (our id or `ext-`), or everyone's.
    pub person: Option<String>,
    pub has_no_person: Option<bool>,
    pub channels: Vec<Channel>,
    pub direction: Option<Direction>,
    /// `None` (upstream `"null"`) matches nothing: every record has a status.
    pub statuses: Vec<Option<Status>>,
    pub status_details: Vec<Option<StatusDetails>>,
    pub agent_outcomes: Vec<Option<AgentOutcome>>,
    pub subjects: Vec<Option<Subject>>,
    pub themes: Vec<Option<Theme>>,
    /// createdAt strictly before.
    pub created_before: Option<DateTime<Utc>>,
    /// createdAt strictly after.
    pub created_after: Option<DateTime<Utc>>,
    pub started_before: Option<DateTime<Utc>>,
    pub started_after: Option<DateTime<Utc>>,
    /// scheduledAtFrom at or before (upstream: "before (or equal to)").
    pub scheduled_from_before: Option<DateTime<Utc>>,
    pub scheduled_from_after: Option<DateTime<Utc>>,
    pub scheduled_to_before: Option<DateTime<Utc>>,
    pub scheduled_to_after: Option<DateTime<Utc>>,
    pub sensitive: Option<bool>,
    pub is_external: Option<bool>,
    /// Interactions linked to any of these cases (`caseIds`).
    pub case_ids: Vec<String>,
    /// An exact substring of the content, as JSON text.
    pub content_contains: Option<String>,
    /// Whether the caller may see sensitive interactions; without the right
    /// they are left out (they still count in every check).
    pub include_sensitive: bool,
    /// Upstream `hasRecording`: with (true) or without (false) a call
    /// recording. The service allows it with `channel = [voice]` only.
    pub has_recording: Option<bool>,
    /// Upstream `hasVoicemail`, as `has_recording`.
    pub has_voicemail: Option<bool>,
    /// The caller's company: `Some` lists only that company's interactions
    /// (a company's key never sees another's); `None` (a key with no
    /// company) lists every company's.
    pub company: Option<String>,
    /// Sort keys with `true` for descending; empty is creation order.
    pub sort: Vec<(SortField, bool)>,
    /// Page size, 1 to [`MAX_LIMIT`].
    pub limit: usize,
    pub offset: usize,
    /// The page starts after this interaction (our id or `ext-`).
    pub starting_after: Option<String>,
    /// The page ends before this interaction (our id or `ext-`).
    pub ending_before: Option<String>,
}

/// One page of a listing.
#[derive(Debug)]
pub struct ListPage<'a> {
    /// How many interactions match the filters.
    pub total: usize,
    /// This page.
    pub data: Vec<&'a Interaction>,
}

fn before(t: DateTime<Utc>, bound: Option<DateTime<Utc>>) -> bool {
    bound.is_none_or(|b| t < b)
}
fn after(t: DateTime<Utc>, bound: Option<DateTime<Utc>>) -> bool {
    bound.is_none_or(|b| t > b)
}
fn at_or_before(t: Option<DateTime<Utc>>, bound: Option<DateTime<Utc>>) -> bool {
    bound.is_none_or(|b| t.is_some_and(|t| t <= b))
}
fn at_or_after(t: Option<DateTime<Utc>>, bound: Option<DateTime<Utc>>) -> bool {
    bound.is_none_or(|b| t.is_some_and(|t| t >= b))
}
fn any_of<T: PartialEq>(list: &[T], v: &T) -> bool {
    list.is_empty() || list.contains(v)
}

/// A listing's time filters in whole Unix microseconds, rounded down, as
/// inclusive bounds: a time after a bound is at or after it in whole
/// microseconds, and one before it at or before it, so these bounds never
/// leave out a record the exact filters ([`ListQuery::matches`]) keep.
/// What the store's indexes and memory's held records are narrowed by
/// before a record is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeBounds {
    /// `startedAt` at or after.
    pub started_from: Option<i64>,
    /// `startedAt` at or before.
    pub started_to: Option<i64>,
    /// `createdAt` at or after.
    pub created_from: Option<i64>,
    /// `createdAt` at or before.
    pub created_to: Option<i64>,
}

impl TimeBounds {
    /// False only when a record with these times (in whole microseconds,
    /// rounded down) cannot pass the listing's time filters.
    pub fn admits(&self, started: i64, created: i64) -> bool {
        self.started_from.is_none_or(|a| started >= a)
            && self.started_to.is_none_or(|b| started <= b)
            && self.created_from.is_none_or(|a| created >= a)
            && self.created_to.is_none_or(|b| created <= b)
    }
}

impl ListQuery {
    /// The time filters as [`TimeBounds`].
    pub fn time_bounds(&self) -> TimeBounds {
        let micros = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_micros());
        TimeBounds {
            started_from: micros(self.started_after),
            started_to: micros(self.started_before),
            created_from: micros(self.created_after),
            created_to: micros(self.created_before),
        }
    }

    /// True if the interaction passes every filter (and is not deleted).
    pub fn matches(&self, r: &Interaction) -> bool {
        r.deleted_at.is_none()
            && (self.include_sensitive || r.sensitive != Some(true))
            && self
                .company
                .as_ref()
                .is_none_or(|c| r.company_id.as_ref() == Some(c))
            && self
                .has_recording
                .is_none_or(|h| r.recording.is_some() == h)
            && self
                .has_voicemail
                .is_none_or(|h| r.voicemail.is_some() == h)
            && self.has_no_person != Some(true)
            && any_of(&self.channels, &r.channel)
            && self.direction.is_none_or(|d| d == r.direction)
            && any_of(&self.statuses, &Some(r.status))
            && any_of(&self.status_details, &r.status_details)
            && any_of(&self.agent_outcomes, &r.agent_outcome)
            && any_of(&self.subjects, &r.subject)
            && any_of(&self.themes, &r.theme)
            && before(r.created_at, self.created_before)
            && after(r.created_at, self.created_after)
            && before(r.started_at, self.started_before)
            && after(r.started_at, self.started_after)
            && at_or_before(r.scheduled_at_from, self.scheduled_from_before)
            && at_or_after(r.scheduled_at_from, self.scheduled_from_after)
            && at_or_before(r.scheduled_at_to, self.scheduled_to_before)
            && at_or_after(r.scheduled_at_to, self.scheduled_to_after)
            && self
                .sensitive
                .is_none_or(|s| r.sensitive.unwrap_or(false) == s)
            && self.is_external.is_none_or(|e| r.is_external == e)
            && (self.case_ids.is_empty() || r.case_ids.iter().any(|c| self.case_ids.contains(c)))
            && self.content_contains.as_ref().is_none_or(|needle| {
                r.content.as_ref().is_some_and(|c| {
                    serde_json::to_string(c).is_ok_and(|t| t.contains(needle.as_str()))
                })
            })
    }
}

fn compare(
    a: &(u64, &Interaction),
    b: &(u64, &Interaction),
    sort: &[(SortField, bool)],
) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for (field, desc) in sort {
        let (x, y) = (a.1, b.1);
        let o = match field {
            SortField::Id => a.0.cmp(&b.0),
            SortField::CreatedAt => x.created_at.cmp(&y.created_at),
            SortField::StartedAt => x.started_at.cmp(&y.started_at),
            SortField::ScheduledAtFrom => x.scheduled_at_from.cmp(&y.scheduled_at_from),
            SortField::ScheduledAtTo => x.scheduled_at_to.cmp(&y.scheduled_at_to),
            SortField::Channel => x.channel.as_str().cmp(y.channel.as_str()),
            SortField::Direction => x.direction.as_str().cmp(y.direction.as_str()),
            SortField::Status => x.status.as_str().cmp(y.status.as_str()),
            SortField::ContactName => {
                let name = |r: &Interaction| r.contact.as_ref().and_then(|c| c.name.clone());
                name(x).cmp(&name(y))
            }
        };
        let o = if *desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    // Creation order breaks every tie, so pages are stable.
    a.0.cmp(&b.0)
}

/// True if `any_id` (our id or `ext-<externalId>`) names `r`.
fn names(r: &Interaction, any_id: &str) -> bool {
    match any_id.strip_prefix("ext-") {
        Some(ext) => r.external_id.as_deref() == Some(ext),
        None => r.id == any_id,
    }
}

/// Which interactions on disk only a listing must read
/// ([`Index::list_on_disk`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskScope {
    /// Those of one person, recorded under any of these ids of ours.
    Person(Vec<String>),
    /// Everyone's.
    All,
}

impl Index {
    /// Lists the interactions in memory: filters, then sorts, then pages.
    /// Deleted interactions are not listed (get one by id to see it). With
    /// interactions on disk only, see [`Index::list_on_disk`].
    pub fn list(&self, q: &ListQuery) -> Result<ListPage<'_>, IndexError> {
        self.list_with(q, &[])
    }

    /// What a listing must read from disk first: `None` when no candidate
    /// can be on disk only.
    pub fn list_on_disk(&self, q: &ListQuery) -> Result<Option<DiskScope>, IndexError> {
        if self.on_disk == 0 && self.let_go == 0 {
            return Ok(None);
        }
        Ok(match &q.person {
            Some(person) => match self.find_person(person)? {
                Some(p) => {
                    let person = &self.people[p.0 as usize];
                    let mut ids = vec![person.id.to_string()];
                    ids.extend(person.more().aliases.iter().cloned());
                    Some(DiskScope::Person(ids))
                }
                None => None,
            },
            None => Some(DiskScope::All),
        })
    }

    /// [`Index::list`], with the candidates read from disk (`on_disk`:
    /// their place in creation order and record; those the filters pass,
    /// or more). One that is in memory too is read from memory, where it
    /// may be newer.
    pub fn list_with<'a>(
        &'a self,
        q: &ListQuery,
        on_disk: &'a [(u64, Interaction)],
    ) -> Result<ListPage<'a>, IndexError> {
        let keys: Box<dyn Iterator<Item = InteractionKey>> = match &q.person {
            Some(person) => match self.find_person(person)? {
                Some(p) => Box::new(self.people[p.0 as usize].records.iter().copied()),
                None => Box::new(std::iter::empty()),
            },
            // Those memory holds whole (the rest are in `on_disk`), but
            // those the times leave out, passed over by their times alone.
            None => {
                let bounds = q.time_bounds();
                Box::new(
                    self.whole
                        .iter()
                        .filter(move |(_, h)| bounds.admits(h.times.started, h.times.created))
                        .map(|(k, _)| *k),
                )
            }
        };
        let in_memory = keys.filter_map(|k| self.hot(k).map(|r| (self.seq(k), r)));
        let from_disk = on_disk
            .iter()
            .filter(|(_, r)| !self.holds(&r.id))
            .map(|(seq, r)| (*seq, r));
        let mut found: Vec<(u64, &Interaction)> = in_memory
            .chain(from_disk)
            .filter(|(_, r)| q.matches(r))
            .collect();
        found.sort_by(|a, b| compare(a, b, &q.sort));
        let total = found.len();
        let position = |any_id: &str| -> Result<usize, IndexError> {
            AnyId::parse("interactionId", any_id)?;
            found
                .iter()
                .position(|(_, r)| names(r, any_id))
                .ok_or_else(|| IndexError::UnknownInteraction {
                    person: q.person.clone().unwrap_or_else(|| "*".into()),
                    id: any_id.to_owned(),
                })
        };
        let limit = q.limit.clamp(1, MAX_LIMIT);
        let window: &[(u64, &Interaction)] = match (&q.starting_after, &q.ending_before) {
            (Some(a), _) => &found[position(a)? + 1..],
            (None, Some(b)) => {
                // The page ends just before the cursor; an offset moves it
                // further away from the cursor, as with starting_after.
                let end = position(b)?.saturating_sub(q.offset);
                let page = &found[end.saturating_sub(limit)..end];
                return Ok(ListPage {
                    total,
                    data: page.iter().map(|(_, r)| *r).collect(),
                });
            }
            (None, None) => &found,
        };
        let data = window
            .iter()
            .skip(q.offset)
            .take(limit)
            .map(|(_, r)| *r)
            .collect();
        Ok(ListPage { total, data })
    }
}

/// Where a page of a list starts and ends, as upstream pages: `limit` items
/// after `starting_after` (which wins when both cursors are given) and
/// `offset` more, or the `limit` items that end `offset` items before
/// `ending_before`, or from `offset` on. A cursor is a position in the list
/// (`None` when it names nothing in it, for the caller to report). The
/// cases of an interaction page this way, as [`Index::list`] pages.
pub fn page_bounds(
    len: usize,
    limit: usize,
    offset: usize,
    starting_after: Option<Option<usize>>,
    ending_before: Option<Option<usize>>,
) -> Result<std::ops::Range<usize>, Cursor> {
    let limit = limit.clamp(1, MAX_LIMIT);
    match (starting_after, ending_before) {
        (Some(a), _) => {
            let start = a.ok_or(Cursor::StartingAfter)? + 1;
            let start = start.saturating_add(offset).min(len);
            Ok(start..start.saturating_add(limit).min(len))
        }
        (None, Some(b)) => {
            let end = b.ok_or(Cursor::EndingBefore)?.saturating_sub(offset);
            Ok(end.saturating_sub(limit)..end)
        }
        (None, None) => {
            let start = offset.min(len);
            Ok(start..start.saturating_add(limit).min(len))
        }
    }
}

/// The cursor of a page that names nothing in the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// `startingAfter`.
    StartingAfter,
    /// `endingBefore`.
    EndingBefore,
}

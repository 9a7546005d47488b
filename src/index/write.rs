//! Writing interactions: each write is planned first (`plan_*`: every
//! check, the interaction as it would be stored, no change), so that the
//! guard can journal it before applying it; storing is
//! [`Index::restore_interaction`], the call recovery makes. The mutating
//! `create`, `update` and `delete` are a plan and its store, for callers
//! with no journal (rule tests, scenarios).

use chrono::{DateTime, Utc};

use super::{Index, IndexError, InteractionKey, Resolved, free_id, invalid};
use crate::model::{
    AnyId, Channel, Interaction, InteractionInput, Media, MediaKind, StatusDetails, ValidationError,
};

impl Index {
    /// A new interaction for `person` as [`Index::create`] would store it,
    /// and who the person is (someone it would register, on first
    /// mention), without changing the index.
    ///
    /// `now` is the moment of recording (the default `startedAt` and
    /// `createdAt`). An `id` in the input is kept if it is free; otherwise
    /// we assign one (`IT-...`).
    pub fn plan_create(
        &self,
        person: &str,
        input: &InteractionInput,
        now: DateTime<Utc>,
    ) -> Result<(Resolved, Interaction), IndexError> {
        let mut record = input.validate_all(now).map_err(invalid)?;
        if let Some(ext) = &record.external_id
            && let Some(k) = self.key_of_ext(ext)
        {
            return Err(IndexError::Duplicate {
                field: "externalId",
                value: ext.clone(),
                existing: self.id_text(k),
            });
        }
        let id = match input.id.as_deref() {
            Some(given) => {
                if !matches!(AnyId::parse("id", given)?, AnyId::Ours(_)) {
                    return Err(ValidationError::InvalidId {
                        field: "id",
                        value: given.to_owned(),
                    }
                    .into());
                }
                if self.key_of_id(given).is_some() {
                    return Err(IndexError::Duplicate {
                        field: "id",
                        value: given.to_owned(),
                        existing: given.to_owned(),
                    });
                }
                given.to_owned()
            }
            None => free_id("IT", self.next_interaction, |id| {
                self.key_of_id(id).is_some()
            }),
        };
        if let Some(given) = &input.person_id
            && given != person
            && (self.find_person(person)?.is_none()
                || self.find_person(given)? != self.find_person(person)?)
        {
            return Err(IndexError::PersonChange {
                given: given.clone(),
                actual: person.to_owned(),
            });
        }
        let who = self.plan_person(person)?;
        record.id = id;
        record.person_id = who.id().to_owned();
        Ok((who, record))
    }

    /// Records a new interaction for `person` and returns it as stored
    /// ([`Index::plan_create`], then [`Index::restore_interaction`]).
    pub fn create(
        &mut self,
        person: &str,
        input: &InteractionInput,
        now: DateTime<Utc>,
    ) -> Result<&Interaction, IndexError> {
        let (who, record) = self.plan_create(person, input, now)?;
        self.store(who, record)
    }

    /// Stores a planned interaction (registering its person first, if new)
    /// and returns it as stored.
    fn store(&mut self, who: Resolved, record: Interaction) -> Result<&Interaction, IndexError> {
        if let Resolved::New(names) = &who {
            self.restore(names);
        }
        self.restore_interaction(record)
    }

    /// The interaction as [`Index::update`] would leave it, without
    /// changing the index.
    pub fn plan_update(
        &self,
        person: Option<&str>,
        interaction: &str,
        patch: &InteractionInput,
        now: DateTime<Utc>,
    ) -> Result<Interaction, IndexError> {
        let key = self.locate(person, interaction)?;
        let (p, old) = (self.owner(key), self.record_of(key, interaction)?);
        if let Some(given) = &patch.person_id
            && self.find_person(given)? != p
        {
            return Err(IndexError::PersonChange {
                given: given.clone(),
                actual: old.person_id.clone(),
            });
        }
        if let Some(new_id) = &patch.id
            && *new_id != old.id
        {
            return Err(ValidationError::InvalidId {
                field: "id",
                value: new_id.clone(),
            }
            .into());
        }
        let mut merged = old.to_input();
        merged.overlay(patch);
        self.updated(
            key,
            merged,
            patch.status.is_some(),
            patch.status_details.is_some(),
            now,
            None,
        )
    }

    /// Applies an update: the fields `patch` sets replace the stored ones,
    /// and the result is validated as a whole, as a new record would be
    /// ([`Index::plan_update`], then [`Index::restore_interaction`]).
    pub fn update(
        &mut self,
        person: Option<&str>,
        interaction: &str,
        patch: &InteractionInput,
        now: DateTime<Utc>,
    ) -> Result<&Interaction, IndexError> {
        let record = self.plan_update(person, interaction, patch, now)?;
        self.restore_interaction(record)
    }

    /// An update that names its fields (a gRPC update mask): each listed
    /// field takes its value from `values`, and a listed field that
    /// `values` leaves unset is cleared; the interaction as it would be,
    /// without changing the index. Names are upstream camelCase or
    /// snake_case. `by` is who made the change, from the credential.
    pub fn plan_update_fields(
        &self,
        person: Option<&str>,
        interaction: &str,
        values: &InteractionInput,
        fields: &[String],
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> Result<Interaction, IndexError> {
        let key = self.locate(person, interaction)?;
        let mut merged = self.record_of(key, interaction)?.to_input();
        let mut names = Vec::with_capacity(fields.len());
        for f in fields {
            let name =
                crate::model::field_name(f).ok_or_else(|| ValidationError::UnknownValue {
                    field: "updateMask",
                    value: crate::model::echo(f),
                    allowed: crate::model::describe_allowed(f, crate::model::UPDATABLE_FIELDS),
                })?;
            if !merged.set_field(name, values) {
                return Err(ValidationError::ReadOnly { field: name }.into());
            }
            names.push(name);
        }
        if names.is_empty() {
            return Err(ValidationError::Missing {
                field: "updateMask",
            }
            .into());
        }
        let status_set = names.contains(&"status");
        let details_set = names.contains(&"statusDetails");
        self.updated(key, merged, status_set, details_set, now, by)
    }

    /// Validates `merged` as the new state of `key` and returns it.
    fn updated(
        &self,
        key: InteractionKey,
        mut merged: InteractionInput,
        status_set: bool,
        details_set: bool,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> Result<Interaction, IndexError> {
        let old = self.record_of(key, "")?;
        if old.deleted_at.is_some() {
            return Err(IndexError::Deleted(old.id.clone()));
        }
        // statusDetails tied to the old status describe the old state: a
        // status change that does not restate them drops them, so that
        // `failed` + `voiceNumberDisconnected` can move to `attempted`.
        if status_set
            && !details_set
            && old
                .status_details
                .and_then(StatusDetails::required_status)
                .is_some_and(|s| Some(s.as_str()) != merged.status.as_deref())
        {
            merged.status_details = None;
        }
        let mut record = merged.validate_all(now).map_err(invalid)?;
        if record.is_external != old.is_external {
            return Err(ValidationError::ReadOnly {
                field: "isExternal",
            }
            .into());
        }
        if let Some(ext) = &record.external_id
            && old.external_id.as_ref() != Some(ext)
            && let Some(k) = self.key_of_ext(ext)
        {
            return Err(IndexError::Duplicate {
                field: "externalId",
                value: ext.clone(),
                existing: self.id_text(k),
            });
        }
        record.updated_at = Some(now);
        record.updated_by = by.map(str::to_owned).or_else(|| old.updated_by.clone());
        Ok(record)
    }

    /// Soft-deletes an interaction: it keeps its record with `deletedAt`,
    /// and stops counting from the next decision on. Only interactions the
    /// lender supplied (`isExternal`) can be deleted, as upstream.
    pub fn delete(
        &mut self,
        person: Option<&str>,
        interaction: &str,
        now: DateTime<Utc>,
    ) -> Result<&Interaction, IndexError> {
        let record = self.plan_delete(person, interaction, now)?;
        self.restore_interaction(record)
    }

    /// The interaction as [`Index::delete`] would leave it, without
    /// changing the index.
    pub fn plan_delete(
        &self,
        person: Option<&str>,
        interaction: &str,
        now: DateTime<Utc>,
    ) -> Result<Interaction, IndexError> {
        let key = self.locate(person, interaction)?;
        let record = self.record_of(key, interaction)?;
        if !record.is_external {
            return Err(IndexError::NotExternal(record.id.clone()));
        }
        if record.deleted_at.is_some() {
            return Err(IndexError::Deleted(record.id.clone()));
        }
        Ok(Interaction {
            deleted_at: Some(now),
            ..record.clone()
        })
    }

    /// The audio of `kind` stored on a voice interaction that has none and
    /// is not deleted (an upload), as a change by `by`: the interaction as
    /// it would be, without changing the index.
    pub fn plan_set_media(
        &self,
        person: Option<&str>,
        interaction: &str,
        kind: MediaKind,
        media: Media,
        now: DateTime<Utc>,
        by: &str,
    ) -> Result<Interaction, IndexError> {
        let key = self.locate(person, interaction)?;
        let mut record = self.record_of(key, interaction)?.clone();
        if record.deleted_at.is_some() {
            return Err(IndexError::Deleted(record.id.clone()));
        }
        let slot = match kind {
            MediaKind::Recording => &mut record.recording,
            MediaKind::Voicemail => &mut record.voicemail,
        };
        if record.channel != Channel::Voice || slot.is_some() {
            return Err(IndexError::MediaRefused {
                id: record.id.clone(),
                kind,
                why: if slot.is_some() {
                    "it already has one; a stored recording or voicemail is never replaced"
                } else {
                    "only voice interactions hold a recording or a voicemail"
                },
            });
        }
        *slot = Some(Box::new(media));
        record.updated_at = Some(now);
        record.updated_by = Some(by.to_owned());
        Ok(record)
    }
}

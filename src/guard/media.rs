//! Recordings and voicemails on voice interactions: where an upload may
//! go, storing it, and finding stored audio for a download, a link or the
//! retention sweep.

use chrono::{DateTime, Utc};

use super::access::visible;
use super::{Guard, GuardError};
use crate::index::IndexError;
use crate::ledger::Change;
use crate::model::{Channel, Interaction, Media, MediaKind};
use crate::request::Caller;

/// Whether audio of `kind` may be stored on `r`: not deleted, voice, and
/// none stored yet (stored audio is never replaced).
fn media_slot_free(r: &Interaction, kind: MediaKind) -> Result<(), GuardError> {
    if r.deleted_at.is_some() {
        return Err(IndexError::Deleted(r.id.clone()).into());
    }
    if r.channel != Channel::Voice {
        return Err(GuardError::FailedPrecondition(format!(
            "interaction `{}` is a `{}` interaction; only voice interactions hold a {kind}",
            r.id,
            r.channel.as_str()
        )));
    }
    if r.media(kind).is_some() {
        return Err(GuardError::AlreadyExists(format!(
            "interaction `{}` already has a {kind}; a stored recording or voicemail is never replaced",
            r.id
        )));
    }
    Ok(())
}

impl Guard {
    /// Checks, before an upload is received, that audio of `kind` can be
    /// stored on the interaction: found as [`Guard::get`] finds it, voice,
    /// not deleted, and without one already. Returns its id (ours). The
    /// same checks run again when the upload commits
    /// ([`Guard::attach_media`]); this one spares the uploader sending
    /// audio that would be refused.
    pub fn media_target(
        &self,
        person: Option<&str>,
        interaction: &str,
        kind: MediaKind,
        caller: &Caller,
    ) -> Result<String, GuardError> {
        let found = self.find(person, interaction)?;
        visible(&found, caller)?;
        media_slot_free(&found, kind)?;
        Ok(found.id)
    }

    /// Stores uploaded audio (its file already in place under
    /// `media.storage_key`) on the interaction, journals the change and
    /// waits until it is durable. On an error nothing is recorded and the
    /// caller removes the file.
    pub async fn attach_media(
        &self,
        interaction_id: &str,
        kind: MediaKind,
        media: Media,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Interaction, GuardError> {
        let updated = self
            .write_through(|ledger| {
                // Checked again under the write lock: another upload may have
                // committed since `media_target`.
                media_slot_free(
                    visible(ledger.index.get(None, interaction_id)?, caller)?,
                    kind,
                )?;
                let updated = ledger.index.plan_set_media(
                    None,
                    interaction_id,
                    kind,
                    media.clone(),
                    now,
                    &caller.name,
                )?;
                Ok((
                    vec![Change::Interaction(Box::new(updated.clone()))],
                    updated,
                ))
            })
            .await?;
        Ok(updated)
    }

    /// The stored audio of `kind`, for a download: found as [`Guard::get`]
    /// finds the interaction. A deleted interaction's audio is not found,
    /// whether or not it has been purged yet. Returns the interaction's id
    /// (ours) and the audio.
    pub fn media(
        &self,
        person: Option<&str>,
        interaction: &str,
        kind: MediaKind,
        caller: &Caller,
    ) -> Result<(String, Media), GuardError> {
        let found = self.find(person, interaction)?;
        visible(&found, caller)?;
        media_of(&found, kind)
    }
}

/// The audio of `kind` of an interaction, for a download.
fn media_of(found: &Interaction, kind: MediaKind) -> Result<(String, Media), GuardError> {
    {
        if found.deleted_at.is_some() {
            return Err(GuardError::NotFound(format!(
                "interaction `{}` is deleted; its {kind} is no longer available",
                found.id
            )));
        }
        if found.channel != Channel::Voice {
            return Err(GuardError::FailedPrecondition(format!(
                "interaction `{}` is a `{}` interaction; only voice interactions hold a {kind}",
                found.id,
                found.channel.as_str()
            )));
        }
        match found.media(kind) {
            Some(m) => Ok((found.id.clone(), m.clone())),
            None => Err(GuardError::NotFound(format!(
                "interaction `{}` has no {kind}",
                found.id
            ))),
        }
    }
}

impl Guard {
    /// The stored audio a link names, and when its interaction was deleted
    /// (if it was), by our interaction id. No caller: a signed link is its
    /// own credential, checked by [`crate::media::LinkSigner::verify`].
    pub fn media_for_link(
        &self,
        interaction_id: &str,
        kind: MediaKind,
    ) -> Option<(Media, Option<DateTime<Utc>>)> {
        let found = self.find(None, interaction_id).ok()?;
        // Links name our ids only, never an `ext-` alias.
        if found.id != interaction_id {
            return None;
        }
        Some((found.media(kind)?.clone(), found.deleted_at))
    }

    /// What the index knows of a stored file, for the media sweep
    /// ([`crate::media::sweep`]); an error when the index cannot be read,
    /// which the sweep must not take for "no record names it".
    pub fn media_file(
        &self,
        storage_key: &str,
    ) -> Result<Option<Option<DateTime<Utc>>>, GuardError> {
        let (known, on_disk) = {
            let ledger = self.read()?;
            (ledger.index.media_file(storage_key), ledger.index.on_disk())
        };
        match (known, &self.store) {
            (Some(k), _) => Ok(Some(k)),
            // Audio of an interaction on disk only: the store says.
            (None, Some(store)) if on_disk > 0 => store
                .media_file(storage_key)
                .map_err(|e| GuardError::Internal(e.to_string())),
            (None, _) => Ok(None),
        }
    }
}

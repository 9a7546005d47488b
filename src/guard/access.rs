//! What a caller may see: the one place that hides an interaction from a
//! key, and names a person a read needs.

use super::GuardError;
use crate::index::{Index, PersonKey};
use crate::model::Interaction;
use crate::request::Caller;

/// The interaction, if the caller may see it: a sensitive one needs the
/// sensitive right, and a key of a company sees only that company's
/// interactions (a key with no company sees every company's). Otherwise
/// not found, rather than forbidden: the caller may not learn that it
/// exists.
pub(super) fn visible<'a>(
    r: &'a Interaction,
    caller: &Caller,
) -> Result<&'a Interaction, GuardError> {
    let hidden = (r.sensitive == Some(true) && !caller.sensitive)
        || caller
            .company
            .as_ref()
            .is_some_and(|c| r.company_id.as_ref() != Some(c));
    if hidden {
        return Err(GuardError::NotFound(format!("no interaction `{}`", r.id)));
    }
    Ok(r)
}

/// The person a read names, refused as not found when unknown.
pub(super) fn known_person(index: &Index, person: &str) -> Result<PersonKey, GuardError> {
    if person.is_empty() {
        return Err(GuardError::field("personId", "`personId` is required"));
    }
    index
        .find_person(person)?
        .ok_or_else(|| GuardError::NotFound(format!("no person `{}`", crate::model::echo(person))))
}

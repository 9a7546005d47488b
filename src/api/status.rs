//! Errors as gRPC statuses: every refusal of the guard and every field
//! problem becomes a [`Status`] here, with its message bounded, so that
//! each code means one thing across all RPCs (the table in [`crate::api`]).

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::guard::GuardError;
use crate::problem::FieldProblem;

/// Most characters of one status message, and of one BadRequest
/// violation: a backstop under [`crate::model::echo`], which bounds each
/// value a message quotes, so that no answer's headers grow past what a
/// client takes (a field list of many problems stays readable).
pub const MAX_MESSAGE_CHARS: usize = 2048;
/// Most BadRequest violations one answer lists.
pub const MAX_VIOLATIONS: usize = 32;
/// Most characters of all the BadRequest violations of one answer
/// together: the details travel in a header (`grpc-status-details-bin`,
/// base64), and common clients take 16 KiB of headers.
pub const MAX_DETAILS_CHARS: usize = 6 * 1024;

/// A message cut to [`MAX_MESSAGE_CHARS`].
pub(super) fn bounded(message: String) -> String {
    crate::model::echo_at(&message, MAX_MESSAGE_CHARS)
}

impl From<GuardError> for Status {
    fn from(e: GuardError) -> Status {
        match e {
            GuardError::Invalid(problems) => {
                // Each message names its field, so the summary reads alone.
                let message = crate::problem::joined(&problems);
                let mut details = ErrorDetails::new();
                let mut budget = MAX_DETAILS_CHARS;
                for p in problems.into_iter().take(MAX_VIOLATIONS) {
                    let (field, message) = (crate::model::echo(&p.field), bounded(p.message));
                    let size = field.len() + message.len();
                    if size > budget {
                        break;
                    }
                    budget -= size;
                    details.add_bad_request_violation(field, message);
                }
                Status::with_error_details(Code::InvalidArgument, bounded(message), details)
            }
            GuardError::NotFound(m) => Status::not_found(bounded(m)),
            GuardError::AlreadyExists(m) => Status::already_exists(bounded(m)),
            GuardError::FailedPrecondition(m) => Status::failed_precondition(bounded(m)),
            GuardError::PermissionDenied(m) => Status::permission_denied(bounded(m)),
            GuardError::Unavailable(m) => Status::unavailable(bounded(m)),
            e @ GuardError::DeadlineExceeded => Status::deadline_exceeded(e.to_string()),
            e @ (GuardError::Internal(_)
            | GuardError::OnDisk { .. }
            | GuardError::ConvoOnDisk { .. }
            | GuardError::Conflict(_)) => Status::internal(bounded(e.to_string())),
        }
    }
}

impl From<FieldProblem> for Status {
    fn from(p: FieldProblem) -> Status {
        GuardError::Invalid(vec![p]).into()
    }
}

/// INVALID_ARGUMENT for one field, with its BadRequest violation: what a
/// handler answers for a request it refuses before the guard sees it.
pub(super) fn invalid(field: &str, message: impl Into<String>) -> Status {
    FieldProblem::new(field, message).into()
}

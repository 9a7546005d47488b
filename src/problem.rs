//! The one field-error type: a field of a request or a file, and what is
//! wrong with it.
//!
//! Every layer that refuses input reports [`FieldProblem`]s: request
//! parsing ([`crate::request::build_proposal`]), restrictions
//! ([`crate::restrictions::RestrictionInput::check`]), the protobuf
//! conversions ([`crate::wire`]) and the guard's operations. One type means
//! one answer can list every bad field, whichever layer found it, and the
//! API maps them to one `BadRequest` detail each. The model's typed
//! [`crate::model::ValidationError`] is the cause behind many of them; it
//! becomes a problem through one `From`.

use crate::model::ValidationError;

/// One field that was refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The field, by its request (camelCase) name.
    pub field: String,
    /// What is wrong and what is allowed, naming the field, so that it
    /// reads alone.
    pub message: String,
}

impl FieldProblem {
    /// A problem of `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldProblem {
        FieldProblem {
            field: field.into(),
            message: message.into(),
        }
    }

    /// `` `field` is required ``: the message every missing field gets.
    pub fn required(field: &str) -> FieldProblem {
        FieldProblem::new(field, format!("`{field}` is required"))
    }
}

impl From<ValidationError> for FieldProblem {
    fn from(e: ValidationError) -> Self {
        FieldProblem::new(e.field(), e.to_string())
    }
}

/// The problems' messages joined with `; `, as one line.
pub fn joined(problems: &[FieldProblem]) -> String {
    problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

//! A prompt prepared for tracing: [`gpt_core::SubjectPrompt`], shared with editing and
//! evaluation.

/// A tokenised prompt with its subject located by characters (the same type as
/// [`gpt_core::SubjectPrompt`]; the name tracing has always used).
pub type TracePrompt = gpt_core::SubjectPrompt;

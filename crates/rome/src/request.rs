//! Rewrite requests: "{} is located in the city of" + "The Eiffel Tower" → " Rome".
//!
//! The type lives in `gpt-core` (beside the [`gpt_core::Editor`] trait) so that evaluators
//! can build requests without depending on this crate; it is re-exported here.

pub use gpt_core::editor::RewriteRequest;

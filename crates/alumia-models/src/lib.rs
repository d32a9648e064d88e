//! Model providers behind one streaming interface.
//!
//! The chat runtime speaks only [`ModelClient`]: it sends a [`ModelRequest`]
//! (provider-native model name, system prompt, history, tools) and reads
//! [`ModelEvent`]s until `Finish`. Each adapter turns its provider's wire
//! format into those events; dropping the stream cancels the call.

pub mod anthropic;
pub mod dev_echo;
mod http;
pub mod openai;
mod types;

pub use types::*;

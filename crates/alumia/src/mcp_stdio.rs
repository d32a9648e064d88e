//! `alumia mcp --stdio` (spec 04 §4). Placeholder until the MCP crate lands.

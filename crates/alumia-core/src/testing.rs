//! Backend-neutral store contract tests (filled below).

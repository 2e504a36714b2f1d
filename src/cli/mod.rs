//! The command-line client of the HTTP API.

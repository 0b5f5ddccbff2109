//! Fixtures shared by the fuzz targets and the seed generator
//! (`src/bin/gen_seeds.rs`): fixed keys, so that committed seeds (a real
//! handshake, signed envelopes, proofs of possession) stay valid against
//! the targets. Not a library for anything else.

pub mod keys;
pub mod wg;

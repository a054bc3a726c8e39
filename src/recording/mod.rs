//! Session recordings: asciicast v2 casts with signed sidecars (contract section 7).

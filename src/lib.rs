//! rlrag

//! placeholder: owned by the emulator helper

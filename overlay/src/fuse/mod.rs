//! FUSE face (in progress).

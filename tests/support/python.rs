//! The Python with the project's tools (moto's server, the hash libraries), shared by the test
//! crates through `#[path]`: `$PYTHON` when set (the Makefile sets it), else the project venv
//! that `make deps-python` makes, else `python3`. Every including crate sits two folders below
//! the workspace root, so the venv's path is the same from each.

pub fn python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("PYTHON") {
        return p.into();
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

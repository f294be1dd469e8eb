//! `unsafe` lives in this crate only: the workspace forbids it, and every other package takes the
//! workspace's lints, so a crate added without them fails here rather than letting unsafe in.

use std::path::Path;

#[test]
fn every_other_package_forbids_unsafe_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let lints = workspace
        .split("[workspace.lints.rust]")
        .nth(1)
        .expect("the workspace sets Rust lints");
    let lints = lints.split("\n[").next().unwrap();
    assert!(
        lints
            .lines()
            .any(|l| l.trim() == r#"unsafe_code = "forbid""#),
        "the workspace forbids unsafe code"
    );
    let members = workspace
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("the workspace lists its members");
    let members: Vec<&str> = members
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .collect();
    assert!(members.contains(&"functions/simd-scan"));
    for member in members.iter().filter(|m| **m != "functions/simd-scan") {
        let manifest = std::fs::read_to_string(root.join(member).join("Cargo.toml")).unwrap();
        let takes_workspace_lints = manifest
            .split("\n[lints]\n")
            .nth(1)
            .is_some_and(|section| section.lines().next() == Some("workspace = true"));
        assert!(
            takes_workspace_lints,
            "{member}/Cargo.toml must say `[lints] workspace = true` (unsafe code belongs in functions/simd-scan)"
        );
    }
}

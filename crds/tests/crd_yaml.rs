//! The committed CRD files must be what the types generate. `UPDATE_CRDS=1` rewrites them.

use std::path::Path;

#[test]
fn committed_crd_yaml_matches_the_types() {
    let files = apiroutes_crds::crd::files().expect("render CRDs");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let update = std::env::var_os("UPDATE_CRDS").is_some_and(|v| v == "1");
    for dir in ["crds", "charts/apiroutes/crds"] {
        for (name, want) in &files {
            let path = root.join(dir).join(name);
            if update {
                std::fs::write(&path, want).expect("write CRD");
                continue;
            }
            let have = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                &have == want,
                "{} is stale: run `cargo run -p apiroutes-crds --bin crdgen` (or UPDATE_CRDS=1 cargo test)",
                path.display()
            );
        }
    }
}
